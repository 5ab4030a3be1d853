"""Build configuration: a frozen, validated dataclass loaded from YAML or the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from owl_data.errors import FieldError, check_field_types, require
from owl_data.ingest.files import DEFAULT_MAX_FILE_BYTES
from owl_data.ingest.points import PointConfig
from owl_data.sources.synthetic.scenes import DefaultScenes

__all__ = ["BuildConfig", "load_build_config"]


@dataclass(frozen=True)
class BuildConfig:
    """Settings of ``owl-data build``.

    Every field is checked at construction, types from the annotations
    (:func:`owl_data.errors.check_field_types`: integers must be ``int``, not bool or float;
    ``points`` and ``default_scenes`` a mapping or their dataclass), ranges from
    :data:`_RANGES`: a bad value raises :class:`~owl_data.errors.FieldError` naming the field,
    the value and what to write instead.

    Attributes:
        seed: build seed (points, template choices), an integer >= 0; same seed -> same corpus.
        val_percent: share of groups sent to ``val`` when a source has no split (0..100).
        workers: decoding/generation processes (the corpus does not depend on it); with
            ``executor: ray`` and no ``ray_address``, the CPUs of the local Ray started.
        executor: where the per-scene work runs: ``local`` (this machine's processes) or
            ``ray`` (Ray tasks, :mod:`owl_data.build.executor`); the corpus does not depend on it.
        ray_address: the Ray cluster to join (``auto``, ``ray://host:10001``); None starts a
            local Ray. Only with ``executor: ray``; the corpus does not depend on it.
        chunk_scenes: scenes per resumable work unit, at most.
        chunk_pixels: pixels per resumable work unit (header width * height of its scenes'
            images, where the reader knows them): a chunk ends at ``chunk_scenes`` scenes or
            once it reaches this many pixels, so chunks of large frames hold fewer scenes and
            the scenes a driver holds at once stay bounded by size. Default 2**25 (16 frames of
            2048x1024).
        max_image_pixels: header width * height limit; bigger images are rejected.
        max_file_bytes: size limit of an image file (frames and label maps), checked before
            it is read; a bigger file is rejected (``file_too_large``). Default 256 MiB.
        reencode_format: ``png`` (lossless) or ``jpeg`` for images that must change.
        points: point sampler settings.
        description_no_question: also write the description without a question
            (user content ``<image><point>``), the rows stage 2 trains on.
        max_reasoning: reasoning rows per point (0 disables).
        default_scenes: what the embedded default draws when no source is given (frames of
            the train and val cities, frame width and height; :class:`DefaultScenes`);
            ignored when sources are given.
    """

    seed: int = 0
    val_percent: int = 20
    workers: int = 1
    chunk_scenes: int = 16
    chunk_pixels: int = 1 << 25
    max_image_pixels: int = 64_000_000
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    reencode_format: str = "png"
    points: PointConfig = field(default_factory=PointConfig)
    description_no_question: bool = True
    max_reasoning: int = 3
    default_scenes: DefaultScenes = field(default_factory=DefaultScenes)
    executor: str = "local"
    ray_address: str | None = None

    def __post_init__(self) -> None:
        # sections first (a mapping -> its dataclass, unknown keys named), then types (a YAML
        # `val_percent: abc` must be a clear error, not a TypeError), then ranges
        if isinstance(self.points, dict):
            object.__setattr__(self, "points", _section(PointConfig, "points", self.points))
        if isinstance(self.default_scenes, dict):
            object.__setattr__(self, "default_scenes", _section(DefaultScenes, "default_scenes", self.default_scenes))
        require(isinstance(self.points, PointConfig), "points", self.points,
                "use a mapping of point settings, e.g. {points_per_instance: 2, min_area_px: 24}")
        require(isinstance(self.default_scenes, DefaultScenes), "default_scenes", self.default_scenes,
                "use a mapping, e.g. {train: 3, val: 2, width: 512, height: 256}")
        for name, (lo, hi) in _RANGES.items():  # type and range in one message, with the type found
            v = getattr(self, name)
            whole = isinstance(v, int) and not isinstance(v, bool)
            rng = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
            require(whole and lo <= v and (hi is None or v <= hi), name, v,
                    f"use an integer {rng}" + ("" if whole else f" (got {type(v).__name__})"))
        check_field_types(self, skip=tuple(_RANGES))
        require(self.reencode_format in ("png", "jpeg"), "reencode_format", self.reencode_format,
                "use 'png' or 'jpeg'")
        require(self.executor in EXECUTORS, "executor", self.executor, "use 'local' or 'ray'")
        require(self.ray_address is None or (self.executor == "ray" and self.ray_address.strip() != ""),
                "ray_address", self.ray_address, "give it with executor 'ray' only, e.g. auto or ray://host:10001")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["points"]["stuff_categories"] = list(d["points"]["stuff_categories"])
        return d

    def content_dict(self) -> dict[str, Any]:
        """The settings the corpus content depends on (``workers``, ``executor``, ``ray_address`` excluded)."""
        d = self.to_dict()
        for where in ("workers", "executor", "ray_address"):
            d.pop(where)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BuildConfig":
        """Build from a mapping (sections may be mappings too).

        Raises:
            FieldError: an unknown key (naming it and the known ones), a bad value.
        """
        return _section(cls, "build", data)


EXECUTORS = ("local", "ray")
"""The values of :attr:`BuildConfig.executor`."""

_RANGES: dict[str, tuple[int, int | None]] = {
    "seed": (0, None), "val_percent": (0, 100), "workers": (1, None), "chunk_scenes": (1, None), "chunk_pixels": (1, None),
    "max_image_pixels": (1, None), "max_file_bytes": (1, None), "max_reasoning": (0, None),
}
"""Integer fields of :class:`BuildConfig` -> (lowest, highest or None) allowed value."""


def _section(cls: type, section: str, data: dict[str, Any]) -> Any:
    """``cls(**data)`` for a config section (``build``, ``points``, ``default_scenes``).

    Raises:
        FieldError: ``"unknown <section> config key(s) [...]; known: [...]"`` when a key is not a
            field of dataclass ``cls`` (field: the section, dotted with the first unknown key),
            else what ``cls`` raises for a bad value.
    """
    known = {f.name for f in fields(cls)}
    bad = sorted(map(str, set(data) - known))
    if bad:
        where = bad[0] if section == "build" else f"{section}.{bad[0]}"
        raise FieldError(where, f"unknown {section} config key(s) {bad}; known: {sorted(known)}")
    return cls(**data)


def load_build_config(path: Path | None, overrides: dict[str, Any] | None = None) -> BuildConfig:
    """Load a YAML build config (``build:`` section or top level) and apply overrides.

    Raises:
        ValueError: YAML that does not parse (the message names the file and line), a top
            level or ``build:`` section that is not a mapping, an unknown key, a value of the
            wrong type or range (the message names the field).
        OSError: the file cannot be read.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}, line {mark.line + 1} column {mark.column + 1}" if mark is not None else str(path)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ValueError(f"{where}: not valid YAML ({problem})") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a build config must be a YAML mapping")
        data = loaded.get("build", loaded)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the build: section must be a mapping of settings, got {type(data).__name__}")
        data = dict(data)
    for k, v in (overrides or {}).items():
        if v is not None:
            data[k] = v
    return BuildConfig.from_dict(data)
