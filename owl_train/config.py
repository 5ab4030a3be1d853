"""Training configuration: one frozen dataclass, read from YAML, overridable from the command line.

A pipeline YAML (``pipelines/stage1.yaml``, ``pipelines/stage2.yaml``) holds one mapping under
the key ``train:`` whose keys are the fields of :class:`TrainConfig`; every field can be
overridden with ``--set key=value`` (the value is read as YAML: ``--set lr=1e-4``,
``--set lora_targets=[q_proj,v_proj]``) or by the commands' explicit flags. A bad value raises
``ValueError`` naming the field, the value and the fix; an unknown key names the closest field.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from owl_train.data.config import DataConfig
from owl_train.model.variants import VARIANTS

__all__ = ["TrainConfig", "load_train_config", "parse_overrides", "DECODER_LINEARS"]

# The decoder's linear layers (owl_train.model.decoder): LoRA targets by default.
DECODER_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _check(cond: bool, name: str, value: Any, fix: str) -> None:
    if not cond:
        raise ValueError(f"train config field {name}={value!r} is invalid: {fix}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a stage-1 or stage-2 run needs (see README, "Training").

    Steps are optimizer steps; one step consumes ``batch_size * grad_accum * world`` rows.
    """

    stage: str = "stage1"  # stage1 (continued pretraining on the mix) | stage2 (P-tuning)
    model: str = ""  # initial model dir (HF layout + tokenizer); stage 2: the stage-1 output
    corpus: str = ""
    mix: str | None = None  # stage 1: required; stage 2: optional (built from the corpus when None)
    split: str = "train"  # split of the on-the-fly stage-2 mix
    out: str = "runs/stage1"
    # data (owl_train.data.DataConfig)
    min_pixels: int = DataConfig.min_pixels
    max_pixels: int = DataConfig.max_pixels
    max_length: int = DataConfig.max_length
    box_format: str = DataConfig.box_format
    pack: bool = DataConfig.pack
    pad_to_multiple_of: int | None = DataConfig.pad_to_multiple_of
    num_workers: int = 0  # DataLoader workers decoding rows
    # optimisation
    batch_size: int = 4  # rows per micro-batch per process
    grad_accum: int = 1
    max_steps: int = 0  # 0: one pass over the mix
    stop_at_step: int = 0  # 0: run to max_steps; else save and stop there (the schedule keeps max_steps)
    lr: float = 2e-5
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    warmup_ratio: float = 0.03
    min_lr_ratio: float = 0.0
    max_grad_norm: float = 1.0  # 0: no clipping
    seed: int = 0
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # what is trained
    tune: str = "full"  # full | lora (decoder linears; projector still trained fully)
    freeze_vision: bool = True
    train_projector: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = DECODER_LINEARS
    # stage 1: a point-grounding preset (owl_train.model.variants.VARIANTS) applied to the loaded model
    # before training; None keeps the model's options. mrope_interleaved always keeps the checkpoint's.
    point_variant: str | None = None
    # stage 2 (P-tuning)
    num_virtual_tokens: int = 8
    prompt_hidden: int = 0  # 0: the model width
    # logging and checkpoints
    log_every: int = 1
    save_every: int = 0  # 0: only at the end (and at stop_at_step)
    keep_checkpoints: int = 2
    tensorboard: bool = True
    progress: bool = True
    deepspeed: str | None = None  # a DeepSpeed JSON (pipelines/zero2.json)
    resume: str | None = None  # "latest" or a checkpoint folder

    def __post_init__(self) -> None:
        self._check_types()
        _check(self.stage in ("stage1", "stage2"), "stage", self.stage, "use stage1 or stage2")
        for name in ("min_pixels", "max_pixels", "max_length", "batch_size", "grad_accum", "log_every",
                     "keep_checkpoints", "lora_r", "lora_alpha"):
            v = getattr(self, name)
            _check(isinstance(v, int) and not isinstance(v, bool) and v >= 1, name, v, "use a positive integer")
        for name in ("max_steps", "stop_at_step", "save_every", "num_workers", "prompt_hidden", "seed"):
            v = getattr(self, name)
            _check(isinstance(v, int) and not isinstance(v, bool) and v >= 0, name, v,
                   "use an integer >= 0 (0 means: see the field's comment)")
        _check(self.max_steps == 0 or self.stop_at_step <= self.max_steps, "stop_at_step", self.stop_at_step,
               f"must be <= max_steps ({self.max_steps})")
        _check(self.lr > 0, "lr", self.lr, "use a positive learning rate, e.g. 2e-5 (stage 1) or 1e-3 (stage 2)")
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "use a value >= 0")
        _check(len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas), "adam_betas",
               self.adam_betas, "use two values in [0, 1), e.g. [0.9, 0.999]")
        _check(self.adam_eps > 0, "adam_eps", self.adam_eps, "use a small positive value such as 1e-8")
        _check(0 <= self.warmup_ratio < 1, "warmup_ratio", self.warmup_ratio, "use a fraction in [0, 1), e.g. 0.03")
        _check(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", self.min_lr_ratio, "use a fraction in [0, 1]")
        _check(self.max_grad_norm >= 0, "max_grad_norm", self.max_grad_norm, "use a value >= 0 (0: no clipping)")
        _check(self.precision in ("auto", "fp32", "bf16"), "precision", self.precision, "use auto, fp32 or bf16")
        _check(self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"), "device",
               self.device, "use auto, cpu, cuda or cuda:N")
        _check(self.tune in ("full", "lora"), "tune", self.tune, "use full or lora")
        _check(0 <= self.lora_dropout < 1, "lora_dropout", self.lora_dropout, "use a fraction in [0, 1)")
        _check(len(self.lora_targets) > 0 and all(t in DECODER_LINEARS for t in self.lora_targets),
               "lora_targets", self.lora_targets, f"use names among {', '.join(DECODER_LINEARS)}")
        _check(self.num_virtual_tokens >= 1, "num_virtual_tokens", self.num_virtual_tokens,
               "use a small positive count such as 8")
        _check(self.pad_to_multiple_of is None or self.pad_to_multiple_of >= 1, "pad_to_multiple_of",
               self.pad_to_multiple_of, "use null or a positive integer such as 8")
        _check(bool(self.out), "out", self.out, "name the run folder (checkpoints, logs, the final model)")
        _check(self.point_variant is None or self.point_variant in VARIANTS, "point_variant", self.point_variant,
               f"use one of the presets {', '.join(VARIANTS)} (or leave it unset to keep the model's options)")
        _check(self.point_variant is None or self.stage == "stage1", "point_variant", self.point_variant,
               "only stage 1 applies a preset; stage 2 keeps its init model's options (leave it unset)")

    def _check_types(self) -> None:
        """Every field has its declared type (a wrong type is a one-line error, never a TypeError later);
        numbers are finite."""
        for name in _INTS:
            v = getattr(self, name)
            _check(isinstance(v, int) and not isinstance(v, bool), name, v, "use an integer")
        for name in _FLOATS:
            v = getattr(self, name)
            _check(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v), name, v,
                   "use a finite number")
        for name in _BOOLS:
            v = getattr(self, name)
            _check(isinstance(v, bool), name, v, "use true or false")
        for name in _STRS:
            v = getattr(self, name)
            _check(isinstance(v, str), name, v, "use a string")
        for name in _OPT_STRS:
            v = getattr(self, name)
            _check(v is None or isinstance(v, str), name, v, "use a string (or leave it unset)")
        v = self.pad_to_multiple_of
        _check(v is None or (isinstance(v, int) and not isinstance(v, bool)), "pad_to_multiple_of", v,
               "use null or a positive integer such as 8")
        for name, kind in _TUPLES.items():
            v = getattr(self, name)
            _check(isinstance(v, tuple) and all(isinstance(x, kind) and not isinstance(x, bool) for x in v), name, v,
                   f"use a list of {kind.__name__} values")
        _check(all(math.isfinite(b) for b in self.adam_betas), "adam_betas", self.adam_betas, "use finite values")

    def check_ready(self) -> None:
        """The paths a run needs are set (checked when a run starts, not when a YAML loads)."""
        _check(bool(self.model), "model", self.model, "give the initial model folder (--model, stage 2: --init)")
        _check(bool(self.corpus), "corpus", self.corpus, "give the corpus folder (--corpus)")
        _check(self.stage == "stage2" or bool(self.mix), "mix", self.mix,
               "stage 1 trains on a mix: give --mix (made by owl-data mix)")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["adam_betas"] = list(self.adam_betas)
        d["lora_targets"] = list(self.lora_targets)
        return d

    def with_overrides(self, overrides: Mapping[str, Any]) -> "TrainConfig":
        return replace(self, **_coerce(overrides))


