"""LLaVA and ShareGPT exports: layout, conventions recorded, and the round trip back to corpus rows."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from owl_data.cli.app import app
from owl_data.conventions.coords import unit
from owl_data.corpus.manifest import finish_corpus, read_manifest
from owl_data.corpus.validate import validate_corpus
from owl_data.export import (ExportError, export_llava, export_sharegpt, import_export, read_llava_export,
                             read_sharegpt_export)
from tests.helpers import one_line_error

runner = CliRunner()


def _corpus_rows(corpus: Path) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for task in ("point_vqa", "vqa", "caption", "grounding"):
        for f in sorted((corpus / task).glob("*/*.parquet")):
            for r in pq.read_table(f).to_pylist():
                out.setdefault(task, {})[r["id"]] = r
    return out


def _sizes(corpus: Path) -> dict[str, tuple[int, int]]:
    t = pq.read_table(corpus / "images", columns=["image_id", "width", "height"]).to_pylist()
    return {r["image_id"]: (r["width"], r["height"]) for r in t}


def _assert_same_rows(want: dict, got: dict, conv: str, sizes: dict) -> None:
    """Same ids, tasks and every field; geometry within one unit of the convention."""
    assert {t: set(r) for t, r in got.items()} == {t: set(r) for t, r in want.items()}
    for task, rows in want.items():
        for rid, w in rows.items():
            g = got[task][rid]
            ux, uy = unit(conv, sizes[w["image_id"]])
            for k in w:
                if k == "point":
                    assert abs(g[k]["x"] - w[k]["x"]) <= ux + 1e-12 and abs(g[k]["y"] - w[k]["y"]) <= uy + 1e-12
                elif k == "bbox":
                    assert all(abs(a - b) <= u + 1e-12 for a, b, u in zip(g[k], w[k], (ux, uy, ux, uy)))
                else:
                    assert g[k] == w[k], (task, rid, k)


@pytest.mark.parametrize("conv", ["qwen", "norm", "pixel"])
def test_llava_export_reads_back_to_the_same_rows(drive_corpus, tmp_path, conv):
    rep = export_llava(drive_corpus, tmp_path / "llava", coords=conv)
    manifest = json.loads((drive_corpus / "manifest.json").read_text())
    assert rep.rows == {t: manifest["rows"][t] for t in ("point_vqa", "grounding")}
    assert not rep.skipped
    back = read_llava_export(tmp_path / "llava")
    assert not back.rejects
    got = {t: {r["id"]: r for r in rows} for t, rows in back.rows.items()}
    _assert_same_rows(_corpus_rows(drive_corpus), got, conv, _sizes(drive_corpus))


def test_llava_layout_and_sidecar(drive_corpus, tmp_path):
    out = tmp_path / "llava"
    export_llava(drive_corpus, out)
    side = json.loads((out / "owl_export.json").read_text())
    assert side["format"] == "llava" and side["coords"]["name"] == "qwen"
    assert side["corpus"]["fingerprint"] == json.loads((drive_corpus / "manifest.json").read_text())["fingerprint"]
    assert set(side["files"]) == {"point_vqa_train.json", "grounding_train.json"}
    recs = json.loads((out / "grounding_train.json").read_text())
    r = recs[0]
    assert set(r) == {"id", "image", "conversations", "owl"}
    assert (out / r["image"]).is_file()
    assert [t["from"] for t in r["conversations"]] == ["human", "gpt"]
    assert r["conversations"][0]["value"].startswith("<image>\n")
    answer = r["conversations"][1]["value"]
    assert answer.startswith(f"<|object_ref_start|>{r['owl']['expression']}<|object_ref_end|><|box_start|>(")
    assert answer.endswith("<|box_end|>") and "<box>" not in answer
    pv = json.loads((out / "point_vqa_train.json").read_text())
    stage2 = [p for p in pv if p["owl"]["kind"] == "description" and p["conversations"][0]["value"].endswith(")")]
    assert stage2 and all("<point>" not in p["conversations"][0]["value"] for p in pv)
    assert len(list((out / "images").iterdir())) == side["images"] == 9


def test_box_in_0_1000_convention_within_one_unit(drive_corpus, tmp_path):
    export_llava(drive_corpus, tmp_path / "l", coords="qwen")
    want = _corpus_rows(drive_corpus)["grounding"]
    for r in read_llava_export(tmp_path / "l").rows["grounding"]:
        assert all(abs(a - b) <= 1 / 1000 + 1e-12 for a, b in zip(r["bbox"], want[r["id"]]["bbox"]))


def test_import_llava_writes_a_valid_corpus(syn_corpus, tmp_path):
    export_llava(syn_corpus, tmp_path / "l", coords="pixel")
    m = import_export(tmp_path / "l", tmp_path / "back")
    rep = validate_corpus(tmp_path / "back")
    assert rep.ok, rep.problems
    orig = json.loads((syn_corpus / "manifest.json").read_text())
    assert {t: c for t, c in m["rows"].items() if t not in ("image_refs",)} == \
        {t: c for t, c in orig["rows"].items() if t not in ("image_refs",)}
    assert m["sources"]["cityscapes"]["synthetic"] is True
    assert m["imported_from"]["coords"]["name"] == "pixel"
    _assert_same_rows(_corpus_rows(syn_corpus), _corpus_rows(tmp_path / "back"), "pixel", _sizes(syn_corpus))
    # the stored images come back byte for byte (same image ids)
    assert set(_sizes(tmp_path / "back")) == set(_sizes(syn_corpus))


def test_sharegpt_round_trip_and_dataset_info(drive_corpus, tmp_path):
    out = tmp_path / "sg"
    export_sharegpt(drive_corpus, out, coords="norm")
    rec = json.loads((out / "point_vqa_train.json").read_text())[0]
    assert set(rec) == {"id", "messages", "images", "owl"}
    assert [m["role"] for m in rec["messages"]] == ["user", "assistant"]
    assert rec["messages"][0]["content"].count("<image>") == len(rec["images"]) == 1
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["owl_point_vqa_train"]["formatting"] == "sharegpt"
    assert info["owl_point_vqa_train"]["columns"] == {"messages": "messages", "images": "images"}
    back = read_sharegpt_export(out)
    got = {t: {r["id"]: r for r in rows} for t, rows in back.rows.items()}
    _assert_same_rows(_corpus_rows(drive_corpus), got, "norm", _sizes(drive_corpus))
    m = import_export(out, tmp_path / "back")
    assert validate_corpus(tmp_path / "back").ok and m["imported_from"]["format"] == "sharegpt"


def test_rows_whose_text_looks_like_coordinates_are_skipped_not_garbled(drive_corpus, tmp_path):
    import shutil

    corpus = tmp_path / "c"
    shutil.copytree(drive_corpus, corpus)
    f = next((corpus / "grounding" / "train").glob("*.parquet"))
    t = pq.read_table(f)
    rows = t.to_pylist()
    rows[0]["conversations"][0]["content"] += " Hint: not at (3,4)."
    pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), f)
    finish_corpus(corpus, read_manifest(corpus))  # the edit made a new corpus (export checks the fingerprint)
    rep = export_llava(corpus, tmp_path / "l", coords="qwen")
    assert rep.skipped == {"ambiguous_text": [rows[0]["id"]]}
    assert rep.rows["grounding"]["train"] == len(rows) - 1
    side = json.loads((tmp_path / "l" / "owl_export.json").read_text())
    assert side["skipped"] == {"ambiguous_text": [rows[0]["id"]]}
    rep = export_llava(corpus, tmp_path / "l", coords="norm")  # an earlier export is replaced
    assert not rep.skipped


def test_broken_records_become_rejects(drive_corpus, tmp_path):
    out = tmp_path / "l"
    export_llava(drive_corpus, out)
    p = out / "grounding_train.json"
    recs = json.loads(p.read_text())
    recs[0]["conversations"][1]["value"] = "somewhere"  # the box text is gone
    recs[0]["owl"]["bbox"] = "nowhere"
    recs[1]["image"] = "../../etc/passwd"
    del recs[2]["owl"]
    p.write_text(json.dumps(recs))
    back = read_llava_export(out)
    assert sorted(r["reason"] for r in back.rejects) == ["missing_image", "no_owl_metadata", "unparsable_coordinates"]
    m = import_export(out, tmp_path / "back")
    assert m["rejects"]["total"] == 3
    s = m["sources"]["drivelm"]
    assert s["items_read"] == s["items_kept"] + s["items_rejected"]
    assert validate_corpus(tmp_path / "back").ok


def test_not_an_export_is_a_clear_error(drive_corpus, tmp_path):
    with pytest.raises(ExportError, match="owl_export.json"):
        read_llava_export(tmp_path)
    with pytest.raises(ExportError, match="llava or sharegpt"):
        import_export(tmp_path, tmp_path / "x")
    export_llava(drive_corpus, tmp_path / "l")
    with pytest.raises(ExportError, match="not sharegpt"):
        read_sharegpt_export(tmp_path / "l")


def test_export_into_an_earlier_export_keeps_user_files(lcb_corpus, tmp_path):
    out = tmp_path / "ex"
    export_llava(lcb_corpus, out)
    (out / "notes.txt").write_text("mine")
    res = runner.invoke(app, ["export", str(lcb_corpus), "--format", "llava", "--out", str(out)])
    assert "notes.txt" in one_line_error(res)
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    (out / "caption_test.json").write_text("[]")  # a stale file of an earlier export
    export_llava(lcb_corpus, out, coords="norm")
    assert not (out / "caption_test.json").exists()
    assert json.loads((out / "owl_export.json").read_text())["coords"]["name"] == "norm"
    user = tmp_path / "corp2"
    user.mkdir()
    (user / "keep.txt").write_text("mine")
    res = runner.invoke(app, ["import-llava", str(out), "--out", str(user)])
    assert "not an Owl-VL corpus" in one_line_error(res) and (user / "keep.txt").read_text() == "mine"
