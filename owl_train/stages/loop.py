"""The training loop both stages share.

AdamW over the trainable parameters (weight decay on matrices only), a cosine schedule with
linear warmup over ``ceil(warmup_ratio * max_steps)`` steps (as transformers'
``get_cosine_schedule_with_warmup``, floored at ``min_lr_ratio``), gradient accumulation,
clipping, bf16 autocast on CUDA; ``logs/metrics.jsonl`` and ``logs/samples.jsonl`` (the row ids
of every step) and TensorBoard when installed; checkpoints every ``save_every`` steps and at the
end; exact resume (trained weights, optimizer, scheduler, sampler state, RNG states). A progress
display (loss, samples/s) is the caller's: :class:`Progress`, none by default.

Plain torch and DeepSpeed differ only behind :class:`owl_train.stages.engine.Backend`
(see :mod:`owl_train.stages.engine`).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import torch

from owl_data.errors import FieldError
from owl_train.stages.config import MissingPathError, TrainConfig
from owl_train.data import Collator
from owl_train.stages.checkpoints import checkpoint_dir, latest_checkpoint, prune_checkpoints
from owl_train.stages.engine import DEFAULT_ZERO2, Backend, Placement, cosine_lambda, launched_by_deepspeed, \
    make_backend, place, to_device
from owl_train.stages.module import TrainModule

__all__ = ["LoopResult", "Progress", "cosine_lambda", "train", "launched_by_deepspeed", "DEFAULT_ZERO2",
           "RESUME_FREE", "MAX_EMPTY_STEPS"]

# Fields a resumed run may change: paths, logging, checkpoint cadence, where to stop (max_steps is checked apart).
RESUME_FREE = frozenset({"model", "corpus", "mix", "out", "resume", "deepspeed", "device", "num_workers", "max_steps",
                         "stop_at_step", "log_every", "save_every", "keep_checkpoints", "tensorboard", "progress"})
# Consecutive optimizer steps whose rows are all dropped before the run stops with an error.
MAX_EMPTY_STEPS = 8


@dataclass
class LoopResult:
    """What :func:`train` returns: this process's view of the run."""

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


class Progress(Protocol):
    """A progress display the caller gives :func:`train` (the CLI's Rich bar); opened on rank 0
    when ``cfg.progress``, updated after every step, closed when the steps end (or fail)."""

    def open(self, desc: str, total: int, done: int) -> None: ...
    def update(self, step: int, loss: float, samples_per_s: float) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class _Plan:
    """What a run fixed before its first step."""

    cfg: TrainConfig
    out: Path  # the run folder
    total: int  # the schedule's steps (max_steps, or one pass over the rows)
    stop: int  # the step this run stops at (stop_at_step, else total)
    where: Placement
    tokenizer_src: Path  # the init model folder, whose tokenizer every checkpoint carries


@dataclass
class _State:
    """The loop's moving counters (what a checkpoint stores besides the weights)."""

    result: LoopResult  # losses, ids, task_counts, dropped, exhausted, skipped_steps
    step: int = 0  # optimizer steps, over resumes
    samples: int = 0  # rows trained on, over resumes
    pulled: int = 0  # rows this process took from the source in this run
    run_samples: int = 0  # rows trained on in this run
    empty_steps: int = 0  # consecutive steps whose rows were all dropped
    t0: float = field(default_factory=time.perf_counter)

    def samples_per_s(self) -> float:
        return self.run_samples / max(1e-9, time.perf_counter() - self.t0)


@dataclass
class _StepRows:
    """One optimizer step's micro-batches: their losses (non-empty ones), row ids and row count."""

    losses: list[float] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    rows: int = 0


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