_FIELDS = {f.name: f for f in fields(TrainConfig)}
_TUPLES = {"adam_betas": float, "lora_targets": str}
_FLOATS = {"lr", "weight_decay", "adam_eps", "warmup_ratio", "min_lr_ratio", "max_grad_norm", "lora_dropout"}
_INTS = ("min_pixels", "max_pixels", "max_length", "num_workers", "batch_size", "grad_accum", "max_steps",
         "stop_at_step", "seed", "lora_r", "lora_alpha", "num_virtual_tokens", "prompt_hidden", "log_every",
         "save_every", "keep_checkpoints")
_BOOLS = ("pack", "freeze_vision", "train_projector", "tensorboard", "progress")
_STRS = ("stage", "model", "corpus", "split", "out", "box_format", "precision", "device", "tune")
_OPT_STRS = ("mix", "deepspeed", "resume", "point_variant")


def _coerce(d: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if k not in _FIELDS:
            close = difflib.get_close_matches(k, list(_FIELDS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; fields: {', '.join(_FIELDS)}"
            raise ValueError(f"train config has no field {k!r}{hint}")
        if k in _TUPLES and v is not None:
            if isinstance(v, str):
                v = [s for s in v.replace(",", " ").split()]
            if not isinstance(v, (list, tuple)):
                raise ValueError(f"train config field {k}={v!r} is invalid: use a list, e.g. [a, b]")
            try:
                v = tuple(_TUPLES[k](x) for x in v)
            except (ValueError, TypeError):
                raise ValueError(f"train config field {k}={v!r} is invalid: every item must be {_TUPLES[k].__name__}")
        elif k in _FLOATS and isinstance(v, (int, str)) and not isinstance(v, bool):
            try:
                v = float(v)
            except ValueError:
                raise ValueError(f"train config field {k}={v!r} is invalid: use a number") from None
        elif k in ("model", "corpus", "out", "split", "mix", "resume", "deepspeed") and isinstance(v, (int, float)) \
                and not isinstance(v, bool):
            v = str(v)
        elif k in ("model", "corpus", "out", "split") and v is not None and not isinstance(v, (dict, list)):
            v = str(v)
        out[k] = v
    return out


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["lr=1e-4", "tune=lora"]`` -> ``{"lr": 1e-4, "tune": "lora"}`` (values read as YAML)."""
    out: dict[str, Any] = {}
    for it in items:
        if "=" not in it:
            raise ValueError(f"--set {it!r} is invalid: use key=value, e.g. --set lr=1e-4")
        k, v = it.split("=", 1)
        try:
            out[k.strip()] = yaml.safe_load(v) if v.strip() else None
        except yaml.YAMLError:
            raise ValueError(f"--set {it!r}: the value is not valid YAML; quote strings, e.g. --set key='a: b'") from None
    return out


def load_train_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
                      sets: Mapping[str, Any] | None = None, **defaults: Any) -> TrainConfig:
    """A :class:`TrainConfig` from ``path`` (a YAML with a ``train:`` mapping), then ``sets``, then
    ``overrides``.

    ``defaults`` fill fields before the YAML is applied (e.g. ``stage="stage2"``).
    ``sets`` (``--set key=value``, :func:`parse_overrides`) apply as given, None included:
    ``--set point_variant=null`` clears the YAML's preset. None values in ``overrides`` are
    ignored (an unset CLI flag).

    Raises:
        ValueError: an unknown key, a bad value, or a YAML without ``train:``.
        FileNotFoundError: ``path`` does not exist.
    """
    data: dict[str, Any] = dict(defaults)
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"train config {p} does not exist")
        try:
            doc = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            raise ValueError(f"{p}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("train"), dict):
            raise ValueError(f"{p}: a training YAML holds one mapping under the key 'train:'")
        data.update(doc["train"])
    data.update(sets or {})
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return TrainConfig(**_coerce(data))
