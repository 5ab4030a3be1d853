"""A build that runs out of disk space names the partial folder it leaves and how to remove it."""

from __future__ import annotations

import errno

import pytest
from typer.testing import CliRunner

import owl_data.build.driver as driver
from owl_data.build.config import BuildConfig
from owl_data.build.driver import DiskFullError, SourceSpec, partial_folder, run_build
from owl_data.cli.app import app
from owl_data.corpus import writer as corpus_writer
from owl_data.sources.synthetic.scenes import write_default_scenes
from tests.helpers import one_line_error


def _full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["chunks", "corpus"])
def test_disk_full_names_the_partial_folder(tmp_path, monkeypatch, where):
    scenes = write_default_scenes(tmp_path / "scenes", train=1, val=1, width=128, height=64)
    out = tmp_path / "corpus"
    if where == "chunks":  # while a chunk of scenes is saved
        monkeypatch.setattr(driver, "save_chunk", _full)
    else:  # while consolidation writes the corpus shards
        monkeypatch.setattr(corpus_writer.ShardWriter, "write", _full)
    with pytest.raises(DiskFullError) as info:
        run_build([SourceSpec("cityscapes", str(scenes))], out, BuildConfig())
    partial = partial_folder(out)
    assert info.value.errno == errno.ENOSPC and info.value.partial == partial and partial.is_dir()
    assert not out.exists()
    res = CliRunner().invoke(app, ["build", "--source", f"cityscapes={scenes}", "--out", str(out)])
    text = one_line_error(res).strip()
    assert "\n" not in text, text
    assert text == (f"error: no space left on device: the unfinished build is left in {partial}; free space and "
                    f"rerun the same command to resume from it, or remove it: rm -rf {partial}")
    monkeypatch.undo()
    assert run_build([SourceSpec("cityscapes", str(scenes))], out, BuildConfig()).manifest["fingerprint"]
    assert not partial.exists()


def test_other_os_errors_pass_through(tmp_path, monkeypatch):
    scenes = write_default_scenes(tmp_path / "scenes", train=1, val=1, width=128, height=64)

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(driver, "save_chunk", denied)
    with pytest.raises(PermissionError):
        run_build([SourceSpec("cityscapes", str(scenes))], tmp_path / "corpus", BuildConfig())
