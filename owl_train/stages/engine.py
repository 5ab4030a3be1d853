"""How the loop takes a step: plain torch in one process, or DeepSpeed, behind one interface.

:func:`place` decides once where a run lives (DeepSpeed or not, rank, world, device, bf16) and
:func:`make_backend` builds the optimizer, the schedule and, for DeepSpeed, the engine. The loop
then talks to a :class:`Backend` only:

- ``micro_step(tensors, empty)``: forward and backward of one micro-batch, its loss (None for a
  micro-batch whose rows were all dropped);
- ``drop_step()``: a step whose rows were all dropped; True when the step is skipped (plain
  torch), False when it is taken with zero losses (DeepSpeed keeps the ranks in step);
- ``step()``: the optimizer step (clipping, schedule), the gradient norm or None;
- ``save(folder, state, tokenizer_src)`` / ``load(folder)``: a training checkpoint
  (:mod:`owl_train.stages.checkpoints` describes both layouts), ``load`` returns ``state.json``.

DeepSpeed runs with ``cfg.deepspeed`` (a JSON such as ``pipelines/zero2.json``) or when started by
the ``deepspeed`` launcher, through ``deepspeed.initialize`` with our torch AdamW and schedule;
``"auto"`` values in the JSON are filled from the train config.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from torch import Tensor, nn

from owl_data.errors import FieldError
from owl_train.stages.config import MissingPathError, TrainConfig
from owl_train.stages.checkpoint_files import check_pickles, deepspeed_allow, load_rng, read_state
from owl_train.stages.checkpoints import capture_rng, load_train_state, save_train_state, write_model_meta
from owl_train.stages.module import BATCH_TENSORS, TrainModule

__all__ = ["Backend", "Placement", "place", "make_backend", "cosine_lambda", "launched_by_deepspeed",
           "DEFAULT_ZERO2", "to_device"]

# What pipelines/zero2.json holds (a test keeps them equal): used under the launcher without a deepspeed JSON.
DEFAULT_ZERO2: dict[str, Any] = {
    "train_micro_batch_size_per_gpu": "auto",
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
    "bf16": {"enabled": "auto"},
    "zero_optimization": {"stage": 2, "overlap_comm": True, "contiguous_gradients": True,
                          "reduce_scatter": True, "reduce_bucket_size": 5e8, "allgather_bucket_size": 5e8},
    "steps_per_print": 1000000,
    "wall_clock_breakdown": False,
}


def cosine_lambda(total: int, warmup: int, min_ratio: float = 0.0) -> Callable[[int], float]:
    """LR multiplier of step ``step``: linear from 0 over ``warmup`` steps, then a cosine down to
    ``min_ratio`` at ``total`` (transformers' ``get_cosine_schedule_with_warmup``, floored)."""
    def f(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return f


def launched_by_deepspeed() -> bool:
    """The ``deepspeed`` launcher sets LOCAL_RANK and LOCAL_SIZE (and CROSS_RANK) for every process
    it starts; ``OWL_DEEPSPEED=1`` forces the DeepSpeed path under another launcher (torchrun)."""
    return "LOCAL_RANK" in os.environ and ("LOCAL_SIZE" in os.environ or "CROSS_RANK" in os.environ
                                          or os.environ.get("OWL_DEEPSPEED") == "1")


@dataclass(frozen=True)
class Placement:
    """Where a run lives: DeepSpeed or not, this process's rank of ``world``, its device, bf16."""

    deepspeed: bool
    rank: int
    world: int
    device: torch.device
    bf16: bool


def _device(cfg: TrainConfig) -> torch.device:
    if cfg.device != "auto":
        return torch.device(cfg.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _bf16(cfg: TrainConfig, device: torch.device) -> bool:
    if cfg.precision == "bf16":
        return True
    return cfg.precision == "auto" and device.type == "cuda"


def _init_deepspeed_dist() -> None:
    """Process group for DeepSpeed; a plain single process gets a one-rank group (gloo on CPU)."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    for k, v in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0"), ("MASTER_ADDR", "127.0.0.1"),
                 ("MASTER_PORT", "29533")):
        os.environ.setdefault(k, v)
    import deepspeed

    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")


def place(cfg: TrainConfig) -> Placement:
    """The run's :class:`Placement`; starts the DeepSpeed process group when DeepSpeed runs (a CUDA
    process then uses ``cuda:LOCAL_RANK``)."""
    use_ds = bool(cfg.deepspeed) or launched_by_deepspeed()
    if use_ds:
        read_ds_json(cfg)  # a bad JSON fails here, before DeepSpeed builds its ops
        _init_deepspeed_dist()
    rank = torch.distributed.get_rank() if use_ds else 0
    world = torch.distributed.get_world_size() if use_ds else 1
    device = _device(cfg)
    if use_ds and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return Placement(deepspeed=use_ds, rank=rank, world=world, device=device, bf16=_bf16(cfg, device))


def _param_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups of the trainable parameters: weight decay on matrices, none on vectors."""
    decay, no_decay = [], []
    for _, p in module.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [g for g in ({"params": decay, "weight_decay": weight_decay},
                        {"params": no_decay, "weight_decay": 0.0}) if g["params"]]


def read_ds_json(cfg: TrainConfig) -> dict[str, Any]:
    """The DeepSpeed JSON as given (``cfg.deepspeed``, or a copy of :data:`DEFAULT_ZERO2`), checked
    before DeepSpeed starts (so a bad file fails before its process group and C++ op builds).

    Raises:
        MissingPathError: ``cfg.deepspeed`` is not a file.
        FieldError (``deepspeed``): not UTF-8 JSON, not an object, or an ``optimizer`` or
            ``scheduler`` section (the trainer builds AdamW and the schedule itself).
    """
    if not cfg.deepspeed:
        return json.loads(json.dumps(DEFAULT_ZERO2))
    path = Path(cfg.deepspeed)
    if not path.is_file():
        raise MissingPathError("deepspeed", f"deepspeed {path}: no such file (e.g. pipelines/zero2.json)")
    try:
        ds = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FieldError("deepspeed", f"deepspeed {path}: not a JSON file ({exc}); see pipelines/zero2.json") from None
    if not isinstance(ds, dict):
        raise FieldError("deepspeed", f"deepspeed {path}: expected a JSON object like pipelines/zero2.json, "
                         f"got {type(ds).__name__}")
    for key in ("optimizer", "scheduler"):
        if key in ds:
            raise FieldError("deepspeed", f"deepspeed {path}: remove the '{key}' section; the trainer builds AdamW "
                             "and the cosine schedule from the train config (lr, warmup_ratio, ...)")
    return ds


def _ds_config(cfg: TrainConfig, world: int, bf16: bool) -> dict[str, Any]:
    """The DeepSpeed JSON (:func:`read_ds_json`) with its ``"auto"`` values filled.

    Raises:
        MissingPathError, FieldError: as :func:`read_ds_json`.
    """
    ds = read_ds_json(cfg)
    fill = {"train_micro_batch_size_per_gpu": cfg.batch_size, "gradient_accumulation_steps": cfg.grad_accum,
            "gradient_clipping": cfg.max_grad_norm}
    for k, v in fill.items():
        if ds.get(k, "auto") == "auto":
            ds[k] = v
    ds["train_batch_size"] = ds["train_micro_batch_size_per_gpu"] * ds["gradient_accumulation_steps"] * world
    for k in ("bf16", "fp16"):
        if isinstance(ds.get(k), dict) and ds[k].get("enabled") == "auto":
            ds[k]["enabled"] = bf16 if k == "bf16" else False
    return ds


class Backend(Protocol):
    """What the training loop needs of plain torch and of DeepSpeed (see the module docstring)."""

    device: torch.device  # where batches go
    pixel_dtype: torch.dtype | None  # pixel_values cast to this (DeepSpeed bf16 casts the weights), or None
    scheduler: Any  # the LR schedule (``get_last_lr``)

    def micro_step(self, tensors: dict[str, Any], empty: bool) -> float | None: ...
    def drop_step(self) -> bool: ...
    def step(self) -> float | None: ...
    def save(self, folder: Path, state: dict[str, Any], tokenizer_src: Path) -> None: ...
    def load(self, folder: Path) -> dict[str, Any]: ...


@dataclass
class TorchBackend:
    """One process, plain torch: gradients averaged over ``grad_accum`` micro-batches, bf16
    autocast on CUDA, clipping at ``max_grad_norm`` (0: none)."""

    module: TrainModule
    optimizer: torch.optim.Optimizer
    scheduler: Any
    params: list[nn.Parameter]
    device: torch.device
    bf16: bool
    grad_accum: int
    max_grad_norm: float
    pixel_dtype: torch.dtype | None = None

    def micro_step(self, tensors: dict[str, Any], empty: bool) -> float | None:
        """Forward and backward of one micro-batch; nothing for an empty one (no rows to learn from)."""
        if empty:
            return None
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16 and self.device.type == "cuda"):
            loss = self.module(**tensors)
        (loss / self.grad_accum).backward()
        return float(loss.detach())

    def drop_step(self) -> bool:
        """Forget the step's gradients; the step is skipped."""
        self.optimizer.zero_grad(set_to_none=True)
        return True

    def step(self) -> float | None:
        grad_norm = None
        if self.max_grad_norm > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def save(self, folder: Path, state: dict[str, Any], tokenizer_src: Path) -> None:
        save_train_state(folder, module=self.module, optimizer=self.optimizer, scheduler=self.scheduler, state=state)
        write_model_meta(folder, self.module.model, tokenizer_src, self.module.prompt)

    def load(self, folder: Path) -> dict[str, Any]:
        return load_train_state(folder, module=self.module, optimizer=self.optimizer, scheduler=self.scheduler)


@dataclass
class DeepSpeedBackend:
    """A DeepSpeed engine (it accumulates, clips and steps the schedule itself); every rank takes
    every micro-batch, an empty one with a zero loss, so the ranks stay in step."""

    engine: Any  # deepspeed.DeepSpeedEngine
    module: TrainModule
    scheduler: Any
    params: list[nn.Parameter]
    rank: int
    device: torch.device
    pixel_dtype: torch.dtype | None

    def micro_step(self, tensors: dict[str, Any], empty: bool) -> float | None:
        loss = sum(p.sum() for p in self.params) * 0.0 if empty else self.engine(**tensors)
        self.engine.backward(loss)
        self.engine.step()
        return None if empty else float(loss.detach())

    def drop_step(self) -> bool:
        """The step is taken (with zero losses), as on every other rank."""
        return False

    def step(self) -> float | None:
        gn = self.engine.get_global_grad_norm()
        return None if gn is None else float(gn)

    def save(self, folder: Path, state: dict[str, Any], tokenizer_src: Path) -> None:
        self.engine.save_checkpoint(str(folder.parent), tag=folder.name, client_state={"owl_step": state["step"]})
        torch.save(capture_rng(), folder / f"rng_rank{self.rank}.pt")
        if self.rank == 0:
            write_model_meta(folder, self.module.model, tokenizer_src, self.module.prompt)
            (folder / "state.json").write_text(json.dumps(state, indent=2) + "\n")

    def load(self, folder: Path) -> dict[str, Any]:
        """Every ``.pt`` of the tag folder is opened weights-only first (DeepSpeed's loader unpickles)."""
        state = read_state(folder)
        check_pickles(folder, deepspeed_allow())
        self.engine.load_checkpoint(str(folder.parent), tag=folder.name)
        load_rng(folder / f"rng_rank{self.rank}.pt")
        return state


def make_backend(cfg: TrainConfig, where: Placement, module: TrainModule, total: int) -> Backend:
    """``module`` on its device with AdamW over its trainable parameters and the cosine schedule
    over ``total`` steps (warmup ``ceil(warmup_ratio * total)``), wrapped for ``where``.

    Raises:
        ValueError: every parameter is frozen.
    """
    module.to(where.device)
    groups = _param_groups(module, cfg.weight_decay)
    if not groups:
        raise ValueError("nothing to train: every parameter is frozen")
    params = [p for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.adam_betas), eps=cfg.adam_eps)
    warmup = math.ceil(cfg.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_lambda(total, warmup, cfg.min_lr_ratio))
    if not where.deepspeed:
        return TorchBackend(module=module, optimizer=optimizer, scheduler=scheduler, params=params,
                            device=where.device, bf16=where.bf16, grad_accum=cfg.grad_accum,
                            max_grad_norm=cfg.max_grad_norm)
    import deepspeed

    engine, _, _, scheduler = deepspeed.initialize(model=module, optimizer=optimizer, lr_scheduler=scheduler,
                                                   config=_ds_config(cfg, where.world, where.bf16))
    return DeepSpeedBackend(engine=engine, module=module, scheduler=scheduler, params=params, rank=where.rank,
                            device=engine.device, pixel_dtype=torch.bfloat16 if where.bf16 else None)


def to_device(batch: dict[str, Any], device: torch.device, pixel_dtype: torch.dtype | None = None) -> dict[str, Tensor]:
    """The batch's model inputs (:data:`~owl_train.stages.module.BATCH_TENSORS`) on ``device``."""
    out = {k: (batch[k].to(device) if isinstance(batch[k], Tensor) else batch[k]) for k in BATCH_TENSORS}
    if pixel_dtype is not None and out["pixel_values"] is not None:  # DeepSpeed bf16 casts the weights
        out["pixel_values"] = out["pixel_values"].to(pixel_dtype)
    return out
