"""One writer at a time per ``--out`` (issue 12, fault 1): a second build of the same output
fails at once naming the holder; the committed corpus is the first build's alone; a lock
left by a dead process is taken over."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from owl_data.build.config import BuildConfig
from owl_data.build.driver import SourceSpec, run_build
from owl_data.corpus import schema as schemas
from owl_data.corpus.manifest import check_fingerprint
from owl_data.fs import OutputBusyError, lock_path
from owl_data.sources.synthetic.scenes import write_default_scenes

_CLI = "import sys; from owl_data.cli import app; sys.argv[0] = 'owl-data'; app()"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> tuple[Path, Path]:
    """Two different sets of drawn scenes (seeds 0 and 1)."""
    return (write_default_scenes(tmp_path_factory.mktemp("s0"), seed=0),
            write_default_scenes(tmp_path_factory.mktemp("s1"), seed=1))


def _sources_in_tables(corpus: Path) -> set[str]:
    """Every ``source_path`` of ``image_refs`` and every ``source`` of the task tables."""
    found = set(pq.read_table(corpus / "image_refs", columns=["source_path"]).column(0).to_pylist())
    for task in schemas.TASK_TABLES:
        if (corpus / task).exists():
            found |= {f"source:{s}" for s in pq.read_table(corpus / task, columns=["source"]).column(0).to_pylist()}
    return found


def test_a_second_build_of_one_out_fails_naming_the_first(tmp_path, scenes):
    first_src, other_src = scenes
    cfg = BuildConfig(chunk_scenes=1)
    spec = [SourceSpec("cityscapes", str(first_src), synthetic=True)]
    clean = run_build(spec, tmp_path / "clean", cfg).manifest
    out = tmp_path / "c"
    seconds = []

    def progress(stage, n):
        if not seconds:  # while the first build holds the lock: the CLI, another source, same --out
            seconds.append(subprocess.run(
                [sys.executable, "-c", _CLI, "build", "--out", str(out), "--source", f"cityscapes={other_src}"],
                capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "400"}))
            with pytest.raises(OutputBusyError, match=f"is being written by pid {os.getpid()} "):
                run_build(spec, out, cfg)  # the same command started twice ("[Errno 39]" before)

    manifest = run_build(spec, out, cfg, progress=progress).manifest
    proc = seconds[0]
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    assert proc.returncode == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: --out {out} is being written by pid {os.getpid()} on host "
                               f"{socket.gethostname()} since ")
    assert lines[0].endswith("; wait for it or stop it") and "(" in lines[0]
    # the committed corpus is the first build's alone: its sources, its rows, its fingerprint
    assert manifest["fingerprint"] == clean["fingerprint"] == check_fingerprint(out)
    assert {n: s["spec"] for n, s in manifest["sources"].items()} == {"cityscapes": str(first_src)}
    assert _sources_in_tables(out) == _sources_in_tables(tmp_path / "clean")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "clean"]  # no lock, partial or old left


_HOLD = """
import os, sys, time
from pathlib import Path
from owl_data.fs import output_lock
with output_lock(Path(sys.argv[1])):
    print("held", flush=True)
    if sys.argv[2] == "die":
        os._exit(0)          # exits holding it: the lock file stays, the kernel drops the flock
    time.sleep(600)
"""


def _holder(out: Path, mode: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(out), mode], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_live_holder_is_named_and_its_death_frees_the_lock(tmp_path, scenes):
    spec = [SourceSpec("cityscapes", str(scenes[0]), synthetic=True)]
    out = tmp_path / "c"
    holder = _holder(out, "hold")
    try:
        with pytest.raises(OutputBusyError, match=rf"out {re.escape(str(out))} is being written by pid {holder.pid} "
                                                  rf"on host .* \(-c {re.escape(str(out))} hold\); wait for it"):
            run_build(spec, out, BuildConfig())
        assert sorted(p.name for p in tmp_path.iterdir()) == [".c.lock"]  # nothing else touched
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert run_build(spec, out, BuildConfig()).manifest["fingerprint"] == check_fingerprint(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_a_stale_lock_file_of_an_exited_process_is_taken_over(tmp_path, scenes):
    spec = [SourceSpec("cityscapes", str(scenes[0]), synthetic=True)]
    out = tmp_path / "c"
    dead = _holder(out, "die")
    dead.wait()
    assert f'"pid": {dead.pid}' in lock_path(out).read_text()
    manifest = run_build(spec, out, BuildConfig()).manifest
    assert manifest["fingerprint"] == check_fingerprint(out)
    assert not lock_path(out).exists()


@pytest.mark.parametrize("command", [["mix", "-r", "1:1:1:1"], ["export", "--format", "llava"]])
def test_mix_and_export_into_a_held_out_stop_with_one_line(tmp_path, command):
    from typer.testing import CliRunner

    from owl_data.cli import app
    from tests.helpers import one_line_error, snapshot
    from tests.owl_data.mix.conftest import write_tiny_corpus

    corpus = write_tiny_corpus(tmp_path / "c")
    out = tmp_path / "o"
    holder = _holder(out, "hold")
    try:
        before = snapshot(tmp_path)
        res = CliRunner().invoke(app, [command[0], str(corpus), *command[1:], "-o", str(out)],
                                 env={"COLUMNS": "400"})
        text = one_line_error(res)
        assert f"error: --out {out} is being written by pid {holder.pid} on host {socket.gethostname()}" in text
        assert snapshot(tmp_path) == before  # nothing touched: no staging folder, no out
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
