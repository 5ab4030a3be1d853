"""Atomic and resumable builds, on the embedded default scenes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import owl_data.build.executor as build_mod  # where the per-scene work runs
from owl_data.build.driver import SourceSpec, run_build
from owl_data.build.config import BuildConfig
from owl_data.sources.synthetic.scenes import write_default_scenes


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    return write_default_scenes(tmp_path_factory.mktemp("scenes"), seed=0)


class Killed(RuntimeError):
    pass


def test_killed_build_leaves_no_corpus_and_resumes(tmp_path, scenes, monkeypatch):
    spec = [SourceSpec("cityscapes", str(scenes), synthetic=True)]
    cfg = BuildConfig(chunk_scenes=1)
    clean = run_build(spec, tmp_path / "clean", cfg).manifest

    real = build_mod.process_scene
    calls = []

    def dying(scene, c):
        calls.append(scene.ref.source_path)
        if len(calls) == 3:
            raise Killed("simulated kill")
        return real(scene, c)

    monkeypatch.setattr(build_mod, "process_scene", dying)
    out = tmp_path / "corpus"
    with pytest.raises(Killed):
        run_build(spec, out, cfg)
    assert not out.exists()                                    # readers never see half a corpus
    assert len(list((tmp_path / ".corpus.partial" / "chunks").iterdir())) == 2

    calls.clear()
    monkeypatch.setattr(build_mod, "process_scene", lambda s, c: (calls.append(s.ref.source_path), real(s, c))[1])
    resumed = run_build(spec, out, cfg).manifest
    assert len(calls) == 3                                     # 5 scenes, 2 already done
    assert resumed["fingerprint"] == clean["fingerprint"]
    assert not (tmp_path / ".corpus.partial").exists()


def _stopped_build(spec, out: Path, cfg: BuildConfig, monkeypatch, after: int) -> None:
    """Run a build that is killed while processing scene ``after + 1``: ``after`` chunks stay in its partial."""
    real = build_mod.process_scene
    calls = []

    def dying(scene, c):
        calls.append(scene)
        if len(calls) > after:
            raise Killed("simulated kill")
        return real(scene, c)

    monkeypatch.setattr(build_mod, "process_scene", dying)
    with pytest.raises(Killed):
        run_build(spec, out, cfg)
    monkeypatch.setattr(build_mod, "process_scene", real)
    assert len(list((out.parent / f".{out.name}.partial" / "chunks").iterdir())) == after


def _counted_build(spec, out: Path, cfg: BuildConfig, monkeypatch) -> tuple[dict, int]:
    """(manifest, number of scenes processed) of a build that runs to the end."""
    real = build_mod.process_scene
    calls = []
    monkeypatch.setattr(build_mod, "process_scene", lambda s, c: (calls.append(s), real(s, c))[1])
    m = run_build(spec, out, cfg).manifest
    monkeypatch.setattr(build_mod, "process_scene", real)
    return m, len(calls)


def test_changed_config_does_not_reuse_chunks(tmp_path, scenes, monkeypatch):
    """A stopped build's chunks are reused by the same config only: a changed seed rebuilds all 5 scenes."""
    spec = [SourceSpec("cityscapes", str(scenes), synthetic=True)]
    seed0, seed1 = BuildConfig(seed=0, chunk_scenes=1), BuildConfig(seed=1, chunk_scenes=1)
    clean1 = run_build(spec, tmp_path / "clean1", seed1).manifest
    out = tmp_path / "a"
    _stopped_build(spec, out, seed0, monkeypatch, after=2)
    b, processed = _counted_build(spec, out, seed1, monkeypatch)
    assert processed == 5                                      # none of seed 0's 2 chunks reused
    assert b["fingerprint"] == clean1["fingerprint"]
    assert json.loads((out / "manifest.json").read_text())["build_config"]["seed"] == 1
    _stopped_build(spec, out, seed0, monkeypatch, after=2)
    _, processed = _counted_build(spec, out, seed0, monkeypatch)
    assert processed == 3                                      # the same config: 2 chunks reused


def test_default_build_fills_both_splits_and_is_marked_synthetic(tmp_path, scenes):
    m = run_build([SourceSpec("cityscapes", str(scenes), synthetic=True)], tmp_path / "c", BuildConfig()).manifest
    assert m["sources"]["cityscapes"]["synthetic"] is True
    assert set(m["rows"]["point_vqa"]) == {"train", "val"}
    s = m["sources"]["cityscapes"]
    assert s["items_read"] == s["items_kept"] + s["items_rejected"] and s["items_kept"] > 20
