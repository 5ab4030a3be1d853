"""Shared builders for the stage tests (imported with the test folder on sys.path)."""

from __future__ import annotations

from pathlib import Path

from owl_train.stages.config import TrainConfig

SMALL = dict(max_pixels=28 * 28 * 16, max_length=512, progress=False, tensorboard=False)


def stage1_config(world: dict[str, Path], out: Path, **kw) -> TrainConfig:
    base = dict(model=str(world["tiny"]), corpus=str(world["corpus"]), mix=str(world["mix"]), out=str(out),
                batch_size=4, max_steps=30, lr=1e-2, **SMALL)
    base.update(kw)
    return TrainConfig(**base)
