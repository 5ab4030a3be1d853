"""Model folders, training checkpoints, ``merge`` and ``zero-to-fp32``.

A **model folder** is Hugging Face Qwen2-VL layout (:func:`owl_train.model.checkpoint.save_pretrained`)
plus the tokenizer files, and optionally a LoRA adapter (:mod:`owl_train.stages.lora`) and a
stage-2 prompt encoder (:mod:`owl_train.stages.ptuning`). A run folder holds ``model/`` (the
final model), ``checkpoints/step-NNNNNNNN/`` and ``logs/``.

A **training checkpoint** (single process) is a folder with ``trainable.safetensors`` (the
trained parameters under the training module's names), ``optimizer.pt``, ``scheduler.pt``,
``rng.pt`` (torch, CUDA, Python and NumPy generator states, in plain types) and ``state.json``
(step, sampler state, counters, config, and the sha256 of the four other files, checked on resume).
Under DeepSpeed the engine writes its own files into the same tag folder and ``state.json``/``rng_rank{r}.pt`` sit beside them. Each folder also holds the
model's ``config.json`` and tokenizer, so ``zero-to-fp32`` needs nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from owl_data.errors import FieldError
from owl_train.stages.checkpoint_files import capture_rng, check_pickles, deepspeed_allow, file_hashes, \
    load_optimizer, load_rng, load_scheduler, load_tensors, read_state, restore_rng, tensor_specs, verify_hashes
from owl_train.model.checkpoint import EXTRA_FILE, INDEX_FILE, load_pretrained, save_pretrained
from owl_train.model.config import OwlVLConfig
from owl_train.model.model import OwlVL
from owl_train.stages.lora import ADAPTER_CONFIG, ADAPTER_FILE, base_state, has_lora, load_adapter, merge_lora, \
    save_adapter
from owl_train.stages.ptuning import PROMPT_FILE, PROMPT_JSON, PromptEncoder, load_prompt_encoder, \
    save_prompt_encoder

__all__ = ["TOKENIZER_FILES", "LoadedModel", "resolve_model_dir", "load_tokenizer", "copy_tokenizer",
           "load_model_dir", "save_model_dir", "merge", "zero_to_fp32", "checkpoint_dir", "list_checkpoints",
           "latest_checkpoint", "prune_checkpoints", "save_train_state", "load_train_state", "capture_rng",
           "restore_rng", "check_run_folder", "RUN_ENTRIES"]

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
STATE_JSON = "state.json"
TRAINABLE_FILE = "trainable.safetensors"
HASHED = (TRAINABLE_FILE, "optimizer.pt", "scheduler.pt", "rng.pt")  # their sha256 in state.json ("files")


@dataclass
class LoadedModel:
    model: OwlVL
    prompt: PromptEncoder | None
    tokenizer: Any  # tokenizers.Tokenizer
    path: Path


def resolve_model_dir(path: str | Path) -> Path:
    """``path`` when it is a model folder, ``path/model`` when it is a run folder.

    Raises:
        FileNotFoundError: neither holds a ``config.json``.
    """
    p = Path(path)
    for cand in (p, p / "model"):
        if (cand / "config.json").is_file():
            return cand
    raise FileNotFoundError(f"{p} is not a model folder (no config.json) nor a run folder with model/")


def load_tokenizer(path: str | Path) -> Any:
    from tokenizers import Tokenizer

    f = Path(path) / "tokenizer.json"
    if not f.is_file():
        raise FileNotFoundError(f"{path} has no tokenizer.json (a model folder holds its tokenizer)")
    text = f.read_text(encoding="utf-8", errors="replace")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{f} is not valid JSON ({exc.msg}, line {exc.lineno}): copy the model's tokenizer "
                         "files again") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("model"), dict):
        raise ValueError(f"{f} is not a tokenizers file (no 'model' mapping): copy the model's tokenizer files again")
    return Tokenizer.from_str(text)


def copy_tokenizer(src: str | Path, dst: str | Path) -> None:
    Path(dst).mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (Path(src) / name).is_file():
            shutil.copy2(Path(src) / name, Path(dst) / name)


def load_model_dir(path: str | Path, *, merge_lora_weights: bool = True, dtype: torch.dtype = torch.float32,
                   device: str | torch.device = "cpu") -> LoadedModel:
    """Model, prompt encoder (or None) and tokenizer of a model (or run) folder.

    A LoRA adapter beside the weights is injected and, with ``merge_lora_weights``, merged.
    """
    p = resolve_model_dir(path)
    model = load_pretrained(p, dtype=torch.float32)
    if (p / ADAPTER_FILE).is_file():
        load_adapter(model, p)
        if merge_lora_weights:
            merge_lora(model)
    prompt = load_prompt_encoder(p)
    model = model.to(device=device, dtype=dtype)
    if prompt is not None:
        prompt = prompt.to(device=device, dtype=dtype)
    return LoadedModel(model=model, prompt=prompt, tokenizer=load_tokenizer(p), path=p)


class _Plain:
    """What ``save_pretrained`` reads from a model: ``config`` and ``state_dict()``."""

    def __init__(self, config: OwlVLConfig, state: dict[str, torch.Tensor]) -> None:
        self.config, self._state = config, state

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self._state


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def save_model_dir(model: OwlVL, out: str | Path, tokenizer_src: str | Path, *, prompt: PromptEncoder | None = None,
                   base_unchanged_from: str | Path | None = None) -> Path:
    """Write a model folder: weights (HF layout; with LoRA the base weights plus the adapter),
    the prompt encoder when given, and the tokenizer from ``tokenizer_src``.

    ``base_unchanged_from``: a model folder whose weight files equal ``model``'s weights
    bit for bit (stage 2 trains the prompt encoder only): its files are hard-linked (or copied)
    instead of written again.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in (ADAPTER_FILE, ADAPTER_CONFIG, PROMPT_FILE, PROMPT_JSON):
        (out / stale).unlink(missing_ok=True)
    src = Path(base_unchanged_from) if base_unchanged_from is not None else None
    if src is not None and not (src / ADAPTER_FILE).is_file():
        for stale in [*out.glob("model*.safetensors"), out / INDEX_FILE, out / EXTRA_FILE]:
            stale.unlink(missing_ok=True)
        for f in [src / "config.json", *src.glob("model*.safetensors"), src / INDEX_FILE, src / EXTRA_FILE]:
            if f.is_file():
                _link_or_copy(f, out / f.name)
    elif has_lora(model):
        save_pretrained(_Plain(model.config, base_state(model)), out)  # type: ignore[arg-type]
        save_adapter(model, out)
    else:
        save_pretrained(model, out)
    if prompt is not None:
        save_prompt_encoder(prompt, out)
    copy_tokenizer(tokenizer_src, out)
    return out


