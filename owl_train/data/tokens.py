"""The tokenizer side of the data path: the special token ids it writes, the one encode call it
needs, and the builder that appends a row's pieces with their supervision flags.

A row is tokenised piece by piece (:class:`PieceBuilder`): text runs that share a supervision flag
are joined and encoded once, when a special token (or the end) flushes them, so labels come from
the same tokenisation as the ids and nothing is ever re-tokenised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["SpecialTokens", "TokenizerAdapter", "PieceBuilder"]


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of the Qwen2-VL special tokens the data path writes (and ``<|point|>``,
    ``<|crop_pad|>``: None for a tokenizer without it, which then cannot make foveal crops)."""

    im_start: int
    im_end: int
    vision_start: int
    vision_end: int
    image_pad: int
    point: int
    pad: int  # padding and stage-2 virtual placeholders (the tokenizer's pad, else <|endoftext|>)
    crop_pad: int | None = None


class TokenizerAdapter:
    """The two calls the data path needs from a tokenizer: a transformers
    ``PreTrainedTokenizerFast`` (or any object with ``encode(text, add_special_tokens=False)``
    returning ids) or a bare ``tokenizers.Tokenizer``."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._bare = type(tokenizer).__module__.startswith("tokenizers")
        vocab = tokenizer.get_vocab()
        need = {"<|im_start|>": "im_start", "<|im_end|>": "im_end", "<|vision_start|>": "vision_start",
                "<|vision_end|>": "vision_end", "<|image_pad|>": "image_pad", "<|point|>": "point"}
        missing = [t for t in need if t not in vocab]
        if missing:
            raise ValueError(f"tokenizer lacks the special token(s) {', '.join(missing)}: use an Owl-VL tokenizer "
                             "(owl-train init-tiny) or add them as special tokens and resize the embeddings")
        pad = getattr(tokenizer, "pad_token_id", None)
        if pad is None:
            pad = vocab.get("<|endoftext|>")
        if pad is None:
            raise ValueError("tokenizer has no pad token and no <|endoftext|>: set tokenizer.pad_token")
        self.special = SpecialTokens(**{v: vocab[k] for k, v in need.items()}, pad=int(pad),
                                     crop_pad=vocab.get("<|crop_pad|>"))

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        if self._bare:
            return list(self.tokenizer.encode(text, add_special_tokens=False).ids)
        return list(self.tokenizer.encode(text, add_special_tokens=False))


class PieceBuilder:
    """Appends pieces; text runs with one supervision flag are tokenised once, when flushed."""

    def __init__(self, tok: TokenizerAdapter) -> None:
        self.tok = tok
        self.ids: list[int] = []
        self.sup: list[bool] = []
        self.virtual: list[bool] = []
        self._text: list[str] = []
        self._text_sup = False

    def text(self, s: str, sup: bool) -> None:
        if self._text and sup != self._text_sup:
            self.flush()
        self._text.append(s)
        self._text_sup = sup

    def flush(self) -> None:
        if self._text:
            ids = self.tok.encode("".join(self._text))
            self.ids += ids
            self.sup += [self._text_sup] * len(ids)
            self.virtual += [False] * len(ids)
            self._text = []

    def token(self, tid: int, n: int = 1, sup: bool = False, virtual: bool = False) -> None:
        self.flush()
        self.ids += [tid] * n
        self.sup += [sup] * n
        self.virtual += [virtual] * n
