"""The training loop both stages share.

AdamW over the trainable parameters (weight decay on matrices only), a cosine schedule with
linear warmup over ``ceil(warmup_ratio * max_steps)`` steps (as transformers'
``get_cosine_schedule_with_warmup``, floored at ``min_lr_ratio``), gradient accumulation,
clipping, bf16 autocast on CUDA; a Rich progress bar (loss, samples/s), ``logs/metrics.jsonl``
and ``logs/samples.jsonl`` (the row ids of every step) and TensorBoard when installed;
checkpoints every ``save_every`` steps and at the end; exact resume (trained weights,
optimizer, scheduler, sampler state, RNG states).

DeepSpeed: with ``cfg.deepspeed`` (a JSON such as ``pipelines/zero2.json``) or when started by
the ``deepspeed`` launcher, the same loop runs through ``deepspeed.initialize`` with our torch
AdamW and schedule; ``"auto"`` values in the JSON are filled from the train config.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from owl_train.config import TrainConfig
from owl_train.data import Collator
from owl_train.stages.checkpoints import checkpoint_dir, latest_checkpoint, load_train_state, prune_checkpoints, \
    save_train_state, write_model_meta, capture_rng, restore_rng
from owl_train.stages.module import BATCH_TENSORS, TrainModule

__all__ = ["LoopResult", "cosine_lambda", "train", "launched_by_deepspeed",
           "DEFAULT_ZERO2"]

# What pipelines/zero2.json holds (a test keeps them equal): used under the launcher without --deepspeed.
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
    def f(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return f


@dataclass
class LoopResult:
    steps: int  # optimizer steps done (in total, over resumes)
    losses: list[float]  # per step of this process's run
    ids: list[list[str]]  # row ids per step of this run
    task_counts: Counter = field(default_factory=Counter)  # rows trained on per task, over resumes
    dropped: Counter = field(default_factory=Counter)
    samples_per_s: float = 0.0
    exhausted: bool = False  # the rows ran out before max_steps
    skipped_steps: int = 0  # steps whose rows were all dropped (not taken; counted in dropped)
    model_dir: Path | None = None
    resumed_from: Path | None = None


def launched_by_deepspeed() -> bool:
    """The ``deepspeed`` launcher sets LOCAL_RANK and LOCAL_SIZE (and CROSS_RANK) for every process
    it starts; ``OWL_DEEPSPEED=1`` forces the DeepSpeed path under another launcher (torchrun)."""
    return "LOCAL_RANK" in os.environ and ("LOCAL_SIZE" in os.environ or "CROSS_RANK" in os.environ
                                          or os.environ.get("OWL_DEEPSPEED") == "1")


def _device(cfg: TrainConfig) -> torch.device:
    if cfg.device != "auto":
        return torch.device(cfg.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _bf16(cfg: TrainConfig, device: torch.device) -> bool:
    if cfg.precision == "bf16":
        return True
    return cfg.precision == "auto" and device.type == "cuda"


def _param_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for _, p in module.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [g for g in ({"params": decay, "weight_decay": weight_decay},
                        {"params": no_decay, "weight_decay": 0.0}) if g["params"]]


def _ds_config(cfg: TrainConfig, world: int, bf16: bool) -> dict[str, Any]:
    if cfg.deepspeed:
        path = Path(cfg.deepspeed)
        if not path.is_file():
            raise FileNotFoundError(f"--deepspeed {path}: no such file (e.g. pipelines/zero2.json)")
        ds = json.loads(path.read_text())
    else:
        ds = json.loads(json.dumps(DEFAULT_ZERO2))
    for key in ("optimizer", "scheduler"):
        if key in ds:
            raise ValueError(f"{cfg.deepspeed}: remove the '{key}' section; the trainer builds AdamW and the "
                             "cosine schedule from the train config (lr, warmup_ratio, ...)")
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


class _Logs:
    """metrics.jsonl / samples.jsonl (+ TensorBoard), truncated to ``start`` when resuming."""

    def __init__(self, out: Path, start: int, rank: int, world: int, tensorboard: bool, note: Callable[[str], None]):
        self.dir = out / "logs"
        self.rank = rank
        self.metrics = self.dir / "metrics.jsonl" if rank == 0 else None
        self.samples = self.dir / ("samples.jsonl" if world == 1 else f"samples.rank{rank}.jsonl")
        self.dir.mkdir(parents=True, exist_ok=True)
        for f in (self.metrics, self.samples):
            if f is not None and f.exists():
                keep = [ln for ln in f.read_text().splitlines() if ln and json.loads(ln)["step"] <= start]
                f.write_text("".join(ln + "\n" for ln in keep))
        self.tb = None
        if tensorboard and rank == 0:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                note("TensorBoard is not installed (pip install tensorboard, or the project's train extra): "
                     "logging to logs/metrics.jsonl only")
            else:
                self.tb = SummaryWriter(log_dir=str(self.dir / "tensorboard"), purge_step=start + 1)

    def step(self, rec: dict[str, Any], ids: list[str], metrics: bool = True) -> None:
        with self.samples.open("a") as f:
            f.write(json.dumps({"step": rec["step"], "ids": ids}) + "\n")
        if not metrics:
            return
        if self.metrics is not None:
            with self.metrics.open("a") as f:
                f.write(json.dumps(rec) + "\n")
        if self.tb is not None:
            for k in ("loss", "lr", "grad_norm", "samples_per_s"):
                if rec.get(k) is not None:
                    self.tb.add_scalar(f"train/{k}", rec[k], rec["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _progress(enabled: bool, total: int, start: int, desc: str):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    prog = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[sps]} samples/s"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                    disable=not enabled, transient=False)
    task = prog.add_task(desc, total=total, completed=start, loss="-", sps="-")
    return prog, task


def _to(batch: dict[str, Any], device: torch.device, pixel_dtype: torch.dtype | None = None) -> dict[str, Any]:
    out = {k: (batch[k].to(device) if isinstance(batch[k], Tensor) else batch[k]) for k in BATCH_TENSORS}
    if pixel_dtype is not None and out["pixel_values"] is not None:  # DeepSpeed bf16 casts the weights
        out["pixel_values"] = out["pixel_values"].to(pixel_dtype)
    return out


# Fields a resumed run may change: paths, logging, checkpoint cadence, where to stop (max_steps is checked apart).
RESUME_FREE = frozenset({"model", "corpus", "mix", "out", "resume", "deepspeed", "device", "num_workers", "max_steps",
                         "stop_at_step", "log_every", "save_every", "keep_checkpoints", "tensorboard", "progress"})
# Consecutive optimizer steps whose rows are all dropped before the run stops with an error.
MAX_EMPTY_STEPS = 8


def _check_resume_config(resume_dir: Path, saved: dict[str, Any], cfg: TrainConfig) -> None:
    """The checkpoint's config equals this run's on every field that changes what is trained."""
    now = json.loads(json.dumps(cfg.to_dict()))
    diff = [k for k in now if k not in RESUME_FREE and k in saved and saved[k] != now[k]]
    if diff:
        was = ", ".join(f"{k}={saved[k]!r}" for k in diff)
        has = ", ".join(f"{k}={now[k]!r}" for k in diff)
        raise ValueError(f"checkpoint {resume_dir} was made with {was}; this run has {has}: resume with the "
                         "checkpoint's settings, or start a new run in a new --out")


def train(cfg: TrainConfig, module: TrainModule, source: Any, collator: Collator, *,
          tokenizer_src: Path, save_final: Callable[[TrainModule, Path], Path],
          note: Callable[[str], None] = lambda s: None) -> LoopResult:
    """Train ``module``'s trainable parameters on ``source``'s rows; see the module docstring.

    ``source`` has ``__iter__`` (rows), ``__len__`` (rows left for this rank),
    ``state_dict(pulled)`` and ``load_state_dict``. ``save_final(module, folder)`` writes the
    final model folder (on rank 0).
    """
    out = Path(cfg.out)
    use_ds = bool(cfg.deepspeed) or launched_by_deepspeed()
    if use_ds:
        _init_deepspeed_dist()
    rank = torch.distributed.get_rank() if use_ds else 0
    world = torch.distributed.get_world_size() if use_ds else 1
    device = _device(cfg)
    if use_ds and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    bf16 = _bf16(cfg, device)
    per_step = cfg.batch_size * cfg.grad_accum
    total = cfg.max_steps or max(1, len(source) // per_step)
    if not cfg.max_steps and len(source) < per_step:
        raise ValueError(f"the mix gives this rank {len(source)} rows, fewer than one step's {per_step}; "
                         "make a longer mix or lower batch_size/grad_accum")
    stop = cfg.stop_at_step or total

    # resume: decided before anything is built from the checkpoint
    resume_dir: Path | None = None
    if cfg.resume:
        resume_dir = latest_checkpoint(out) if cfg.resume == "latest" else Path(cfg.resume)
        if cfg.resume == "latest" and resume_dir is None:
            note(f"--resume latest: no checkpoint in {out / 'checkpoints'}; starting from step 0")
        elif resume_dir is not None and not (resume_dir / "state.json").is_file():
            raise FileNotFoundError(f"--resume {resume_dir}: not a training checkpoint (no state.json)")
    elif latest_checkpoint(out) is not None:
        raise ValueError(f"{out} already holds checkpoints: resume with --resume latest or choose a new --out")

    torch.manual_seed(cfg.seed)  # LoRA dropout; the data order never depends on it
    module.to(device)
    groups = _param_groups(module, cfg.weight_decay)
    if not groups:
        raise ValueError("nothing to train: every parameter is frozen")
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.adam_betas), eps=cfg.adam_eps)
    warmup = math.ceil(cfg.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_lambda(total, warmup, cfg.min_lr_ratio))
    engine = None
    if use_ds:
        import deepspeed

        engine, optimizer, _, scheduler = deepspeed.initialize(model=module, optimizer=optimizer,
                                                               lr_scheduler=scheduler,
                                                               config=_ds_config(cfg, world, bf16))
        device = engine.device

    step, task_counts, samples_total = 0, Counter(), 0
    if resume_dir is not None:
        if engine is not None:
            engine.load_checkpoint(str(resume_dir.parent), tag=resume_dir.name)
            restore_rng(torch.load(resume_dir / f"rng_rank{rank}.pt", weights_only=False))
            state = json.loads((resume_dir / "state.json").read_text())
        else:
            state = load_train_state(resume_dir, module=module, optimizer=optimizer, scheduler=scheduler)
        if state["max_steps"] != total:
            raise ValueError(f"checkpoint {resume_dir} was made with max_steps={state['max_steps']}, this run has "
                             f"{total}; resume with the same max_steps (the schedule depends on it)")
        _check_resume_config(resume_dir, state.get("config", {}), cfg)
        step = int(state["step"])
        task_counts = Counter(state["task_counts"])
        samples_total = int(state["samples"])
        data_state = state["data"] if world == 1 else state["data_ranks"][str(rank)]
        source.load_state_dict(data_state)
        note(f"resumed from {resume_dir} at step {step}")

    logs = _Logs(out, step, rank, world, cfg.tensorboard, note)
    train_module = engine if engine is not None else module
    params = [p for g in groups for p in g["params"]]
    it: Iterator[dict[str, Any]] = iter(source)
    pulled = 0
    result = LoopResult(steps=step, losses=[], ids=[], task_counts=task_counts, resumed_from=resume_dir)
    t0, run_samples = time.perf_counter(), 0
    empty_steps = 0  # consecutive steps whose rows were all dropped
    module.train()

    def save(at: int) -> None:
        folder = checkpoint_dir(out, at)
        data = source.state_dict(pulled)
        state = {"step": at, "max_steps": total, "task_counts": dict(task_counts), "samples": samples_total,
                 "data": data, "config": cfg.to_dict()}
        if world > 1:
            gathered: list[Any] = [None] * world
            torch.distributed.all_gather_object(gathered, data)
            state["data_ranks"] = {str(r): d for r, d in enumerate(gathered)}
        if engine is not None:
            engine.save_checkpoint(str(folder.parent), tag=folder.name, client_state={"owl_step": at})
            torch.save(capture_rng(), folder / f"rng_rank{rank}.pt")
            if rank == 0:
                write_model_meta(folder, module.model, tokenizer_src, module.prompt)
                (folder / "state.json").write_text(json.dumps(state, indent=2) + "\n")
        else:
            save_train_state(folder, module=module, optimizer=optimizer, scheduler=scheduler, state=state)
            write_model_meta(folder, module.model, tokenizer_src, module.prompt)
        if rank == 0:
            prune_checkpoints(out, cfg.keep_checkpoints)

    prog, task = _progress(cfg.progress and rank == 0, stop, step, f"{cfg.stage}")
    with prog:
        while step < stop:
            step_losses, step_ids, step_rows = [], [], 0
            for _ in range(cfg.grad_accum):
                rows = []
                for row in it:
                    pulled += 1
                    rows.append(row)
                    if len(rows) == cfg.batch_size:
                        break
                if len(rows) < cfg.batch_size:
                    result.exhausted = True
                    break
                batch = collator(rows)
                result.dropped.update(batch["dropped"])
                tensors = _to(batch, device, torch.bfloat16 if engine is not None and bf16 else None)
                empty = batch["input_ids"].shape[0] == 0  # every row dropped (reasons in result.dropped)
                if empty and engine is None:
                    continue  # nothing to learn from; a step with no rows at all is skipped below
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16 and engine is None
                                    and device.type == "cuda"):
                    if empty:  # DeepSpeed: keep ranks in step with a zero loss
                        loss = sum(p.sum() for p in params) * 0.0
                    else:
                        loss = train_module(**tensors)
                if engine is not None:
                    engine.backward(loss)
                    engine.step()
                else:
                    (loss / cfg.grad_accum).backward()
                if not empty:
                    step_losses.append(float(loss.detach()))
                step_ids += batch["ids"]
                task_counts.update(batch["tasks"])
                step_rows += len(batch["ids"])
            if result.exhausted:
                note(f"the rows ran out after {step} steps (of {total}); stopping")
                break
            if not step_rows:
                empty_steps += 1
                result.skipped_steps += 1
                if engine is None:
                    optimizer.zero_grad(set_to_none=True)
                if empty_steps >= MAX_EMPTY_STEPS:
                    reasons = ", ".join(f"{k} {v}" for k, v in result.dropped.most_common()) or "none counted"
                    raise ValueError(f"every row of {empty_steps} steps in a row was dropped ({reasons}); "
                                     "fix the data or the config (max_length, max_pixels, box_format)")
                if engine is None:
                    note(f"step {step + 1}: every row was dropped ({dict(result.dropped)}); skipping it")
                    continue
            else:
                empty_steps = 0
            grad_norm = None
            if engine is None:
                if cfg.max_grad_norm > 0:
                    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            else:
                gn = engine.get_global_grad_norm()
                grad_norm = None if gn is None else float(gn)
            step += 1
            samples_total += step_rows
            run_samples += step_rows
            sps = run_samples / max(1e-9, time.perf_counter() - t0)
            loss_value = sum(step_losses) / len(step_losses) if step_losses else float("nan")
            result.losses.append(loss_value)
            result.ids.append(step_ids)
            rec = {"step": step, "loss": loss_value, "lr": scheduler.get_last_lr()[0], "grad_norm": grad_norm,
                   "samples": samples_total, "samples_per_s": sps}
            logs.step(rec, step_ids, metrics=step % cfg.log_every == 0 or step == stop)
            prog.update(task, completed=step, loss=f"{loss_value:.4f}", sps=f"{sps:.1f}")
            if (cfg.save_every and step % cfg.save_every == 0) or step == stop:
                save(step)
    logs.close()
    result.steps = step
    result.samples_per_s = run_samples / max(1e-9, time.perf_counter() - t0)
    if result.exhausted and step > 0 and (latest_checkpoint(out) is None or latest_checkpoint(out).name
                                          != checkpoint_dir(out, step).name):
        save(step)
    if step >= total or result.exhausted:
        if rank == 0:
            result.model_dir = save_final(module, out / "model")
            (out / "model" / "train_summary.json").write_text(json.dumps({
                "stage": cfg.stage, "steps": step, "samples": samples_total, "task_counts": dict(task_counts),
                "dropped": dict(result.dropped), "config": cfg.to_dict()}, indent=2) + "\n")
        if world > 1:
            torch.distributed.barrier()
    return result
