"""Training configuration: one frozen dataclass, read from YAML, overridable from the command line.

A pipeline YAML (``pipelines/stage1.yaml``, ``pipelines/stage2.yaml``) holds one mapping under
the key ``train:`` whose keys are the fields of :class:`TrainConfig`; every field can be
overridden with ``--set key=value`` (the value is read as YAML: ``--set lr=1e-4``,
``--set lora_targets=[q_proj,v_proj]``) or by the commands' explicit flags. A bad value raises
``ValueError`` naming the field, the value and the fix; an unknown key names the closest field.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from owl_data.errors import FieldError, check_field_types, require
from owl_train.data.config import DataConfig
from owl_train.model.variants import VARIANTS

__all__ = ["TrainConfig", "load_train_config", "parse_overrides", "DECODER_LINEARS", "DATA_FIELDS",
           "MissingPathError"]

# The decoder's linear layers (owl_train.model.decoder): LoRA targets by default.
DECODER_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# The DataConfig fields a training run sets (same names, types and defaults as DataConfig's).
DATA_FIELDS = ("min_pixels", "max_pixels", "max_length", "box_format", "pack", "pad_to_multiple_of")
WHAT = "train config field"


class MissingPathError(FieldError, FileNotFoundError):
    """A setting that names a file or folder which is not there (a FieldError and a FileNotFoundError)."""


def _data_fields_after(anchor: str):
    """Class decorator (under ``@dataclass``): insert :data:`DATA_FIELDS` after field ``anchor``,
    with DataConfig's annotations and defaults, so the data settings have one declaration."""
    data = {f.name: f for f in fields(DataConfig)}

    def insert(cls: type) -> type:
        ann: dict[str, Any] = {}
        for name, tp in cls.__dict__["__annotations__"].items():
            ann[name] = tp
            if name == anchor:
                for d in DATA_FIELDS:
                    assert data[d].default is not dataclasses.MISSING, d  # a plain default, no factory
                    ann[d] = data[d].type
                    setattr(cls, d, data[d].default)
        cls.__annotations__ = ann
        return cls
    return insert


@dataclass(frozen=True)
@_data_fields_after("out")
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
    # here: the data fields DATA_FIELDS (min_pixels ... pad_to_multiple_of), declared by DataConfig
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
    progress: bool = True  # show the caller's progress display (owl-train: a Rich bar on stderr)
    deepspeed: str | None = None  # a DeepSpeed JSON (pipelines/zero2.json)
    resume: str | None = None  # "latest" or a checkpoint folder

    def __post_init__(self) -> None:
        # types from the annotations; the pair adam_betas and pad_to_multiple_of have their own messages
        check_field_types(self, what=WHAT, skip=("adam_betas", "pad_to_multiple_of"))
        self._check_pair_and_padding()
        self._check_values()

    def _check_pair_and_padding(self) -> None:
        """pad_to_multiple_of is null or a positive integer, adam_betas a list of finite floats (their
        messages predate the annotation-driven check)."""
        v = self.pad_to_multiple_of
        require(v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1), "pad_to_multiple_of", v,
                "use null or a positive integer such as 8", what=WHAT)
        b = self.adam_betas
        require(isinstance(b, tuple) and all(isinstance(x, float) for x in b), "adam_betas", b,
                "use a list of float values", what=WHAT)
        require(all(math.isfinite(x) for x in b), "adam_betas", b, "use finite values", what=WHAT)

    def _check_values(self) -> None:
        """Ranges and choices of the typed fields."""
        def check(cond: bool, name: str, fix: str) -> None:
            require(cond, name, getattr(self, name), fix, what=WHAT)

        check(self.stage in ("stage1", "stage2"), "stage", "use stage1 or stage2")
        for name in ("min_pixels", "max_pixels", "max_length", "batch_size", "grad_accum", "log_every",
                     "keep_checkpoints", "lora_r", "lora_alpha"):
            check(getattr(self, name) >= 1, name, "use a positive integer")
        for name in ("max_steps", "stop_at_step", "save_every", "num_workers", "prompt_hidden", "seed"):
            check(getattr(self, name) >= 0, name, "use an integer >= 0 (0 means: see the field's comment)")
        check(self.max_steps == 0 or self.stop_at_step <= self.max_steps, "stop_at_step",
              f"must be <= max_steps ({self.max_steps})")
        check(self.lr > 0, "lr", "use a positive learning rate, e.g. 2e-5 (stage 1) or 1e-3 (stage 2)")
        check(self.weight_decay >= 0, "weight_decay", "use a value >= 0")
        check(len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas), "adam_betas",
              "use two values in [0, 1), e.g. [0.9, 0.999]")
        check(self.adam_eps > 0, "adam_eps", "use a small positive value such as 1e-8")
        check(0 <= self.warmup_ratio < 1, "warmup_ratio", "use a fraction in [0, 1), e.g. 0.03")
        check(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "use a fraction in [0, 1]")
        check(self.max_grad_norm >= 0, "max_grad_norm", "use a value >= 0 (0: no clipping)")
        check(self.precision in ("auto", "fp32", "bf16"), "precision", "use auto, fp32 or bf16")
        check(self.device in ("auto", "cpu") or self.device.startswith("cuda"), "device",
              "use auto, cpu, cuda or cuda:N")
        check(self.tune in ("full", "lora"), "tune", "use full or lora")
        check(0 <= self.lora_dropout < 1, "lora_dropout", "use a fraction in [0, 1)")
        check(len(self.lora_targets) > 0 and all(t in DECODER_LINEARS for t in self.lora_targets), "lora_targets",
              f"use names among {', '.join(DECODER_LINEARS)}")
        check(self.num_virtual_tokens >= 1, "num_virtual_tokens", "use a small positive count such as 8")
        check(bool(self.out), "out", "name the run folder (checkpoints, logs, the final model)")
        check(self.point_variant is None or self.point_variant in VARIANTS, "point_variant",
              f"use one of the presets {', '.join(VARIANTS)} (or leave it unset to keep the model's options)")
        check(self.point_variant is None or self.stage == "stage1", "point_variant",
              "only stage 1 applies a preset; stage 2 keeps its init model's options (leave it unset)")

    def check_ready(self) -> None:
        """The paths a run needs are set (checked when a run starts, not when a YAML loads)."""
        require(bool(self.model), "model", self.model, "give the initial model folder (`model`)",
                what=WHAT)
        require(bool(self.corpus), "corpus", self.corpus, "give the corpus folder (`corpus`)", what=WHAT)
        require(self.stage == "stage2" or bool(self.mix), "mix", self.mix,
                "stage 1 trains on a mix: give `mix` (made by owl-data mix)", what=WHAT)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["adam_betas"] = list(self.adam_betas)
        d["lora_targets"] = list(self.lora_targets)
        return d

    def with_overrides(self, overrides: Mapping[str, Any]) -> "TrainConfig":
        return replace(self, **_coerce(overrides))


