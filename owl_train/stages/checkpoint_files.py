"""A training checkpoint's files, read without trusting them.

Every ``.pt`` is opened with ``torch.load(weights_only=True)``: tensors, numbers, strings and
containers only, plus the few classes of an explicit allow-list (NumPy's array rebuild for
``rng.pt`` files written before the RNG state was kept as plain lists; DeepSpeed's own state
classes for its files). A pickle naming any other callable is refused before anything in it runs.
DeepSpeed's ``load_checkpoint`` unpickles its files fully, so :func:`check_pickles` opens each of
them weights-only first. Every fault (a missing, truncated or crafted file, a tensor of another
dtype or shape, a state that does not fit the run) is a :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import pickle
import random
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from owl_train.model.checkpoint import CheckpointError, read_safetensors

__all__ = ["RNG_ALLOW", "deepspeed_allow", "load_pt", "check_pickles", "load_tensors", "read_state",
           "capture_rng", "restore_rng", "load_rng", "load_optimizer", "load_scheduler", "tensor_specs",
           "file_hashes", "verify_hashes"]



def _numpy_allow() -> tuple[Any, ...]:
    """NumPy's array rebuild (``numpy._core`` from NumPy 2, ``numpy.core`` before)."""
    core = getattr(np, "_core", None) or np.core
    dtypes = getattr(np, "dtypes", None)
    return (core.multiarray._reconstruct, np.ndarray, np.dtype, *((dtypes.UInt32DType,) if dtypes else ()))


# An ``rng.pt`` written before NumPy's key was stored as a list holds an ndarray.
RNG_ALLOW: tuple[Any, ...] = _numpy_allow()
STATE_KEYS = {"step": int, "max_steps": int, "samples": int, "task_counts": dict}


def deepspeed_allow() -> list[Any]:
    """The classes DeepSpeed's checkpoint files hold besides tensors and plain values."""
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address, *RNG_ALLOW]


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    m = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", text)
    if m:
        return f"it names {m.group(1)}"
    m = re.search(r"WeightsUnpickler error: ([^\n]*?)(?: Please use|\n|$)", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return (m.group(1) if m else (lines or [type(exc).__name__])[0].split(". ")[0])[:200]


def _allowing(allow: Sequence[Any]) -> Any:
    """A context allowing ``allow`` in weights-only loads (torch < 2.5: added for the process)."""
    if hasattr(torch.serialization, "safe_globals"):
        return torch.serialization.safe_globals(list(allow))
    torch.serialization.add_safe_globals(list(allow))
    return contextlib.nullcontext()


def load_pt(path: Path, allow: Sequence[Any] = (), mmap: bool = False) -> Any:
    """``torch.load`` of ``path``, weights-only, with the classes ``allow`` added.

    Raises:
        CheckpointError: the file is missing, damaged, or names a type outside the allow-list.
    """
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} is missing")
    try:
        with _allowing(allow):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        if not _first_line(exc).startswith("it names"):
            raise CheckpointError(f"checkpoint file {path} is damaged (UnpicklingError: {_first_line(exc)}); "
                                  "resume from an earlier checkpoint") from None
        raise CheckpointError(f"checkpoint file {path} is refused: it is not weights-only ({_first_line(exc)}); "
                              "nothing in it was run. Resume only from checkpoints this trainer wrote") from None
    except Exception as exc:  # noqa: BLE001 - a torn zip, EOF, bad records: all one fault
        raise CheckpointError(f"checkpoint file {path} is damaged ({type(exc).__name__}: {_first_line(exc)}); "
                              "resume from an earlier checkpoint") from None


def check_pickles(folder: Path, allow: Sequence[Any]) -> None:
    """Open every ``.pt`` in ``folder`` weights-only (memory-mapped) before another loader unpickles it.

    Raises:
        CheckpointError: the first file that is damaged or not weights-only.
    """
    for f in sorted(folder.glob("*.pt")):
        load_pt(f, allow, mmap=True)


