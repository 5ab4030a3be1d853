"""``import-llava`` (owl_data.export.importer): injected placeholders, tampered coordinates, copied ids
and malformed JSON are rejects or one clear error."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from owl_data.cli.app import app
from owl_data.corpus.validate import validate_corpus
from owl_data.export import export_llava
from tests.helpers import one_line_error
from tests.owl_data.helpers import table_rows

runner = CliRunner()

def test_import_rejects_injected_placeholders_tampered_coordinates_and_copied_ids(lcb_corpus, tmp_path):
    ex = tmp_path / "ex"
    export_llava(lcb_corpus, ex)
    p = next(ex.glob("grounding_*.json"))
    recs = json.loads(p.read_text())
    assert len(recs) == 4
    ask = next(i for i, r in enumerate(recs) if r["conversations"][1]["value"].endswith("<|box_end|>"))
    region = next(i for i, r in enumerate(recs) if "<|box_start|>" in r["conversations"][0]["value"])
    recs[ask]["conversations"][0]["value"] = "<image>\n<point><point><box> injected"
    recs[region]["conversations"][0]["value"] = "<image>\nWhat is at (1500,NaN)?"
    other = next(i for i in range(4) if i not in (ask, region) and recs[i]["conversations"][1]["value"].endswith(
        "<|box_end|>"))
    recs[other]["conversations"][1]["value"] = "<|box_start|>(5000,-3),(99999999999999999999,1)<|box_end|>"
    last = next(i for i in range(4) if i not in (ask, region, other))
    recs.append(json.loads(json.dumps(recs[last])))  # a copied id
    p.write_text(json.dumps(recs))
    res = runner.invoke(app, ["import-llava", str(ex), "--out", str(tmp_path / "back")])
    assert res.exit_code == 0, res.output
    rej = {r["item"]: r["reason"] for r in table_rows(tmp_path / "back", "rejects")}
    assert sorted(rej.values()) == ["duplicate_id", "placeholder_in_text", "unparsable_coordinates",
                                    "unparsable_coordinates"]
    assert len(set(rej)) == 4  # unique item keys
    g = table_rows(tmp_path / "back", "grounding")
    assert len(g) == 1 and g[0]["id"] == recs[last]["id"]
    assert not any("<point>" in t["content"] for r in g for t in r["conversations"])
    m = json.loads((tmp_path / "back" / "manifest.json").read_text())
    s = m["sources"]["llava_caps_boxes"]
    assert s["items_read"] == s["items_kept"] + s["items_rejected"]
    assert validate_corpus(tmp_path / "back").ok


def test_import_truncated_or_malformed_json_is_one_clear_error(lcb_corpus, tmp_path):
    ex = tmp_path / "ex"
    export_llava(lcb_corpus, ex)
    p = next(ex.glob("grounding_*.json"))
    p.write_text(p.read_text()[:50])
    out = one_line_error(runner.invoke(app, ["import-llava", str(ex), "--out", str(tmp_path / "back")]))
    assert p.name in out and not (tmp_path / "back").exists()
    side = json.loads((ex / "owl_export.json").read_text())
    side["files"] = {"../../etc/passwd": {}}
    (ex / "owl_export.json").write_text(json.dumps(side))
    assert "not a file inside" in one_line_error(
        runner.invoke(app, ["import-llava", str(ex), "--out", str(tmp_path / "back")]))
    (ex / "owl_export.json").write_text("[1, 2]")
    one_line_error(runner.invoke(app, ["import-llava", str(ex), "--out", str(tmp_path / "back")]))


def test_import_of_something_that_is_no_export_says_what_it_expects(lcb_corpus, tmp_path):
    llava_json = tmp_path / "llava_instruct.json"
    llava_json.write_text(json.dumps([{"id": "1", "image": "a.jpg", "conversations": []}]))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.json").write_text("[]")
    hf = tmp_path / "hf"
    runner.invoke(app, ["export", str(lcb_corpus), "--format", "hf", "--out", str(hf)])
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "owl_export.json").write_text(json.dumps({"format": 7}))
    cases = {llava_json: "is a file, not an Owl-VL llava or sharegpt export",
             foreign: "has no owl_export.json: not an Owl-VL llava or sharegpt export",
             hf: "is an hf export, not an Owl-VL llava or sharegpt export",
             odd: "not an Owl-VL llava or sharegpt export: its owl_export.json names format '7'"}
    for folder, expected in cases.items():
        res = runner.invoke(app, ["import-llava", str(folder), "--out", str(tmp_path / "c")])
        text = one_line_error(res).replace("\n", "")
        assert expected in text, text
        if folder in (llava_json, foreign):
            assert "--source llava=FILE.json" in text
        assert "format None" not in text and not (tmp_path / "c").exists()
