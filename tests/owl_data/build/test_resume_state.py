"""A damaged resume state never blocks a build: it is discarded with one warning naming the
file, and the build goes on to the same fingerprint."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from owl_data.build.config import BuildConfig
from owl_data.build.driver import SourceSpec, run_build
from owl_data.cli.app import app
from owl_data.fs import DamagedStateWarning
from owl_data.sources.synthetic.scenes import write_default_scenes
from tests.owl_data.build.test_resume import _stopped_build

DEFAULT_FINGERPRINT = "68574abddc77e8ab0a8dc6054fad38f4a37c7ef6b89fe2e744d43ddf3592d4d7"
runner = CliRunner()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    return write_default_scenes(tmp_path_factory.mktemp("scenes"), seed=0)


@pytest.fixture(scope="module")
def clean(scenes, tmp_path_factory) -> str:
    spec = [SourceSpec("cityscapes", str(scenes), synthetic=True)]
    return run_build(spec, tmp_path_factory.mktemp("clean") / "corpus", BuildConfig(chunk_scenes=1)).manifest["fingerprint"]


@pytest.mark.parametrize("damage", ["", '{"hash": "ab', "[]", '{"config": 3}', "\xff\xfe"])
def test_damaged_spec_json_warns_once_and_the_build_succeeds(tmp_path, scenes, clean, monkeypatch, damage):
    spec = [SourceSpec("cityscapes", str(scenes), synthetic=True)]
    cfg = BuildConfig(chunk_scenes=1)
    out = tmp_path / "corpus"
    _stopped_build(spec, out, cfg, monkeypatch, after=2)
    state = tmp_path / ".corpus.partial" / "spec.json"
    state.write_bytes(damage.encode("latin-1"))
    with pytest.warns(DamagedStateWarning) as rec:
        manifest = run_build(spec, out, cfg).manifest
    assert [str(w.message).split(": ")[0] for w in rec if issubclass(w.category, DamagedStateWarning)] == [str(state)]
    assert "damaged build spec" in str(rec[0].message)
    assert manifest["fingerprint"] == clean
    assert not (tmp_path / ".corpus.partial").exists()


def test_damaged_chunk_is_redone_with_a_warning(tmp_path, scenes, clean, monkeypatch):
    spec = [SourceSpec("cityscapes", str(scenes), synthetic=True)]
    cfg = BuildConfig(chunk_scenes=1)
    out = tmp_path / "corpus"
    _stopped_build(spec, out, cfg, monkeypatch, after=2)
    chunks = tmp_path / ".corpus.partial" / "chunks"
    arrow = chunks / "000000" / "point_vqa.arrow"
    arrow.write_bytes(arrow.read_bytes()[:50])  # truncated
    (chunks / "000001" / "accounting.json").write_text('{"cityscapes": 3}')  # wrong shape
    with pytest.warns(DamagedStateWarning) as rec:
        manifest = run_build(spec, out, cfg).manifest
    named = sorted(str(w.message).split(": ")[0] for w in rec if issubclass(w.category, DamagedStateWarning))
    assert named == [str(arrow), str(chunks / "000001" / "accounting.json")]
    assert manifest["fingerprint"] == clean


def test_cli_build_after_empty_spec_json_warns_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "corpus"
    partial = tmp_path / ".corpus.partial"
    partial.mkdir()
    (partial / "spec.json").write_text("")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the CLI prints it, nothing escapes as a Python warning
        res = runner.invoke(app, ["build", "--out", str(out)])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert text.count("warning:") == 1 and f"{partial / 'spec.json'}: damaged build spec" in text
    assert f"fingerprint: {DEFAULT_FINGERPRINT}" in res.output
    assert json.loads((out / "manifest.json").read_text())["fingerprint"] == DEFAULT_FINGERPRINT
