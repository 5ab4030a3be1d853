"""Build configuration: a frozen, validated dataclass loaded from YAML or the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from owl_data.points import PointConfig

__all__ = ["BuildConfig", "load_build_config"]


@dataclass(frozen=True)
class BuildConfig:
    """Settings of ``owl-data build``.

    Attributes:
        seed: build seed (points, template choices); same seed -> same corpus.
        val_percent: share of groups sent to ``val`` when a source has no split (0..100).
        workers: decoding/generation processes (the corpus does not depend on it).
        chunk_scenes: scenes per resumable work unit.
        max_image_pixels: header width * height limit; bigger images are rejected.
        reencode_format: ``png`` (lossless) or ``jpeg`` for images that must change.
        points: point sampler settings.
        description_no_question: also write the description without a question
            (user content ``<image><point>``), the rows stage 2 trains on.
        max_reasoning: reasoning rows per point (0 disables).
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

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int):
            raise ValueError(f"seed={self.seed!r}: must be an integer")
        if not 0 <= self.val_percent <= 100:
            raise ValueError(f"val_percent={self.val_percent!r}: must be in 0..100")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers={self.workers!r}: must be an integer >= 1")
        if self.chunk_scenes < 1:
            raise ValueError(f"chunk_scenes={self.chunk_scenes!r}: must be >= 1")
        if self.max_image_pixels < 1:
            raise ValueError(f"max_image_pixels={self.max_image_pixels!r}: must be >= 1")
        if self.reencode_format not in ("png", "jpeg"):
            raise ValueError(f"reencode_format={self.reencode_format!r}: use 'png' or 'jpeg'")
        if not isinstance(self.max_reasoning, int) or self.max_reasoning < 0:
            raise ValueError(f"max_reasoning={self.max_reasoning!r}: must be an integer >= 0")
        if isinstance(self.points, dict):
            object.__setattr__(self, "points", PointConfig(**self.points))

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
            pk = {f.name for f in fields(PointConfig)}
            bad = sorted(set(data["points"]) - pk)
            if bad:
                raise ValueError(f"unknown points config key(s) {bad}; known: {sorted(pk)}")
            data["points"] = PointConfig(**data["points"])
        return cls(**data)


def load_build_config(path: Path | None, overrides: dict[str, Any] | None = None) -> BuildConfig:
    """Load a YAML build config (``build:`` section or top level) and apply overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a build config must be a YAML mapping")
        data = loaded.get("build", loaded)
    for k, v in (overrides or {}).items():
        if v is not None:
            data[k] = v
    return BuildConfig.from_dict(data)