def load_tensors(path: Path, want: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of the safetensors file ``path``: exactly the names of ``want``, each of its dtype and shape.

    Raises:
        CheckpointError: the file is missing or damaged, or its names, dtypes or shapes differ.
    """
    got = read_safetensors(path, "checkpoint file")
    if set(got) != set(want):
        raise CheckpointError(f"checkpoint {path.parent} trained other parameters than this run "
                              f"(missing {sorted(set(want) - set(got))[:3]}, unexpected "
                              f"{sorted(set(got) - set(want))[:3]}); resume with the same stage, tune and freeze "
                              "settings")
    for k, v in got.items():
        if v.dtype != want[k].dtype or v.shape != want[k].shape:
            raise CheckpointError(f"checkpoint file {path}: {k} is {str(v.dtype).removeprefix('torch.')} "
                                  f"{tuple(v.shape)}, the run's is {str(want[k].dtype).removeprefix('torch.')} "
                                  f"{tuple(want[k].shape)} (a damaged header?)")
    return got


def file_hashes(folder: Path, names: Sequence[str]) -> dict[str, str]:
    """The sha256 of each file ``names`` in ``folder`` (recorded in ``state.json`` when it is written)."""
    out = {}
    for name in names:
        h = hashlib.sha256()
        with open(folder / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        out[name] = h.hexdigest()
    return out


def verify_hashes(folder: Path, state: dict[str, Any], names: Sequence[str]) -> None:
    """Each of ``names`` has the sha256 ``state["files"]`` records (a checkpoint written before has none).

    Raises:
        CheckpointError: a file is missing or its bytes changed (a flip inside tensor data loads silently else).
    """
    want = state.get("files")
    if want is None:
        return
    if not isinstance(want, dict):
        raise CheckpointError(f"checkpoint file {folder / 'state.json'} is damaged: field files is not an object")
    for name in (n for n in names if n in want):
        if not (folder / name).is_file():
            raise CheckpointError(f"checkpoint file {folder / name} is missing")
        if file_hashes(folder, [name])[name] != want[name]:
            raise CheckpointError(f"checkpoint file {folder / name} is damaged: its sha256 is not the one "
                                  "state.json records; resume from an earlier checkpoint")


def read_state(folder: Path) -> dict[str, Any]:
    """``state.json`` of a checkpoint: a JSON object with step, max_steps, samples, task_counts and sampler state.

    Raises:
        CheckpointError: missing, not JSON, or a field missing or of another type.
    """
    path = folder / "state.json"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint file {path} is unreadable ({_first_line(exc)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint file {path} is damaged: not a JSON object")
    bad = [k for k, t in STATE_KEYS.items() if not isinstance(state.get(k), t) or isinstance(state.get(k), bool)]
    if not bad and "data" not in state and "data_ranks" not in state:
        bad = ["data"]
    if bad:
        raise CheckpointError(f"checkpoint file {path} is damaged: field {bad[0]} is missing or of the wrong type")
    return state


def capture_rng() -> dict[str, Any]:
    """Torch, CUDA, Python and NumPy generator states in plain types (NumPy's key as a list of ints)."""
    name, key, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": (name, key.tolist(), int(pos), int(has_gauss), float(gauss)),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    name, key, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), pos, has_gauss, gauss))
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fit(path: Path, what: str, apply: Callable[[], None]) -> None:
    try:
        apply()
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError, OverflowError) as exc:
        raise CheckpointError(f"checkpoint file {path} does not fit this run's {what} ({type(exc).__name__}: "
                              f"{_first_line(exc)})") from None


def load_rng(path: Path) -> None:
    """Restore the generators from ``path`` (see :func:`load_pt`)."""
    state = load_pt(path, RNG_ALLOW)
    _fit(path, "generators", lambda: restore_rng(state))


def load_optimizer(path: Path, optimizer: torch.optim.Optimizer) -> None:
    """Load ``path`` into ``optimizer``; every state tensor has its parameter's shape."""
    sd = load_pt(path)
    params = [p for g in optimizer.param_groups for p in g["params"]]

    def apply() -> None:
        for i, st in sd["state"].items():
            for name, v in st.items():
                if isinstance(v, torch.Tensor) and v.dim() and v.shape != params[i].shape:
                    raise ValueError(f"state {name} of parameter {i} is {tuple(v.shape)}, "
                                     f"the parameter {tuple(params[i].shape)}")
        optimizer.load_state_dict(sd)
    _fit(path, "optimizer", apply)


def load_scheduler(path: Path, scheduler: Any) -> None:
    """Load ``path`` into ``scheduler``: the same fields as the scheduler's own state."""
    sd = load_pt(path)

    def apply() -> None:
        if not isinstance(sd, dict) or set(sd) != set(scheduler.state_dict()):
            raise ValueError("other fields than the schedule's")
        if not isinstance(sd["last_epoch"], int):
            raise TypeError("last_epoch is not an integer")
        scheduler.load_state_dict(sd)
    _fit(path, "schedule", apply)


def tensor_specs(module: nn.Module) -> dict[str, torch.Tensor]:
    """The trained parameters of ``module`` by name."""
    return {n: p for n, p in module.named_parameters() if p.requires_grad}
