"""Greedy and sampled (temperature, top-p) generation with a KV cache.

Each call owns a fresh :class:`KVCache` and keeps no state on the model, so two calls in a row
never see each other. Sampling draws from a ``torch.Generator`` seeded per call (``seed``) or
given by the caller, never the global RNG. ``use_cache=False`` recomputes the whole sequence
at every step: the slow reference the cached path is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from owl_train.model.decoder import KVCache
from owl_train.model.model import OwlVL, OwlVLOutput

__all__ = ["generate", "sample_next"]


def sample_next(logits: Tensor, *, do_sample: bool, temperature: float = 1.0, top_p: float = 1.0,
                generator: torch.Generator | None = None) -> Tensor:
    """logits (B, V) -> next token ids (B,): argmax, or a draw from the top-p nucleus."""
    if not do_sample:
        return logits.argmax(dim=-1)
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} is invalid: use > 0, or do_sample=False for greedy")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p={top_p} is invalid: use a value in (0, 1]")
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        p, idx = probs.sort(dim=-1, descending=True)
        keep = (p.cumsum(-1) - p) < top_p  # the smallest prefix reaching top_p (always >= 1 token)
        probs = torch.zeros_like(probs).scatter(-1, idx, p * keep)
    return torch.multinomial(probs, 1, generator=generator).view(-1)


@dataclass(frozen=True)
class _Vision:
    """The vision inputs of the prompt (:meth:`OwlVL.forward`'s), for the uncached path's re-runs."""

    pixel_values: Tensor | None
    image_grid_thw: Tensor | None
    points: Tensor | None
    crop_boxes: Tensor | None

    def kwargs(self) -> dict[str, Tensor | None]:
        return {"pixel_values": self.pixel_values, "image_grid_thw": self.image_grid_thw, "points": self.points,
                "crop_boxes": self.crop_boxes}


@dataclass
class _Sequence:
    """What grows during generation: ids (B, L), mask (B, L), and, when the caller gave them,
    embeddings x (B, L, D) and positions pos (3, B, L); ``cache`` None on the uncached path."""

    ids: Tensor
    mask: Tensor
    x: Tensor | None
    pos: Tensor | None
    cache: KVCache | None


def _suppressed(model: OwlVL, suppress_token_ids: list[int] | None, device: torch.device) -> Tensor:
    """The ids never generated: ``suppress_token_ids``, by default the placeholders that need inputs."""
    c = model.config
    if suppress_token_ids is None:
        suppress_token_ids = [t for t in (c.image_token_id, c.video_token_id, c.point_token_id, c.crop_token_id)
                              if t is not None]
    return torch.tensor(suppress_token_ids, dtype=torch.long, device=device)


def _first_new_position(res: OwlVLOutput, mask: Tensor, pos: Tensor | None) -> Tensor:
    """(B,) the text position of each row's first new token: after the prompt's positions (rope
    deltas + real length), or with given positions their largest real one + 1 (fractional point
    ids never hold the largest)."""
    if pos is None:
        assert res.rope_deltas is not None
        return res.rope_deltas.view(-1) + mask.sum(dim=1)
    real = mask.bool().unsqueeze(0).expand_as(pos)  # (3, B, L)
    low = -1e9 if pos.is_floating_point() else -(1 << 40)
    return pos.masked_fill(~real, low).amax(dim=(0, 2)).floor().long() + 1


def _feed(model: OwlVL, seq: _Sequence, tok: Tensor, new_pos: Tensor, vision: _Vision) -> OwlVLOutput:
    """Append the new tokens tok (B,) at positions new_pos (3, B, 1) and run the model for the
    next logits: through the cache, or (``use_cache=False``) over the whole sequence again."""
    seq.mask = torch.cat([seq.mask, torch.ones_like(seq.mask[:, :1])], dim=1)
    if seq.cache is not None:
        return model(tok[:, None], attention_mask=seq.mask, position_ids=new_pos.to(
            seq.pos.dtype if seq.pos is not None else new_pos.dtype), cache=seq.cache, logits_to_keep=1)
    seq.ids = torch.cat([seq.ids, tok[:, None]], dim=1)
    if seq.x is not None:
        assert seq.pos is not None
        seq.x = torch.cat([seq.x, model.decoder.embed_tokens(tok[:, None]).to(seq.x.dtype)], dim=1)
        seq.pos = torch.cat([seq.pos, new_pos.to(seq.pos.dtype)], dim=2)
        return model(seq.ids, attention_mask=seq.mask, inputs_embeds=seq.x, position_ids=seq.pos, logits_to_keep=1)
    return model(seq.ids, attention_mask=seq.mask, **vision.kwargs(), logits_to_keep=1)


@torch.no_grad()
def generate(
    model: OwlVL,
    input_ids: Tensor,
    *,
    attention_mask: Tensor | None = None,
    pixel_values: Tensor | None = None,
    image_grid_thw: Tensor | None = None,
    points: Tensor | None = None,
    crop_boxes: Tensor | None = None,
    max_new_tokens: int = 32,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    eos_token_id: int | list[int] | None = None,
    pad_token_id: int = 0,
    use_cache: bool = True,
    suppress_token_ids: list[int] | None = None,
    inputs_embeds: Tensor | None = None,
    position_ids: Tensor | None = None,
) -> Tensor:
    """Continue each row of ``input_ids`` (B, L; left or right padded per ``attention_mask``).

    Returns the new tokens (B, T), T <= max_new_tokens; after a row's EOS it holds
    ``pad_token_id``; generation stops early once every row has ended. ``suppress_token_ids``
    are never produced; by default the placeholders that need inputs (``<|image_pad|>``,
    ``<|video_pad|>``, ``<|point|>``, ``<|crop_pad|>``). ``pixel_values``, ``image_grid_thw``,
    ``points`` and ``crop_boxes`` are :meth:`OwlVL.forward`'s.

    ``inputs_embeds`` (B, L, D) and ``position_ids`` (3, B, L), given together, replace the
    prompt's embedding and positions (stage 2 passes its virtual tokens this way); new tokens
    then continue at the row's largest real position + 1, as text.
    """
    if (inputs_embeds is None) != (position_ids is None):
        raise ValueError("inputs_embeds and position_ids go together (the positions of those embeddings)")
    B, dev = input_ids.shape[0], input_ids.device
    if do_sample and generator is None:
        generator = torch.Generator(device=dev).manual_seed(0 if seed is None else seed)
    suppress = _suppressed(model, suppress_token_ids, dev)
    eos = torch.tensor([eos_token_id] if isinstance(eos_token_id, int) else (eos_token_id or []), device=dev)
    vision = _Vision(pixel_values, image_grid_thw, points, crop_boxes)
    seq = _Sequence(input_ids, torch.ones_like(input_ids) if attention_mask is None else attention_mask,
                    inputs_embeds, position_ids, KVCache(len(model.decoder.layers)) if use_cache else None)
    was_training = model.training
    model.eval()
    out: list[Tensor] = []
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    try:
        res = model(seq.ids, attention_mask=seq.mask, **vision.kwargs(), cache=seq.cache, logits_to_keep=1,
                    inputs_embeds=seq.x, position_ids=seq.pos)
        next_pos = _first_new_position(res, seq.mask, seq.pos)  # (B,)
        for step in range(max_new_tokens):
            logits = res.logits[:, -1].index_fill(-1, suppress, float("-inf"))  # (B, V)
            tok = sample_next(logits, do_sample=do_sample, temperature=temperature, top_p=top_p,
                              generator=generator)
            tok = torch.where(done, torch.full_like(tok, pad_token_id), tok)  # (B,)
            out.append(tok)
            done |= torch.isin(tok, eos)
            if bool(done.all()) or step == max_new_tokens - 1:
                break
            res = _feed(model, seq, tok, next_pos.view(1, B, 1).expand(3, B, 1), vision)
            next_pos = next_pos + 1
    finally:
        model.train(was_training)
    return torch.stack(out, dim=1) if out else input_ids.new_zeros(B, 0)