_FIELDS = {f.name: f for f in fields(TrainConfig)}
_TYPES = typing.get_type_hints(TrainConfig)
# Fields that name a path or a split: numbers (and, for the required ones, any scalar) read as text.
_PATHS = ("model", "corpus", "out", "split")
_OPT_PATHS = ("mix", "resume", "deepspeed")


def _item_type(name: str) -> type | None:
    """The element type of a tuple field (``adam_betas`` -> float), else None."""
    tp = _TYPES[name]
    return typing.get_args(tp)[0] if typing.get_origin(tp) is tuple else None


def _coerce(d: Mapping[str, Any]) -> dict[str, Any]:
    """YAML / ``--set`` values as the fields' types: lists (or ``"a,b"``) to tuples, ints and
    numeric strings to floats, numbers to path strings.

    Raises:
        FieldError: an unknown key (naming the closest field) or a value that does not convert.
    """
    out: dict[str, Any] = {}
    for k, v in d.items():
        if k not in _FIELDS:
            close = difflib.get_close_matches(k, list(_FIELDS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; fields: {', '.join(_FIELDS)}"
            raise FieldError(k, f"train config has no field {k!r}{hint}")
        item = _item_type(k)
        if item is not None and v is not None:
            if isinstance(v, str):
                v = [s for s in v.replace(",", " ").split()]
            if not isinstance(v, (list, tuple)):
                raise FieldError(k, f"{WHAT} {k}={v!r} is invalid: use a list, e.g. [a, b]")
            try:
                v = tuple(item(x) for x in v)
            except (ValueError, TypeError):
                raise FieldError(k, f"{WHAT} {k}={v!r} is invalid: every item must be {item.__name__}") from None
        elif _TYPES[k] is float and isinstance(v, (int, str)) and not isinstance(v, bool):
            try:
                v = float(v)
            except ValueError:
                raise FieldError(k, f"{WHAT} {k}={v!r} is invalid: use a number") from None
        elif k in _PATHS + _OPT_PATHS and isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)
        elif k in _PATHS and v is not None and not isinstance(v, (dict, list)):
            v = str(v)
        out[k] = v
    return out


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["lr=1e-4", "tune=lora"]`` -> ``{"lr": 1e-4, "tune": "lora"}`` (values read as YAML)."""
    out: dict[str, Any] = {}
    for it in items:
        if "=" not in it:
            raise FieldError("sets", f"sets {it!r} is invalid: use key=value, e.g. `sets` lr=1e-4")
        k, v = it.split("=", 1)
        try:
            out[k.strip()] = yaml.safe_load(v) if v.strip() else None
        except yaml.YAMLError:
            raise FieldError("sets", f"sets {it!r}: the value is not valid YAML; quote strings, "
                                     "e.g. `sets` key='a: b'") from None
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