def merge(model_dir: str | Path, out: str | Path) -> Path:
    """``owl-train merge``: fold a model folder's LoRA adapter into its base; HF layout in ``out``.

    Raises:
        ValueError: the folder has no adapter.
    """
    p = resolve_model_dir(model_dir)
    if not (p / ADAPTER_FILE).is_file():
        raise ValueError(f"{p} has no LoRA adapter ({ADAPTER_FILE}); nothing to merge")
    loaded = load_model_dir(p, merge_lora_weights=True)
    return save_model_dir(loaded.model, out, p, prompt=loaded.prompt)


def zero_to_fp32(checkpoint: str | Path, out: str | Path, tag: str | None = None) -> Path:
    """``owl-train zero-to-fp32``: a DeepSpeed ZeRO checkpoint -> an fp32 model folder (HF layout).

    ``checkpoint`` is a run's ``checkpoints/`` folder (its ``latest`` tag, or ``tag``) or one tag
    folder. The state dict comes from ``deepspeed.utils.zero_to_fp32.get_fp32_state_dict_from_zero_checkpoint``
    (frozen parameters included); tied embeddings stay tied (one tensor, ``tie_word_embeddings``).
    A LoRA run is merged; a stage-2 run keeps its prompt encoder.

    Raises:
        FileNotFoundError: not a DeepSpeed checkpoint folder.
        CheckpointError: a ``.pt`` file that is damaged or not weights-only (opened weights-only first).
        ValueError: keys that do not fit the model.
    """
    ck = Path(checkpoint)
    if tag is None and not (ck / "latest").is_file():
        if not ((ck / STATE_JSON).is_file() or any(ck.glob("*model_states.pt"))):
            raise FileNotFoundError(f"{ck} is not a DeepSpeed checkpoint folder (no 'latest', no model states)")
        ck, tag = ck.parent, ck.name  # one tag folder
    if tag is None:
        tag = (ck / "latest").read_text().strip()
    tag_dir = ck / tag
    if (tag_dir / TRAINABLE_FILE).is_file() and not any(tag_dir.glob("*model_states.pt")):
        raise FileNotFoundError(f"{tag_dir} is a single-process checkpoint, not a DeepSpeed ZeRO one: the run's "
                                "model/ folder is already an HF-layout model (resume it with `resume` to finish)")
    if not (tag_dir / "config.json").is_file():
        raise FileNotFoundError(f"{tag_dir} has no config.json: not an Owl-VL DeepSpeed checkpoint")
    check_pickles(tag_dir, deepspeed_allow())  # DeepSpeed's reader unpickles them fully
    if not torch.cuda.is_available():  # as the trainer does: no "Setting accelerator to CPU" warning
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    sd = get_fp32_state_dict_from_zero_checkpoint(str(ck), tag=tag)
    model = OwlVL(OwlVLConfig.from_pretrained(tag_dir))
    if (tag_dir / ADAPTER_CONFIG).is_file():
        c = json.loads((tag_dir / ADAPTER_CONFIG).read_text())
        from owl_train.stages.lora import apply_lora

        apply_lora(model, int(c["r"]), int(c["lora_alpha"]), float(c["lora_dropout"]), c["target_modules"])
    msd = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    psd = {k[len("prompt."):]: v for k, v in sd.items() if k.startswith("prompt.")}
    other = [k for k in sd if not k.startswith(("model.", "prompt."))]
    if other:
        raise ValueError(f"checkpoint keys outside the model and prompt encoder: {other[:4]}")
    res = model.load_state_dict(msd, strict=False)
    if res.missing_keys or res.unexpected_keys:
        raise ValueError(f"zero checkpoint does not fit the model: missing {res.missing_keys[:4]}, "
                         f"unexpected {res.unexpected_keys[:4]}")
    if has_lora(model):
        merge_lora(model)
    prompt = None
    if psd:
        d = json.loads((tag_dir / PROMPT_JSON).read_text())
        prompt = PromptEncoder(int(d["num_virtual_tokens"]), int(d["dim"]), int(d["hidden"]))
        prompt.load_state_dict(psd)
    return save_model_dir(model.float(), out, tag_dir, prompt=prompt)


