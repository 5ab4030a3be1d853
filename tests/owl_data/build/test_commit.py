"""The commit of an output (owl_data.fs.swap_into_place): no moment at which ``--out`` is
missing or mixed; the two-rename fallback and its repair after a kill."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

import owl_data.fs as fs
import owl_data.fsutil as fsutil
from owl_data.build.config import BuildConfig
from owl_data.build.driver import SourceSpec, run_build
from owl_data.corpus.manifest import check_fingerprint
from owl_data.fs import DamagedStateWarning, exchange, lock_path, repair_swap, staged, swap_into_place


def _folder(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def _contents(path: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(path.iterdir())}


def test_exchange_swaps_two_folders(tmp_path):
    a = _folder(tmp_path / "a", {"manifest.json": "A", "only_a": "1"})
    b = _folder(tmp_path / "b", {"manifest.json": "B"})
    assert exchange(a, b) is True
    assert _contents(a) == {"manifest.json": "B"}
    assert _contents(b) == {"manifest.json": "A", "only_a": "1"}
    with pytest.raises(FileNotFoundError):
        exchange(a, tmp_path / "missing")
    assert _contents(a) == {"manifest.json": "B"}


@pytest.mark.skipif(platform.machine() not in fsutil._SYS_RENAMEAT2 or not sys.platform.startswith("linux"),
                    reason="no renameat2 system call number for this machine")
def test_exchange_without_the_libc_symbol_uses_the_system_call(tmp_path, monkeypatch):
    libc = ctypes.CDLL(None, use_errno=True)

    class OldLibc:  # a glibc before 2.28: syscall() but no renameat2()
        syscall = libc.syscall

    monkeypatch.setattr(fsutil.ctypes, "CDLL", lambda *a, **k: OldLibc())
    a = _folder(tmp_path / "a", {"f": "A"})
    b = _folder(tmp_path / "b", {"f": "B"})
    assert exchange(a, b) is True
    assert _contents(a) == {"f": "B"} and _contents(b) == {"f": "A"}


def test_a_filesystem_refusing_the_exchange_gets_the_two_renames(tmp_path, monkeypatch):
    def refusing(*args):
        ctypes.set_errno(errno.EINVAL)
        return -1

    monkeypatch.setattr(fsutil, "_renameat2", lambda: refusing)
    a = _folder(tmp_path / "a", {"f": "A"})
    out = _folder(tmp_path / "out", {"f": "old"})
    assert exchange(a, out) is False and _contents(out) == {"f": "old"}
    renames = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda x, y: (renames.append(Path(y).name), real(x, y)))
    swap_into_place(a, out)
    assert renames == [".out.old", "out"] and _contents(out) == {"f": "A"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_swap_exchanges_then_removes_the_old(tmp_path, monkeypatch):
    out = _folder(tmp_path / "out", {"manifest.json": "old", "stale": "x"})
    staging = _folder(tmp_path / ".out.partial", {"manifest.json": "new"})
    monkeypatch.setattr(os, "replace", lambda *a: pytest.fail("the exchange path renames nothing aside"))
    swap_into_place(staging, out)
    assert _contents(out) == {"manifest.json": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_swap_into_a_new_out_is_one_rename(tmp_path):
    staging = _folder(tmp_path / ".out.partial", {"manifest.json": "new"})
    swap_into_place(staging, tmp_path / "out")
    assert _contents(tmp_path / "out") == {"manifest.json": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_the_fallback_swap_replaces_and_an_error_between_its_renames_puts_the_old_back(tmp_path, monkeypatch):
    monkeypatch.setattr(fs, "exchange", lambda a, b: False)
    out = _folder(tmp_path / "out", {"manifest.json": "v1"})
    swap_into_place(_folder(tmp_path / "s", {"manifest.json": "v2"}), out)
    assert _contents(out) == {"manifest.json": "v2"} and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    real = os.replace
    calls = []

    def failing_second(a, b):
        calls.append((Path(a).name, Path(b).name))
        if len(calls) == 2:
            raise OSError(5, "I/O error")
        real(a, b)

    monkeypatch.setattr(os, "replace", failing_second)
    with pytest.raises(OSError, match="I/O error"):
        swap_into_place(_folder(tmp_path / "s", {"manifest.json": "v3"}), out)
    assert calls[:2] == [("out", ".out.old"), ("s", "out")]
    assert _contents(out) == {"manifest.json": "v2"}


_KILLED_COMMIT = """
import os, sys
from pathlib import Path
import owl_data.fs as fs
import owl_data.fsutil as fsutil
fs.exchange = lambda a, b: False          # a filesystem without RENAME_EXCHANGE
real = os.replace
def dying(a, b):
    real(a, b)
    os._exit(9)                           # killed right after `out` -> `.out.old`
