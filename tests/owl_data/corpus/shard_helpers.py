"""Corpora with shard hashes in their manifest, and shards damaged on purpose (test_shards and the readers' tests)."""

from __future__ import annotations

import json
from pathlib import Path

from owl_data.corpus.manifest import finish_corpus, read_manifest
from tests.owl_data.mix.conftest import SIZES, write_tiny_corpus


def hashed_tiny(root: Path, sizes: dict = SIZES) -> Path:
    """The tiny corpus of tests/owl_data/mix/conftest.py at ``root``, its manifest finished by
    :func:`finish_corpus` (so it records ``shards``)."""
    write_tiny_corpus(root, sizes)
    finish_corpus(root, read_manifest(root))
    return root


def flip_byte(corpus: Path, rel: str, at: int | None = None) -> str:
    """Flip every bit of one byte of shard ``rel`` (default: its middle byte), in place; returns ``rel``."""
    p = corpus / rel
    data = bytearray(p.read_bytes())
    data[len(data) // 2 if at is None else at] ^= 0xFF
    p.write_bytes(bytes(data))
    return rel


def strip_shards(corpus: Path) -> None:
    """Rewrite the manifest as one written before shard hashes were recorded (no ``shards``)."""
    m = read_manifest(corpus)
    m.pop("shards", None)
    (corpus / "manifest.json").write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")


def first_shard(corpus: Path, folder: str) -> str:
    """The relative path of the first shard under ``folder``."""
    return sorted(p.relative_to(corpus).as_posix() for p in (corpus / folder).rglob("*.parquet"))[0]
