"""Second round of hostile input: each case an adversarial tester found, kept as a regression.

1 ``show --where`` reaching files; 2-5 writer commands clobbering ``--out``; 6-7 injected
placeholders and tampered coordinates in ``import-llava``; 8 duplicate ids; 9 invalid boxes
counting toward ambiguity; 10-12 hostile refcoco pickles and unhashable ids; 13 a malformed
``mix.json``; 15 unbounded mixes; 16 undecodable files; 17 bad limits. Inputs are crafted in
``tmp_path``; everything runs in a few seconds on CPU.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from owl_data.build.driver import SourceSpec, run_build
from owl_data.cli.app import app
from owl_data.config import BuildConfig
from owl_data.export import export_llava
from owl_data.corpus.gallery import GalleryConfig, GalleryError, _sandbox, write_gallery
from owl_data.mix.io import MixConfig, MixSizeError, mix_stats, parse_ratio, write_mix
from owl_data.fs import OutputError
from owl_data.records import Scene, TextRow
from owl_data.sources import SourceError
from owl_data.sources.refcoco import UnsafePickle, load_refs
from owl_data.corpus.validate import validate_corpus
from tests.owl_data.mix.conftest import write_tiny_corpus

runner = CliRunner()


def _rows(corpus: Path, table: str) -> list[dict]:
    return [r for f in sorted((corpus / table).rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def _png(path: Path, w: int = 80, h: int = 60) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path, format="PNG")


def _build(out: Path, *specs: SourceSpec) -> dict:
    m = run_build(list(specs), out, BuildConfig()).manifest
    for name, s in m["sources"].items():
        assert s["items_read"] == s["items_kept"] + s["items_rejected"], name
        assert sum(s["rejects"].values()) == s["items_rejected"], name
    rep = validate_corpus(out)
    assert rep.ok, rep.problems
    return m


def _one_line_error(res) -> str:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and res.output.count("error:") == 1, res.output
    return res.output


def _snapshot(p: Path) -> dict[str, bytes | None]:
    return {str(x.relative_to(p)): (x.read_bytes() if x.is_file() else None) for x in sorted(p.rglob("*"))}


@pytest.fixture
def tiny(tmp_path) -> Path:
    return write_tiny_corpus(tmp_path / "corpus")


def _lcb(tmp: Path, lines: list[object], raw: bytes = b"") -> Path:
    """A llava_caps_boxes source: one 80x60 image ``a.png`` and a JSONL of ``lines``."""
    d = tmp / "lcb"
    _png(d / "a.png")
    text = "\n".join(json.dumps(x) for x in lines).encode() + raw
    (d / "x_caps_boxes.jsonl").write_bytes(text)
    return d


@pytest.fixture
def lcb_corpus(tmp_path) -> Path:
    """A built corpus with caption and grounding rows (two cars, left and right)."""
    src = _lcb(tmp_path, [{"id": 1, "image": "a.png", "captions": ["Two cars."],
                           "instances": [{"category": "car", "bbox": [0.05, 0.1, 0.3, 0.5]},
                                         {"category": "car", "bbox": [0.6, 0.1, 0.9, 0.5]}]}])
    out = tmp_path / "corpus"
    _build(out, SourceSpec("llava_caps_boxes", str(src)))
    return out


# --- 1. show --where cannot reach files ----------------------------------------------------


def test_where_cannot_read_files_or_change_settings(tiny, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:TOPSECRET\n")
    for where in (f"(SELECT content FROM read_text('{secret}')) LIKE 'root:%'",
                  f"(SELECT count(*) FROM read_csv('{secret}')) > 0",
                  f"(SELECT count(*) FROM glob('{tmp_path}/*')) > 0",
                  f"(SELECT count(*) FROM read_parquet('{tiny}/vqa/*/*.parquet')) > 0"):
        res = runner.invoke(app, ["show", str(tiny), "--out", str(tmp_path / "g"), "--task", "vqa", "--where", where])
        out = _one_line_error(res)
        assert "TOPSECRET" not in out and "disabled" in out
        assert not (tmp_path / "g").exists()
    con = _sandbox([str(p) for p in (tiny / "vqa").rglob("*.parquet")])
    try:
        assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 16
        for stmt in (f"COPY t TO '{tmp_path}/leak.csv'", f"ATTACH '{tmp_path}/x.db'", "INSTALL httpfs",
                     "LOAD httpfs", "SET enable_external_access = true", f"SELECT * FROM read_text('{secret}')"):
            with pytest.raises(duckdb.Error):
                con.execute(stmt)
    finally:
        con.close()
    assert not (tmp_path / "leak.csv").exists() and not (tmp_path / "x.db").exists()
    # statements are not predicates: a clear one-line error, nothing run
    out = _one_line_error(runner.invoke(app, ["show", str(tiny), "--out", str(tmp_path / "g"), "--task", "vqa",
                                              "--where", f"1=1; COPY t TO '{tmp_path}/leak.csv'"]))
    assert "not a valid DuckDB predicate" in out and not (tmp_path / "leak.csv").exists()
    rep = write_gallery(tiny, tmp_path / "g", GalleryConfig(task="vqa", where="source = 'gqa'"))
    assert rep.rows == {"vqa": 4}


# --- 2-5. writer commands never clobber a folder that is not their own ---------------------


def test_mix_out_refusals_touch_nothing(tiny, tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "mix.json").write_text('{"my": "notes"}')
    a_file = tmp_path / "file"
    a_file.write_text("x")
    link = tmp_path / "link"
    link.symlink_to(mine, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path)
    cfg = MixConfig(ratio=parse_ratio("1:1:1:1"), num_samples=10)
    for out, match in [(mine, "not an Owl-VL mix"), (Path("."), "name"), (tmp_path, "current directory"),
                       (a_file, "not a folder"), (link, "symbolic link"), (tiny / "m", "inside the corpus"),
                       (tmp_path, "current directory")]:
        with pytest.raises(OutputError, match=match):
            write_mix(tiny, out, cfg)
    assert _snapshot(tmp_path) == before
    res = runner.invoke(app, ["mix", str(tiny), "-r", "1:1:1:1", "-n", "5", "--out", "."])
    _one_line_error(res)


def test_mix_replaces_only_its_own_output(tiny, tmp_path):
    out = tmp_path / "m"
    cfg = MixConfig(ratio=parse_ratio("1:1:1:1"), num_samples=10)
    write_mix(tiny, out, cfg)
    write_mix(tiny, out, MixConfig(ratio=parse_ratio("1:1:1:1"), num_samples=20))  # an earlier mix: replaced
    assert pq.read_metadata(out / "mix.parquet").num_rows == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "m"]  # no staging folder left
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="notes.txt"):
        write_mix(tiny, out, cfg)
    assert (out / "notes.txt").read_text() == "mine"


def test_show_out_refusals_and_stale_thumbnails(tiny, tmp_path, monkeypatch):
    user = tmp_path / "site"
    user.mkdir()
    (user / "index.html").write_text("my page")
    with pytest.raises(OutputError, match="not an Owl-VL gallery"):
        write_gallery(tiny, user)
    assert (user / "index.html").read_text() == "my page"
    monkeypatch.chdir(tmp_path)
    for out in (Path("."), tmp_path, tiny / "g"):
        with pytest.raises(OutputError):
            write_gallery(tiny, out)
    g = tmp_path / "g"
    write_gallery(tiny, g, GalleryConfig(limit=2))
    assert (g / ".owl-gallery").is_file()
    (g / "thumbs" / "0123456789abcdef.png").write_bytes(b"stale")
    write_gallery(tiny, g, GalleryConfig(limit=2))  # an earlier gallery: replaced whole
    assert not (g / "thumbs" / "0123456789abcdef.png").exists()
    (g / "notes.txt").write_text("mine")
    out = _one_line_error(runner.invoke(app, ["show", str(tiny), "--out", str(g)]))
    assert "notes.txt" in out and (g / "notes.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_export_into_an_earlier_export_keeps_user_files(lcb_corpus, tmp_path):
    out = tmp_path / "ex"
    export_llava(lcb_corpus, out)
    (out / "notes.txt").write_text("mine")
    res = runner.invoke(app, ["export", str(lcb_corpus), "--format", "llava", "--out", str(out)])
    assert "notes.txt" in _one_line_error(res)
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
    assert "not an Owl-VL corpus" in _one_line_error(res) and (user / "keep.txt").read_text() == "mine"


# --- 6-8. import-llava: placeholders, tampered coordinates, duplicate ids -------------------


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
    rej = {r["item"]: r["reason"] for r in _rows(tmp_path / "back", "rejects")}
    assert sorted(rej.values()) == ["duplicate_id", "placeholder_in_text", "unparsable_coordinates",
                                    "unparsable_coordinates"]
    assert len(set(rej)) == 4  # unique item keys
    g = _rows(tmp_path / "back", "grounding")
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
    out = _one_line_error(runner.invoke(app, ["import-llava", str(ex), "--out", str(tmp_path / "back")]))
    assert p.name in out and not (tmp_path / "back").exists()
    side = json.loads((ex / "owl_export.json").read_text())
    side["files"] = {"../../etc/passwd": {}}
    (ex / "owl_export.json").write_text(json.dumps(side))
    assert "not a file inside" in _one_line_error(
        runner.invoke(app, ["import-llava", str(ex), "--out", str(tmp_path / "back")]))
    (ex / "owl_export.json").write_text("[1, 2]")
    _one_line_error(runner.invoke(app, ["import-llava", str(ex), "--out", str(tmp_path / "back")]))


def test_validate_applies_the_placeholder_rule_to_every_row(lcb_corpus):
    f = next((lcb_corpus / "caption").rglob("*.parquet"))
    t = pq.read_table(f)
    rows = t.to_pylist()
    rows[0]["conversations"][-1]["content"] += " <point>"
    pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), f)
    rep = validate_corpus(lcb_corpus)
    assert any("placeholders" in p and "<point>" in p for p in rep.problems), rep.problems


def test_builder_never_writes_two_rows_with_one_id(tmp_path, monkeypatch):
    import owl_data.build.driver as build_mod
    from owl_data.sources._common import image_ref

    _png(tmp_path / "src" / "a.png")

    def twice(spec, options):
        ref = image_ref(options.name, tmp_path / "src", "a.png")
        for _ in range(2):  # a source that lists the same item in two scenes
            yield Scene(ref=ref, rows=[TextRow(task="caption", item="cap:1", answer="A picture.")],
                        sample_points=False)
        yield Scene(ref=ref, rows=[TextRow(task="caption", item="cap:2", answer="Another.")], sample_points=False)

    monkeypatch.setattr(build_mod, "get_reader", lambda name: twice)
    m = _build(tmp_path / "out", SourceSpec("llava_caps_boxes", str(tmp_path / "src")))
    ids = [r["id"] for r in _rows(tmp_path / "out", "caption")]
    assert len(ids) == len(set(ids)) == 2
    assert m["sources"]["llava_caps_boxes"]["items_read"] == 2


# --- 8-9. readers: duplicate source ids, invalid boxes do not make a valid one ambiguous -----


def test_llava_caps_boxes_duplicate_ids_and_only_valid_boxes_count(tmp_path):
    src = _lcb(tmp_path, [
        {"id": 1, "image": "a.png", "captions": ["A car."],
         "instances": [{"category": "car", "bbox": [0.1, 0.1, 0.5, 0.5]},
                       {"category": "car", "bbox": [0.5, 0.5, 0.1, 0.1]},     # reversed
                       {"category": "car", "bbox": [0.1, 0.1, 0.1, 0.1]}]},   # zero area
        {"id": 1, "image": "a.png", "captions": ["dup id"]},
        {"id": [2], "image": "a.png", "captions": ["unhashable id"]}], raw=b"\n{\"id\": 4, \"captions\": [\"\xff\"]}")
    out = tmp_path / "out"
    m = _build(out, SourceSpec("llava_caps_boxes", str(src)))
    g = _rows(out, "grounding")
    assert {r["expression"] for r in g} == {"the car"} and len(g) == 2
    rej = {r["item"]: r["reason"] for r in _rows(out, "rejects")}
    assert rej["x_caps_boxes.jsonl:1#line2"] == "duplicate_id"
    assert rej["x_caps_boxes.jsonl:line3"] == "malformed_line"
    assert rej["x_caps_boxes.jsonl:line4"] == "malformed_line"  # not UTF-8: that line only
    assert m["sources"]["llava_caps_boxes"]["rejects"]["bad_box"] == 1


def _refcoco(tmp: Path, refs_bytes: bytes, images: list | None = None, anns: list | None = None) -> str:
    d = tmp / "refcoco"
    d.mkdir(exist_ok=True)
    _png(tmp / "images" / "a.png")
    (d / "instances.json").write_text(json.dumps({
        "images": images if images is not None else [{"id": 7, "file_name": "a.png", "width": 80, "height": 60}],
        "annotations": anns if anns is not None else [{"id": 70, "image_id": 7, "bbox": [8, 6, 40, 30]}],
        "categories": [{"id": 3, "name": "car"}]}))
    (d / "refs(unc).p").write_bytes(refs_bytes)
    return f"{d}?images={tmp / 'images'}"


GOOD = {"ref_id": 1, "ann_id": 70, "image_id": 7, "split": "train", "category_id": 3,
        "sentences": [{"sent": "the red thing"}]}


def test_refcoco_duplicate_refs_and_unhashable_ids(tmp_path):
    m = _build(tmp_path / "o1", SourceSpec("refcoco", _refcoco(tmp_path, pickle.dumps([GOOD, GOOD]))))
    assert m["sources"]["refcoco"]["rejects"] == {"duplicate_ref": 1}
    assert len(_rows(tmp_path / "o1", "grounding")) == 2
    bad = [{**GOOD, "ref_id": 2, "ann_id": [10]}, {**GOOD, "ref_id": [1]}, {**GOOD, "ref_id": 3, "category_id": {}},
           {**GOOD, "ref_id": 4, "ann_id": 71}, {**GOOD, "ref_id": 5, "ann_id": 72}]
    spec = _refcoco(tmp_path, pickle.dumps(bad),
                    images=[{"id": [1], "file_name": "a.png"}, {"id": None, "file_name": "a.png"},
                            {"id": 7, "file_name": "a.png", "width": 80, "height": 60}],
                    anns=[{"id": 70, "image_id": 7, "bbox": [8, 6, 40, 30]}, {"id": 71, "image_id": None,
                                                                              "bbox": [1, 1, 5, 5]},
                          {"id": 72, "image_id": [7], "bbox": [1, 1, 5, 5]}, {"id": {}, "bbox": [1, 1, 5, 5]}])
    m = _build(tmp_path / "o2", SourceSpec("refcoco", spec))
    assert m["sources"]["refcoco"]["rejects"] == {"malformed_ref": 2, "unknown_image": 2}
    assert m["sources"]["refcoco"]["items_kept"] == 1  # category_id {}: no category, still a row


def test_refcoco_hostile_pickles_are_clear_errors(tmp_path):
    p = tmp_path / "refs.p"
    for data, exc, match in [
        (b"\x80\x02]}X\x01\x00\x00\x00aK\x01sb.", UnsafePickle, "BUILD"),                # state on a list
        (b"\x80\x02}}X\x01\x00\x00\x00aK\x01sb.", UnsafePickle, "BUILD"),                # state on a dict
        (b"\x80\x04\x8e" + (2 ** 62).to_bytes(8, "little") + b"xx.", SourceError, "not a readable pickle"),
        (b"\x80\x02]" + b"(" * 100 + b".", SourceError, "not a readable pickle"),
    ]:
        p.write_bytes(data)
        with pytest.raises(exc, match=match):
            load_refs(p)
    spec = _refcoco(tmp_path, b"\x80\x02]}X\x01\x00\x00\x00aK\x01sb.")
    out = _one_line_error(runner.invoke(app, ["build", "--source", f"refcoco={spec}", "--out", str(tmp_path / "o")]))
    assert "BUILD" in out


def test_a_split_is_never_a_path(tmp_path):
    ref = {**GOOD, "split": "../../../escaped"}
    m = _build(tmp_path / "out", SourceSpec("refcoco", _refcoco(tmp_path, pickle.dumps([ref]))))
    assert m["sources"]["refcoco"]["rejects"] == {"bad_split": 1}
    assert not (tmp_path / "escaped").exists() and not any(tmp_path.parent.glob("escaped"))


def test_coco_captions_unhashable_image_id_is_malformed(tmp_path):
    d = tmp_path / "coco"
    _png(d / "val2017" / "1.png")
    (d / "captions_val2017.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "1.png", "width": 80, "height": 60}, {"id": [2], "file_name": "x"}],
        "annotations": [{"id": 10, "image_id": 1, "caption": "A picture."},
                        {"id": 11, "image_id": [3], "caption": "x"}, {"id": 12, "image_id": {}, "caption": "y"},
                        {"id": [13], "image_id": 1, "caption": "z"}]}))
    m = _build(tmp_path / "out", SourceSpec("coco_captions", str(d)))
    assert m["sources"]["coco_captions"]["rejects"] == {"malformed_annotation": 3}


# --- 13, 15, 17. mixes: malformed mix.json, sizes beyond the disk, interrupted writes ---------


def test_mix_stats_on_a_malformed_mix_json(tiny, tmp_path):
    out = tmp_path / "m"
    write_mix(tiny, out, MixConfig(ratio=parse_ratio("1:1:1:1"), num_samples=10))
    for text in ("[1, 2]", '{"format": "owl-mix/1"}', '{"format": "owl-mix/1", "spec": {"tasks": [{"name": 1}]}}',
                 "{not json"):
        (out / "mix.json").write_text(text)
        with pytest.raises(ValueError):
            mix_stats(out)
        _one_line_error(runner.invoke(app, ["mix-stats", str(out)]))


def test_mix_larger_than_the_disk_is_refused(tiny, tmp_path, monkeypatch):
    import owl_data.mix.io as mix_io

    monkeypatch.setattr(mix_io, "_free_bytes", lambda path: 10_000)
    with pytest.raises(MixSizeError, match="--num-samples"):
        write_mix(tiny, tmp_path / "m", MixConfig(ratio=parse_ratio("1:1:1:1"), num_samples=10 ** 12))
    with pytest.raises(MixSizeError, match="--epochs"):
        write_mix(tiny, tmp_path / "m", MixConfig(ratio=parse_ratio("1:1:1:1"), epochs=10 ** 9))
    out = _one_line_error(runner.invoke(app, ["mix", str(tiny), "-r", "1:1:1:1", "-n", str(10 ** 12),
                                              "--out", str(tmp_path / "m")]))
    assert "GiB" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


def test_interrupted_mix_leaves_no_partial_file(tiny, tmp_path, monkeypatch):
    import owl_data.mix.io as mix_io

    out = tmp_path / "m"
    write_mix(tiny, out, MixConfig(ratio=parse_ratio("1:1:1:1"), num_samples=10))
    before = _snapshot(out)
    calls = {"n": 0}
    real = mix_io.MixSampler.picks

    def picks(self, start, stop):
        calls["n"] += 1
        if calls["n"] > 1:  # the first call sizes the mix; the next is the write
            raise KeyboardInterrupt
        return real(self, start, stop)

    monkeypatch.setattr(mix_io.MixSampler, "picks", picks)
    with pytest.raises(KeyboardInterrupt):
        write_mix(tiny, out, MixConfig(ratio=parse_ratio("1:1:1:1"), num_samples=50))
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "m"]


def test_bad_limits_and_empty_tasks_say_what_is_wrong(tiny, tmp_path):
    out = _one_line_error(runner.invoke(app, ["show", str(tiny), "--out", str(tmp_path / "g"),
                                              "--limit", "99999999999999999999"]))
    assert "--limit" in out and "1..1,000,000" in out
    with pytest.raises(GalleryError, match="limit"):
        GalleryConfig(limit=0)
    out = _one_line_error(runner.invoke(app, ["mix", str(tiny), "-r", "1", "--tasks", "", "--out",
                                              str(tmp_path / "m")]))
    assert "no task given" in out


# --- 16. one undecodable file rejects its own items, not the run ---------------------------


def test_flickr30k_non_utf8_sentences_file_is_rejected_by_name(tmp_path):
    d = tmp_path / "f30k"
    for iid in ("1", "4"):
        _png(d / "flickr30k-images" / f"{iid}.png")
        os.rename(d / "flickr30k-images" / f"{iid}.png", d / "flickr30k-images" / f"{iid}.jpg")
    (d / "Sentences").mkdir()
    (d / "Sentences" / "1.txt").write_text("A man walks .\nA man .\n")
    (d / "Sentences" / "4.txt").write_bytes(b"\xff A bad line .\nanother\n")
    m = _build(tmp_path / "out", SourceSpec("flickr30k", str(d)))
    s = m["sources"]["flickr30k"]
    assert (s["items_kept"], s["rejects"]) == (2, {"unreadable_annotation": 2})
    details = {r["detail"] for r in _rows(tmp_path / "out", "rejects")}
    assert all("4.txt" in x for x in details)


def test_coco_relation_words_count_only_placed_boxes(tmp_path):
    from tests.owl_data.build.test_hostile import _ann, _coco

    spec = _coco(tmp_path, [_ann(1), _ann(2, segmentation=[[1, 1, 2, 2]], bbox=[70, 50, 0, 0])])  # 2: degenerate
    run_build([spec], tmp_path / "out", BuildConfig())
    assert validate_corpus(tmp_path / "out").ok
    g = _rows(tmp_path / "out", "grounding")
    assert {r["expression"] for r in g} == {"the car"}
    assert "ambiguous_expression" not in {r["reason"] for r in _rows(tmp_path / "out", "rejects")}