os.replace = dying
with fs.staged(Path(sys.argv[1])) as s:
    (s / "manifest.json").write_text("new")
"""


def test_a_kill_between_the_fallback_renames_is_repaired_by_the_next_writer(tmp_path):
    out = _folder(tmp_path / "out", {"manifest.json": "old"})
    proc = subprocess.run([sys.executable, "-c", _KILLED_COMMIT, str(out)], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    assert not out.exists() and _contents(tmp_path / ".out.old") == {"manifest.json": "old"}
    assert lock_path(out).exists()  # the dead writer's lock file: taken over below
    with pytest.warns(DamagedStateWarning, match="restored from .*\\.out\\.old"):
        with staged(out) as s:
            assert _contents(out) == {"manifest.json": "old"}  # put back before anything else
            (s / "manifest.json").write_text("next")
    assert _contents(out) == {"manifest.json": "next"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_repair_removes_a_leftover_old_beside_a_present_out(tmp_path):
    out = _folder(tmp_path / "out", {"manifest.json": "new"})
    _folder(tmp_path / ".out.old", {"manifest.json": "old"})
    assert repair_swap(out) is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and _contents(out) == {"manifest.json": "new"}
    assert repair_swap(tmp_path / "never") is False and not (tmp_path / "never").exists()


def test_a_reader_holding_an_old_file_keeps_reading_it(tmp_path):
    out = _folder(tmp_path / "out", {"manifest.json": "old " * 1000})
    with (out / "manifest.json").open() as f:
        head = f.read(8)
        with staged(out) as s:
            (s / "manifest.json").write_text("new")
        assert head + f.read() == "old " * 1000
    assert _contents(out) == {"manifest.json": "new"}


_POLL = """
import os, sys
manifest, stop = sys.argv[1], sys.argv[2]
print("ready", flush=True)
n = missing = 0
while not os.path.exists(stop):
    n += 1
    missing += not os.path.exists(manifest)
print(n, missing)
"""


def test_out_is_never_missing_during_20_commits(tmp_path, monkeypatch):
    """A poller in another process (so it runs between any two of our system calls; with the
    two-rename fallback it sees the manifest missing thousands of times in 20 commits)."""
    out = _folder(tmp_path / "out", {"manifest.json": "0"})
    exchanged = []

    def counting(a, b):
        exchanged.append(exchange(a, b))
        return exchanged[-1]

    monkeypatch.setattr(fs, "exchange", counting)
    poller = subprocess.Popen([sys.executable, "-c", _POLL, str(out / "manifest.json"), str(tmp_path / "stop")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert poller.stdout.readline().strip() == "ready"
        for i in range(1, 21):
            with staged(out) as s:
                for k in range(20):
                    (s / f"part-{k}").write_text(str(i))
                (s / "manifest.json").write_text(str(i))
    finally:
        (tmp_path / "stop").touch()
        polls, missing = map(int, poller.communicate(timeout=60)[0].split())
    assert exchanged == [True] * 20 and polls > 0
    assert missing == 0
    assert (out / "manifest.json").read_text() == "20"


def test_a_build_after_a_killed_fallback_commit_restores_then_replaces(tmp_path):
    from owl_data.cli.build import _default_scenes

    cfg = BuildConfig()
    specs = [SourceSpec(n, s, synthetic=True) for n, s in _default_scenes(cfg.seed, cfg.default_scenes)]
    out = tmp_path / "c"
    first = run_build(specs, out, cfg).manifest
    os.rename(out, tmp_path / ".c.old")  # what a kill between the fallback's renames leaves
    with pytest.warns(DamagedStateWarning, match="restored"):
        again = run_build(specs, out, cfg).manifest
    assert again["fingerprint"] == first["fingerprint"] == check_fingerprint(out)
    assert json.loads((out / "manifest.json").read_text())["fingerprint"] == first["fingerprint"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]

