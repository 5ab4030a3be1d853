"""Output folders (owl_data.fs): which ``--out`` a command refuses, and staged replacement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from owl_data.fs import (CORPUS_OUT, DamagedStateWarning, OutputError, PathEscapeError, check_out, inside, read_state,
                         staged, write_atomic)


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

