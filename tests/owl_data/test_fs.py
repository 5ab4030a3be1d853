"""Output folders (owl_data.fs): which ``--out`` a command refuses, staged replacement, the lock."""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

import owl_data.fs as fs
from owl_data.fs import (CORPUS_OUT, DamagedStateWarning, OutputBusyError, OutputError, PathEscapeError, check_out,
                         inside, lock_path, output_lock, read_state, staged, write_atomic)


def _corpus_marker(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({"schema_version": "1.0", "rows": {}}))


@pytest.mark.parametrize("out", ["", ".", "  "])
def test_an_unnamed_out_is_refused(out):
    with pytest.raises(OutputError, match="give the output folder a name, e.g. .*corpus"):
        check_out(out)


def test_refusals_name_the_reason(tmp_path, monkeypatch):
    src = tmp_path / "src"
    (src / "img").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "f"
    f.write_text("x")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "keep.txt").write_text("mine")
    for out, why in [(tmp_path, "current directory"), (src / "img", f"inside source path {src}"),
                     (tmp_path / "x" / "..", "current directory"), (f, "exists and is not a folder"),
                     (link, "symbolic link"), (notes, "is not an Owl-VL corpus")]:
        with pytest.raises(OutputError, match=why):
            check_out(out, [f"{src}?images={src / 'img'}"] if out != tmp_path else [])
    with pytest.raises(OutputError, match="holding the corpus"):
        check_out(tmp_path / "a", reads={"the corpus": tmp_path / "a" / "c"})
    assert (notes / "keep.txt").read_text() == "mine"


def test_a_new_empty_or_earlier_output_is_accepted(tmp_path):
    assert check_out(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    assert check_out(tmp_path / "empty") == tmp_path / "empty"
    _corpus_marker(tmp_path / "old")
    (tmp_path / "old" / "vqa").mkdir()
    assert check_out(tmp_path / "old", kind=CORPUS_OUT) == tmp_path / "old"
    (tmp_path / "old" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="also holds notes.txt"):
        check_out(tmp_path / "old")


def test_staged_replaces_whole_or_not_at_all(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with staged(out) as s:
            (s / "new.txt").write_text("new")
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and (out / "stale.txt").read_text() == "old"
    with staged(out) as s:
        assert s == tmp_path / ".out.partial"
        (s / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_inside_keeps_every_written_path_in_its_folder(tmp_path):
    root = tmp_path / "out"
    (root / "images").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "images" / "link").symlink_to(tmp_path / "elsewhere")
    assert inside(root, "images/ab.png") == root / "images" / "ab.png"
    for rel in ("../evil", "images/../../evil", "/etc/passwd", "", ".", "images/link/x.png"):
        with pytest.raises(PathEscapeError, match="leaves the output folder"):
            inside(root, rel)


def test_state_files_are_written_whole_and_a_damaged_one_is_discarded(tmp_path):
    path = tmp_path / "state.json"
    write_atomic(path, json.dumps({"hash": "a"}))
    assert read_state(path, lambda v: isinstance(v, dict)) == {"hash": "a"}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left
    assert read_state(tmp_path / "absent.json", lambda v: True) is None
    for text in ("", '{"hash": "a', "[]", "\xff"):
        path.write_text(text)
        with pytest.warns(DamagedStateWarning, match=f"{path}: damaged resume state") as rec:
            assert read_state(path, lambda v: isinstance(v, dict)) is None
        assert len(rec) == 1



# --- the lock of an output (output_lock) --------------------------------------------------

def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_the_lock_names_its_holder_refuses_a_second_writer_and_is_removed(tmp_path):
    out = tmp_path / "sub" / "out"
    with output_lock(out) as path:
        assert path == tmp_path / "sub" / ".out.lock"
        holder = json.loads(path.read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        since = datetime.strptime(holder["since"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        assert abs((datetime.now(timezone.utc) - since).total_seconds()) < 60
        assert isinstance(holder["command"], str) and holder["command"]
        with pytest.raises(OutputBusyError, match=rf"^out {re.escape(str(out))} is being written by pid "
                                                  rf"{os.getpid()} on host .* since {holder['since']} \(.*\); "
                                                  "wait for it or stop it$"):
            with staged(out):
                pytest.fail("a second writer never gets in")
        assert sorted(p.name for p in path.parent.iterdir()) == [".out.lock"]  # no staging made
    assert list(path.parent.iterdir()) == []


def test_a_stale_lock_file_is_taken_over(tmp_path):
    out = tmp_path / "out"
    lock_path(out).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "command": "old",
                                          "since": "2020-01-01T00:00:00Z"}) + "\n")
    with staged(out) as s:
        assert json.loads(lock_path(out).read_text())["pid"] == os.getpid()  # one line, ours
        (s / "x").write_text("1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


class _NoFlock:
    """An ``fcntl`` whose ``flock`` the filesystem refuses (ENOLCK, as on some network mounts)."""

    LOCK_EX, LOCK_NB = 2, 4

    @staticmethod
    def flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")


@pytest.mark.parametrize("no_flock", [None, _NoFlock])
def test_without_flock_the_lock_is_an_exclusive_file(tmp_path, monkeypatch, no_flock):
    monkeypatch.setattr(fs, "fcntl", no_flock)
    out = tmp_path / "out"
    with output_lock(out) as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
        with pytest.raises(OutputBusyError, match=f"pid {os.getpid()} .* wait for it or stop it "
                                                  rf"\(if it is not running, remove {re.escape(str(path))}\)"):
            with output_lock(out):
                pass
    assert not path.exists()
    for host, taken in ((socket.gethostname(), True), ("elsewhere", False)):
        path.write_text(json.dumps({"pid": _dead_pid(), "host": host, "command": "c", "since": "s"}))
        if taken:  # a dead process of this host
            with output_lock(out):
                assert json.loads(path.read_text())["pid"] == os.getpid()
        else:  # another host's: cannot tell whether it runs
            with pytest.raises(OutputBusyError, match="on host elsewhere"):
                with output_lock(out):
                    pass