def _schedule_steps(cfg: TrainConfig, rows: int) -> tuple[int, int]:
    """``(total, stop)``: the schedule's length and the step this run stops at, for ``rows`` rows
    left for this rank.

    Raises:
        ValueError: with ``max_steps`` 0, fewer rows than one step takes.
    """
    per_step = cfg.batch_size * cfg.grad_accum
    total = cfg.max_steps or max(1, rows // per_step)
    if not cfg.max_steps and rows < per_step:
        raise ValueError(f"the mix gives this rank {rows} rows, fewer than one step's {per_step}; "
                         "make a longer mix or lower batch_size/grad_accum")
    return total, cfg.stop_at_step or total


def _resume_dir(cfg: TrainConfig, out: Path, note: Callable[[str], None]) -> Path | None:
    """The checkpoint to resume from (None: start at step 0), decided before anything is built.

    Raises:
        MissingPathError: ``resume`` names a folder without ``state.json``.
        FieldError: no ``resume`` while ``out`` holds checkpoints.
    """
    if not cfg.resume:
        if latest_checkpoint(out) is not None:
            raise FieldError("out", f"out {out} already holds checkpoints: resume with `resume` latest or "
                                    "choose a new `out`")
        return None
    resume_dir = latest_checkpoint(out) if cfg.resume == "latest" else Path(cfg.resume)
    if cfg.resume == "latest" and resume_dir is None:
        note(f"`resume` latest: no checkpoint in {out / 'checkpoints'}; starting from step 0")
    elif resume_dir is not None and not (resume_dir / "state.json").is_file():
        raise MissingPathError("resume", f"resume {resume_dir}: not a training checkpoint (no state.json)")
    return resume_dir


def _check_resume_config(resume_dir: Path, saved: dict[str, Any], cfg: TrainConfig) -> None:
    """The checkpoint's config equals this run's on every field that changes what is trained.

    Raises:
        FieldError: (field ``resume``) the fields that differ, with both values.
    """
    now = json.loads(json.dumps(cfg.to_dict()))
    diff = [k for k in now if k not in RESUME_FREE and k in saved and saved[k] != now[k]]
    if diff:
        was = ", ".join(f"{k}={saved[k]!r}" for k in diff)
        has = ", ".join(f"{k}={now[k]!r}" for k in diff)
        raise FieldError("resume", f"checkpoint {resume_dir} was made with {was}; this run has {has}: resume "
                                   "with the checkpoint's settings, or start a new run in a new `out`")


def _restore(backend: Backend, resume_dir: Path, plan: _Plan, source: Any, state: _State) -> None:
    """Load the checkpoint into ``backend``, ``source`` and ``state``.

    Raises:
        ValueError: the checkpoint has another ``max_steps`` or differs on a trained-on field.
    """
    saved = backend.load(resume_dir)
    if saved["max_steps"] != plan.total:
        raise ValueError(f"checkpoint {resume_dir} was made with max_steps={saved['max_steps']}, this run has "
                         f"{plan.total}; resume with the same max_steps (the schedule depends on it)")
    _check_resume_config(resume_dir, saved.get("config", {}), plan.cfg)
    state.step = int(saved["step"])
    state.result.task_counts = Counter(saved["task_counts"])
    state.samples = int(saved["samples"])
    where = plan.where
    source.load_state_dict(saved["data"] if where.world == 1 else saved["data_ranks"][str(where.rank)])


def _save_checkpoint(plan: _Plan, backend: Backend, source: Any, state: _State) -> None:
    """Checkpoint at ``state.step``: the backend's files plus ``state.json`` (step, schedule length,
    counters, every rank's sampler state, config); rank 0 prunes to ``keep_checkpoints``."""
    folder = checkpoint_dir(plan.out, state.step)
    data = source.state_dict(state.pulled)
    saved = {"step": state.step, "max_steps": plan.total, "task_counts": dict(state.result.task_counts),
             "samples": state.samples, "data": data, "config": plan.cfg.to_dict()}
    if plan.where.world > 1:
        gathered: list[Any] = [None] * plan.where.world
        torch.distributed.all_gather_object(gathered, data)
        saved["data_ranks"] = {str(r): d for r, d in enumerate(gathered)}
    backend.save(folder, saved, plan.tokenizer_src)
    if plan.where.rank == 0:
        prune_checkpoints(plan.out, plan.cfg.keep_checkpoints)


def _take_rows(it: Iterator[dict[str, Any]], n: int, state: _State) -> list[dict[str, Any]]:
    """Up to ``n`` rows from ``it`` (fewer when it runs out), counted in ``state.pulled``."""
    rows = []
    for row in it:
        state.pulled += 1
        rows.append(row)
        if len(rows) == n:
            break
    return rows


def _accumulate(cfg: TrainConfig, backend: Backend, it: Iterator[dict[str, Any]], collator: Collator,
                state: _State) -> _StepRows | None:
    """Forward and backward of one step's ``grad_accum`` micro-batches; None when the rows run out
    (``state.result.exhausted`` is then set)."""
    got = _StepRows()
    for _ in range(cfg.grad_accum):
        rows = _take_rows(it, cfg.batch_size, state)
        if len(rows) < cfg.batch_size:
            state.result.exhausted = True
            return None
        batch = collator(rows)
        state.result.dropped.update(batch["dropped"])
        tensors = to_device(batch, backend.device, backend.pixel_dtype)
        empty = batch["input_ids"].shape[0] == 0  # every row dropped (reasons in result.dropped)
        loss = backend.micro_step(tensors, empty)
        if loss is not None:
            got.losses.append(loss)
        got.ids += batch["ids"]
        state.result.task_counts.update(batch["tasks"])
        got.rows += len(batch["ids"])
    return got


def _all_dropped(backend: Backend, state: _State, note: Callable[[str], None]) -> bool:
    """A step whose rows were all dropped: counted; True when it is skipped.

    Raises:
        ValueError: the :data:`MAX_EMPTY_STEPS`-th such step in a row.
    """
    state.empty_steps += 1
    state.result.skipped_steps += 1
    skipped = backend.drop_step()
    if state.empty_steps >= MAX_EMPTY_STEPS:
        reasons = ", ".join(f"{k} {v}" for k, v in state.result.dropped.most_common()) or "none counted"
        raise ValueError(f"every row of {state.empty_steps} steps in a row was dropped ({reasons}); "
                         "fix the data or the config (max_length, max_pixels, box_format)")
    if skipped:
        note(f"step {state.step + 1}: every row was dropped ({dict(state.result.dropped)}); skipping it")
    return skipped


def _record(plan: _Plan, backend: Backend, got: _StepRows, grad_norm: float | None, state: _State, logs: _Logs,
            progress: Progress | None) -> None:
    """Count a taken step and log it (metrics every ``log_every`` steps and at the last one)."""
    state.step += 1
    state.samples += got.rows
    state.run_samples += got.rows
    sps = state.samples_per_s()
    loss_value = sum(got.losses) / len(got.losses) if got.losses else float("nan")
    state.result.losses.append(loss_value)
    state.result.ids.append(got.ids)
    rec = {"step": state.step, "loss": loss_value, "lr": backend.scheduler.get_last_lr()[0], "grad_norm": grad_norm,
           "samples": state.samples, "samples_per_s": sps}
    logs.step(rec, got.ids, metrics=state.step % plan.cfg.log_every == 0 or state.step == plan.stop)
    if progress is not None:
        progress.update(state.step, loss_value, sps)


def _run_steps(plan: _Plan, backend: Backend, source: Any, collator: Collator, state: _State, logs: _Logs,
               progress: Progress | None, note: Callable[[str], None]) -> None:
    """Steps from ``state.step`` to ``plan.stop`` (or until the rows run out), checkpointing on
    ``save_every`` and at the stop."""
    cfg = plan.cfg
    it: Iterator[dict[str, Any]] = iter(source)
    while state.step < plan.stop:
        got = _accumulate(cfg, backend, it, collator, state)
        if got is None:
            note(f"the rows ran out after {state.step} steps (of {plan.total}); stopping")
            return
        if not got.rows:
            if _all_dropped(backend, state, note):
                continue
        else:
            state.empty_steps = 0
        grad_norm = backend.step()
        _record(plan, backend, got, grad_norm, state, logs, progress)
        if (cfg.save_every and state.step % cfg.save_every == 0) or state.step == plan.stop:
            _save_checkpoint(plan, backend, source, state)


def _finish(plan: _Plan, module: TrainModule, state: _State, save_final: Callable[[TrainModule, Path], Path]) -> None:
    """Rank 0 writes the final model folder and its ``train_summary.json``; ranks meet after."""
    result, cfg = state.result, plan.cfg
    if plan.where.rank == 0:
        result.model_dir = save_final(module, plan.out / "model")
        (plan.out / "model" / "train_summary.json").write_text(json.dumps({
            "stage": cfg.stage, "steps": state.step, "samples": state.samples,
            "task_counts": dict(result.task_counts), "dropped": dict(result.dropped), "config": cfg.to_dict()},
            indent=2) + "\n")
    if plan.where.world > 1:
        torch.distributed.barrier()


def train(cfg: TrainConfig, module: TrainModule, source: Any, collator: Collator, *,
          tokenizer_src: Path, save_final: Callable[[TrainModule, Path], Path],
          note: Callable[[str], None] = lambda s: None, progress: Progress | None = None) -> LoopResult:
    """Train ``module``'s trainable parameters on ``source``'s rows; see the module docstring.

    ``source`` has ``__iter__`` (rows), ``__len__`` (rows left for this rank),
    ``state_dict(pulled)`` and ``load_state_dict``. ``save_final(module, folder)`` writes the
    final model folder (on rank 0). ``progress`` is shown on rank 0 when ``cfg.progress``.

    Raises:
        FieldError: ``out`` holds checkpoints and ``resume`` is unset; ``resume``/``deepspeed``
            name a missing checkpoint or file (:class:`~owl_train.stages.config.MissingPathError`).
        ValueError: too few rows, nothing to train, a checkpoint made with other settings, or
            :data:`MAX_EMPTY_STEPS` steps in a row whose rows were all dropped.
    """
    out = Path(cfg.out)
    total, stop = _schedule_steps(cfg, len(source))
    resume_dir = _resume_dir(cfg, out, note)
    where = place(cfg)  # after the checks above: DeepSpeed's start (and its op builds) only for a run that can start
    plan = _Plan(cfg=cfg, out=out, total=total, stop=stop, where=where, tokenizer_src=Path(tokenizer_src))
    torch.manual_seed(cfg.seed)  # LoRA dropout; the data order never depends on it
    backend = make_backend(cfg, where, module, total)
    state = _State(result=LoopResult(steps=0, losses=[], ids=[], resumed_from=resume_dir))
    if resume_dir is not None:
        _restore(backend, resume_dir, plan, source, state)
        note(f"resumed from {resume_dir} at step {state.step}")
    logs = _Logs(out, state.step, where.rank, where.world, cfg.tensorboard, note)
    state.t0 = time.perf_counter()
    module.train()
    shown = progress if cfg.progress and where.rank == 0 else None
    if shown is not None:
        shown.open(cfg.stage, stop, state.step)
    try:
        _run_steps(plan, backend, source, collator, state, logs, shown, note)
    finally:
        if shown is not None:
            shown.close()
    logs.close()
    result = state.result
    result.steps = state.step
    result.samples_per_s = state.samples_per_s()
    latest = latest_checkpoint(out)
    if result.exhausted and state.step > 0 and (latest is None or latest.name != checkpoint_dir(out, state.step).name):
        _save_checkpoint(plan, backend, source, state)
    if state.step >= total or result.exhausted:
        _finish(plan, module, state, save_final)
    return result