# What a run folder holds (``stage2-mix`` is stage 2's on-the-fly mix).
RUN_ENTRIES = ("model", "checkpoints", "logs", "stage2-mix")


def check_run_folder(out: str | Path, resume: str | None) -> None:
    """Refuse an ``out`` folder that would mix a run into other files or overwrite a previous run.

    Fine: a missing or empty folder, one holding only ``stage2-mix/`` (a stage-2 run that stopped
    before its first step), or with ``resume`` a run folder. Nothing is written or deleted here.

    Raises:
        FieldError: (field ``out``) ``out`` is a file, holds entries other than :data:`RUN_ENTRIES`,
            or holds a previous run (``model/``, checkpoints or logs) and ``resume`` is not set.
    """
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise FieldError("out", f"out {out} is a file; name a folder for the run")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in RUN_ENTRIES)
    if foreign:
        shown = ", ".join(foreign[:4]) + (", ..." if len(foreign) > 4 else "")
        raise FieldError("out", f"out {out} is not empty and is not an Owl-VL run folder (it holds {shown}); "
                                "choose a new or empty folder (nothing was written or deleted)")
    logs = out / "logs"
    previous = (out / "model").exists() or latest_checkpoint(out) is not None or (
        logs.is_dir() and any(f.is_file() and f.stat().st_size for f in logs.rglob("*")))
    if previous and not resume:
        raise FieldError("out", f"out {out} already holds a run (model/, checkpoints or logs): resume with "
                                "`resume` latest or choose a new `out` (nothing was overwritten)")


