"""The model runner: what eval and infer ask of a trained model, without the training loop.

- :func:`load_model`: a model (or run) folder, ready to answer (eval mode, LoRA merged, the
  stage-2 prompt encoder when the folder has one).
- :func:`answer_rows`: greedy answers to rows' first user turns (batched, left padded).
- :func:`heldout_loss`: the mean next-token loss per supervised token over rows.

Both read the data path's settings from the loaded model (:func:`owl_train.data.data_config_for_model`)
and use the model's stage-2 virtual tokens when it has a prompt encoder, so training, eval and infer
encode a row alike. Rows are trainer rows (:mod:`owl_train.data.rows`): ``conversations`` plus the
``image``, ``point`` and ``bbox`` the collator reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import torch

from owl_train.data import Collator, DataConfig, data_config_for_model
from owl_train.stages.checkpoints import LoadedModel, load_model_dir
from owl_train.stages.module import BATCH_TENSORS, TrainModule
from owl_train.stages.ptuning import generate_batch

__all__ = ["LoadedModel", "load_model", "prompt_row", "answer_rows", "heldout_loss"]


def load_model(model_dir: str | Path) -> LoadedModel:
    """The model, prompt encoder (or None) and tokenizer of a model or run folder, in eval mode.

    Raises:
        FileNotFoundError: ``model_dir`` is neither a model folder nor a run folder with ``model/``.
    """
    loaded = load_model_dir(model_dir)
    loaded.model.eval()
    return loaded


def prompt_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row up to its first assistant turn (what the model is asked)."""
    turns = []
    for t in row["conversations"]:
        if t["role"] == "assistant":
            break
        turns.append(t)
    return {**row, "conversations": turns}


def _collator(loaded: LoadedModel, data_cfg: DataConfig, padding_side: Literal["left", "right"] | None = None,
              ) -> Collator:
    """A collator for ``loaded``: ``data_cfg`` with the model's data settings and its number of
    virtual tokens (0 without a prompt encoder); ``padding_side`` overrides the config's."""
    n_virtual = loaded.prompt.num_virtual_tokens if loaded.prompt is not None else 0
    changes: dict[str, Any] = {"num_virtual_tokens": n_virtual}
    if padding_side is not None:
        changes["padding_side"] = padding_side
    cfg = data_config_for_model(DataConfig(**{**data_cfg.__dict__, **changes}), loaded.model.config)
    return Collator(loaded.tokenizer, cfg)


def _decode(loaded: LoadedModel, new: torch.Tensor, eos: int | None) -> list[str]:
    """New token ids (B, T) -> one answer per row: cut at the first eos, decoded, stripped."""
    answers = []
    for seq in new.tolist():
        if eos is not None and eos in seq:
            seq = seq[:seq.index(eos)]
        answers.append(loaded.tokenizer.decode(seq, skip_special_tokens=False).strip())
    return answers


def answer_rows(loaded: LoadedModel, rows: Sequence[Mapping[str, Any]], data_cfg: DataConfig, *,
                batch_size: int = 8, max_new_tokens: int = 48, use_cache: bool = True) -> list[str | None]:
    """Greedy answers to each row's first user turn (None for a row the collator drops).

    Stage-2 virtual tokens are used when the model has a prompt encoder and the turn has no question.
    """
    coll = _collator(loaded, data_cfg, padding_side="left")
    eos = loaded.model.config.text.eos_token_id
    device = next(loaded.model.parameters()).device
    out: list[str | None] = []
    for i in range(0, len(rows), batch_size):
        enc = [coll.encode(prompt_row(r), add_generation_prompt=True) for r in rows[i:i + batch_size]]
        keep = [e for e in enc if e is not None]
        answers: list[str] = []
        if keep:
            b = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in coll(keep).items()}
            new = generate_batch(loaded.model, b, loaded.prompt, max_new_tokens=max_new_tokens, eos_token_id=eos,
                                 pad_token_id=coll.special.pad, use_cache=use_cache)  # (B, T)
            answers = _decode(loaded, new, eos)
        it = iter(answers)
        out += [next(it) if e is not None else None for e in enc]
    return out


@torch.no_grad()
def heldout_loss(loaded: LoadedModel, rows: Sequence[Mapping[str, Any]], data_cfg: DataConfig,
                 batch_size: int = 8) -> float:
    """Mean next-token loss per supervised token over ``rows`` (virtual tokens when a prompt encoder exists).

    Raises:
        ValueError: no row has a supervised token.
    """
    coll = _collator(loaded, data_cfg)
    module = TrainModule(loaded.model, loaded.prompt).eval()
    total, count = 0.0, 0
    for i in range(0, len(rows), batch_size):
        b = coll(list(rows[i:i + batch_size]))
        if b["input_ids"].shape[0] == 0:
            continue
        n = int((b["labels"][:, 1:] != -100).sum())
        total += float(module(**{k: b[k] for k in BATCH_TENSORS})) * n
        count += n
    if not count:
        raise ValueError("no supervised tokens in the held-out rows")
    return total / count
