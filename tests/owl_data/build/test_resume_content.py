"""Resume keyed on content (issue 12, fault 3): a chunk is reused only when every file its
scenes read still has the sha256 it had, whatever its size and modification time say."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from owl_data.build.chunks import INPUTS, chunk_folder
from owl_data.build.config import BuildConfig
from owl_data.build.driver import SourceSpec, partial_folder, run_build
from owl_data.fs import DamagedStateWarning
from owl_data.ingest.files import file_digest, read_recorded, recording_reads
from owl_data.sources.synthetic.scenes import write_default_scenes
from tests.owl_data.build.test_resume import _counted_build, _stopped_build


def _frames(root: Path) -> list[Path]:
    """The frames in the reader's order (split, city, name: sorted at every level)."""
    return sorted((root / "leftImg8bit").glob("*/*/*_leftImg8bit.png"))


def _store_uncompressed(path: Path, pixels: np.ndarray) -> None:
    """A PNG whose size depends only on the frame's size (no compression): another frame of
    the same size, written the same way, has exactly as many bytes."""
    Image.fromarray(pixels, "RGB").save(path, format="PNG", compress_level=0)


@pytest.fixture
def scenes(tmp_path_factory) -> Path:
    root = write_default_scenes(tmp_path_factory.mktemp("scenes"), seed=0)
    for f in _frames(root):
        _store_uncompressed(f, np.asarray(Image.open(f).convert("RGB")))
    return root


def test_the_digest_is_the_sha256_of_the_bytes_and_markers_for_what_cannot_be_read(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(b"abc")
    sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256(b"abc")
    assert file_digest(p) == sha
    with recording_reads() as log:
        assert read_recorded(p) == (b"abc", sha)
    assert log == [(str(p), sha)]
    assert file_digest(tmp_path / "none") == "!missing"
    assert file_digest(tmp_path) == "!not_a_regular_file"
    assert file_digest(p, max_bytes=2) == "!file_too_large"


def test_replaced_image_of_same_size_and_mtime_is_recomputed(tmp_path, scenes, monkeypatch):
    spec = [SourceSpec("cityscapes", str(scenes), synthetic=True)]
    cfg = BuildConfig(chunk_scenes=1)
    out = tmp_path / "corpus"
    _stopped_build(spec, out, cfg, monkeypatch, after=2)  # chunks 0 and 1 are done

    first = _frames(scenes)[0]  # the scene of chunk 0
    listed = json.loads((chunk_folder(partial_folder(out), 0) / INPUTS).read_text())
    assert [str(first), hashlib.sha256(first.read_bytes()).hexdigest()] in listed
    assert any(p.endswith("_gtFine_instanceIds.png") for p, _ in listed)  # the label maps too
    st = first.stat()
    pixels = np.asarray(Image.open(first).convert("RGB"))
    _store_uncompressed(first, 255 - pixels)                  # another image ...
    os.utime(first, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (first.stat().st_size, first.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)  # ... same stamps

    resumed, processed = _counted_build(spec, out, cfg, monkeypatch)
    assert processed == 4                                     # chunk 0 redone, chunk 1 reused, 3 new
    fresh = run_build(spec, tmp_path / "fresh", cfg).manifest
    assert resumed["fingerprint"] == fresh["fingerprint"]


def test_unchanged_inputs_reuse_and_damaged_inputs_list_redoes_with_a_warning(tmp_path, scenes, monkeypatch):
    spec = [SourceSpec("cityscapes", str(scenes), synthetic=True)]
    cfg = BuildConfig(chunk_scenes=1)
    clean = run_build(spec, tmp_path / "clean", cfg).manifest["fingerprint"]
    out = tmp_path / "corpus"
    _stopped_build(spec, out, cfg, monkeypatch, after=2)
    (chunk_folder(partial_folder(out), 1) / INPUTS).write_text('[["x"')  # a kill while writing it
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        m, processed = _counted_build(spec, out, cfg, monkeypatch)
    assert processed == 4                                     # chunk 0 reused, chunk 1 redone
    assert [str(w.message) for w in got if issubclass(w.category, DamagedStateWarning)][0].startswith(
        str(chunk_folder(partial_folder(out), 1) / INPUTS))
    assert m["fingerprint"] == clean