# -- training checkpoints ------------------------------------------------------------------------
def checkpoint_dir(run: str | Path, step: int) -> Path:
    return Path(run) / "checkpoints" / f"step-{step:08d}"


def list_checkpoints(run: str | Path) -> list[Path]:
    root = Path(run) / "checkpoints"
    return sorted(p for p in root.glob("step-*") if (p / STATE_JSON).is_file()) if root.is_dir() else []


def latest_checkpoint(run: str | Path) -> Path | None:
    found = list_checkpoints(run)
    return found[-1] if found else None


def prune_checkpoints(run: str | Path, keep: int) -> None:
    for p in list_checkpoints(run)[:-keep]:
        shutil.rmtree(p, ignore_errors=True)


def write_model_meta(folder: Path, model: OwlVL, tokenizer_src: str | Path, prompt: PromptEncoder | None) -> None:
    """config.json, tokenizer, adapter config and prompt-encoder shape: what zero-to-fp32 rebuilds from."""
    (folder / "config.json").write_text(json.dumps(model.config.to_hf_dict(), indent=2) + "\n")
    copy_tokenizer(tokenizer_src, folder)
    if has_lora(model):
        c = {"peft_type": "LORA", "bias": "none", "module_names": "owl_train", **model._owl_lora}
        (folder / ADAPTER_CONFIG).write_text(json.dumps(c, indent=2) + "\n")
    if prompt is not None:
        (folder / PROMPT_JSON).write_text(json.dumps(prompt.describe(), indent=2) + "\n")


def save_train_state(folder: Path, *, module: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                     state: dict[str, Any]) -> Path:
    """Write a single-process checkpoint atomically (a temporary folder renamed into place)."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    trainable = {n: p.detach().cpu().contiguous() for n, p in module.named_parameters() if p.requires_grad}
    save_file(trainable, str(tmp / TRAINABLE_FILE), metadata={"format": "pt"})
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(capture_rng(), tmp / "rng.pt")
    (tmp / STATE_JSON).write_text(json.dumps({**state, "files": file_hashes(tmp, HASHED)}, indent=2) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder


def load_train_state(folder: Path, *, module: nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: Any) -> dict[str, Any]:
    """Restore a single-process checkpoint into ``module``/``optimizer``/``scheduler`` and the RNGs.

    Every file is read weights-only and checked (:mod:`owl_train.stages.checkpoint_files`) before
    the parameters are touched.

    Raises:
        CheckpointError: (a ValueError) a file is missing, damaged, not weights-only, or does not fit
            the run (other trained parameters, dtypes or shapes), named in the message.
    """
    folder = Path(folder)
    state = read_state(folder)
    verify_hashes(folder, state, HASHED)
    params = tensor_specs(module)
    got = load_tensors(folder / TRAINABLE_FILE, params)
    with torch.no_grad():
        for n, v in got.items():
            params[n].copy_(v)
    load_optimizer(folder / "optimizer.pt", optimizer)
    load_scheduler(folder / "scheduler.pt", scheduler)
    load_rng(folder / "rng.pt")
    return state
