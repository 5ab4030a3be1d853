"""Build configuration: a frozen, validated dataclass loaded from YAML or the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from owl_data.ingest.numbers import require_int
from owl_data.ingest.points import PointConfig
from owl_data.sources.synthetic.scenes import DefaultScenes

__all__ = ["BuildConfig", "load_build_config"]


@dataclass(frozen=True)
class BuildConfig:
    """Settings of ``owl-data build``.

    Every field is type-checked at construction (integers must be ``int``, not bool or
    float; numbers finite; ``points`` a mapping or PointConfig): a bad value raises
    ValueError naming the field, the value and what to write instead.

    Attributes:
        seed: build seed (points, template choices), an integer >= 0; same seed -> same corpus.
        val_percent: share of groups sent to ``val`` when a source has no split (0..100).
        workers: decoding/generation processes (the corpus does not depend on it).
        chunk_scenes: scenes per resumable work unit.
        max_image_pixels: header width * height limit; bigger images are rejected.
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
    max_image_pixels: int = 64_000_000
    reencode_format: str = "png"
    points: PointConfig = field(default_factory=PointConfig)
    description_no_question: bool = True
    max_reasoning: int = 3
    default_scenes: DefaultScenes = field(default_factory=DefaultScenes)

    def __post_init__(self) -> None:
        # types first: a YAML `val_percent: abc` must be a clear error, not a TypeError
        require_int("seed", self.seed, 0)
        require_int("val_percent", self.val_percent, 0, 100)
        require_int("workers", self.workers, 1)
        require_int("chunk_scenes", self.chunk_scenes, 1)
        require_int("max_image_pixels", self.max_image_pixels, 1)
        require_int("max_reasoning", self.max_reasoning, 0)
        if self.reencode_format not in ("png", "jpeg"):
            raise ValueError(f"reencode_format={self.reencode_format!r}: use 'png' or 'jpeg'")
        if not isinstance(self.description_no_question, bool):
            raise ValueError(f"description_no_question={self.description_no_question!r}: use true or false")
        if isinstance(self.points, dict):
            object.__setattr__(self, "points", PointConfig(**_point_keys(self.points)))
        elif not isinstance(self.points, PointConfig):
            raise ValueError(f"points={self.points!r}: must be a mapping of point settings, e.g. "
                             "{points_per_instance: 2, min_area_px: 24}")
        if isinstance(self.default_scenes, dict):
            object.__setattr__(self, "default_scenes", DefaultScenes(**_scene_keys(self.default_scenes)))
        elif not isinstance(self.default_scenes, DefaultScenes):
            raise ValueError(f"default_scenes={self.default_scenes!r}: must be a mapping, e.g. "
                             "{train: 3, val: 2, width: 512, height: 256}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["points"]["stuff_categories"] = list(d["points"]["stuff_categories"])
        return d

    def content_dict(self) -> dict[str, Any]:
        """The settings the corpus content depends on (``workers`` excluded)."""
        d = self.to_dict()
        d.pop("workers")
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BuildConfig":
        """Build from a mapping; unknown keys raise ValueError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown build config key(s) {unknown}; known: {sorted(known)}")
        data = dict(data)
        if isinstance(data.get("points"), dict):
            data["points"] = PointConfig(**_point_keys(data["points"]))
        if isinstance(data.get("default_scenes"), dict):
            data["default_scenes"] = DefaultScenes(**_scene_keys(data["default_scenes"]))
        return cls(**data)


def _known_keys(section: str, cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` when every key is a field of dataclass ``cls``; else ValueError naming them."""
    known = {f.name for f in fields(cls)}
    bad = sorted(map(str, set(data) - known))
    if bad:
        raise ValueError(f"unknown {section} config key(s) {bad}; known: {sorted(known)}")
    return data


def _point_keys(points: dict[str, Any]) -> dict[str, Any]:
    return _known_keys("points", PointConfig, points)


def _scene_keys(scenes: dict[str, Any]) -> dict[str, Any]:
    return _known_keys("default_scenes", DefaultScenes, scenes)


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
