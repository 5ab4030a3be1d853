"""owl_data.build.chunks and owl_data.build.accounting on hand-made scene results (no image decoding)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from owl_data.build.accounting import consolidate
from owl_data.build.chunks import batches, chunk_folder, chunk_reusable, read_rows, row_items, save_chunk
from owl_data.build.driver import SourceSpec
from owl_data.build.rows import ImageFrame, caption_row, conversation
from owl_data.build.scene import SceneResult
from owl_data.build.config import BuildConfig
from owl_data.records import ImageRef, Reject, Scene

FRAME = ImageFrame(source="s", source_path="a.png", image_id="img1", split="train", declared=(4, 4), raw=(4, 4),
                   orientation=1, rotate=True)


def _result(items: list[str], rows: dict[str, str], rejects: list[Reject] = ()) -> SceneResult:
    """A scene of ``items`` whose caption rows are ``row id -> item``."""
    caps = [caption_row(FRAME, rid, conversation("<image>Describe.", f"caption {rid}"), it) for rid, it in rows.items()]
    for r in caps:
        r.pop("_item")
    return SceneResult(
        source="s", items=items, rows={"caption": caps}, row_items={"caption": list(rows.values())},
        rejects=list(rejects), kept=set(rows.values()),
        image={"image_id": "img1", "bytes": b"x", "format": "png", "width": 4, "height": 4, "split": "train"},
        ref={"image_id": "img1", "source": "s", "source_path": "a.png", "group": "g"})


def _scene(n: int) -> Scene:
    return Scene(ref=ImageRef("s", Path(f"/x/{n}.png"), f"{n}.png", "g"))


def test_batches_count_scenes_and_carry_rejects_along():
    recs = [_scene(0), Reject("s", "r", "read", "bad"), _scene(1), _scene(2)]
    assert [len(b) for b in batches(iter(recs), 2)] == [3, 1]


def test_chunks_end_at_their_scene_count_or_their_pixels():
    from owl_data.records import DeferredScene

    big = [DeferredScene("s", "m:f", (k,), item=f"f{k}", pixels=2048 * 1024) for k in range(5)]
    small = [Scene(ref=ImageRef("s", Path(f"/x/{k}.png"), f"{k}.png", "g", declared_size=(64, 32))) for k in range(5)]
    unknown = [_scene(k) for k in range(5)]
    two_frames = 2 * 2048 * 1024
    assert [len(b) for b in batches(iter(big), 16, two_frames)] == [2, 2, 1]  # 2 frames reach the bound
    assert [len(b) for b in batches(iter(small), 3, two_frames)] == [3, 2]    # the scene count ends them
    assert [len(b) for b in batches(iter(unknown), 4, 1)] == [4, 1]           # no size known: scenes only
    assert [len(b) for b in batches(iter(big), 16, 1)] == [1] * 5             # at least one scene each


def test_a_chunk_reads_back_and_is_reused_only_under_its_key(tmp_path):
    folder = chunk_folder(tmp_path, 0)
    folder.parent.mkdir(parents=True)
    save_chunk(folder, [_result(["a"], {"r1": "a"})], [Reject("s", "z", "read", "bad")], key="k1")
    assert chunk_reusable(folder, "k1") and not chunk_reusable(folder, "k2")
    assert [r["id"] for r in read_rows(folder, "caption")] == ["r1"]
    assert row_items(folder, "caption", 1) == ["a"]
    assert row_items(folder, "caption", 2) == [None, None]  # a count that does not match: unknown
    assert {r["item"] for r in read_rows(folder, "rejects")} == {"z"}
    assert json.loads((folder / "accounting.json").read_text()) == {
        "s": {"read": ["a", "z"], "kept": ["a"], "frames": {"upright": [], "raw": [], "ambiguous": []}}}


def test_frames_are_counted_per_image_across_chunks(tmp_path):
    """The manifest's ``frames`` counts distinct images (source paths) per frame taken, over
    every chunk; an image seen by two scenes counts once; a scene rejected before its frame
    was settled (frame None) counts nowhere."""
    import dataclasses

    def r(path, frame, ambiguous=False):
        return dataclasses.replace(_result([path], {}), frame=frame, frame_ambiguous=ambiguous, source_path=path,
                                   image=None, ref=None)
    chunks = [[r("a.jpg", "upright", True), r("b.jpg", "raw"), r("c.jpg", None)],
              [r("a.jpg", "upright", True), r("d.jpg", "upright"), r("e.jpg", "raw", True)]]
    partial = tmp_path / ".out.partial"
    for i, results in enumerate(chunks):
        folder = chunk_folder(partial, i)
        folder.parent.mkdir(parents=True, exist_ok=True)
        save_chunk(folder, results, [], key=str(i))
    m = consolidate(partial, len(chunks), tmp_path / "out", [SourceSpec("s", "x")], BuildConfig())
    assert m["sources"]["s"]["frames"] == {"upright": 2, "raw": 2, "ambiguous": 2}


def _consolidate(tmp_path: Path, chunks: list[list[SceneResult]]) -> tuple[dict, dict[str, str]]:
    partial = tmp_path / ".out.partial"
    for i, results in enumerate(chunks):
        folder = chunk_folder(partial, i)
        folder.parent.mkdir(parents=True, exist_ok=True)
        save_chunk(folder, results, [], key=str(i))
    out = tmp_path / "out"
    m = consolidate(partial, len(chunks), out, [SourceSpec("s", "/x")], BuildConfig())
    rejects = {r["item"]: r["reason"] for f in (out / "rejects").rglob("*.parquet") for r in pq.read_table(f).to_pylist()}
    assert not partial.exists()
    return m, rejects


def test_an_item_whose_every_row_is_a_duplicate_is_rejected_duplicate_row(tmp_path):
    m, rejects = _consolidate(tmp_path, [[_result(["a"], {"r1": "a"})], [_result(["b", "c"], {"r1": "b", "r2": "c"})]])
    s = m["sources"]["s"]
    assert rejects == {"b": "duplicate_row"}
    assert (s["items_read"], s["items_kept"], s["items_rejected"]) == (3, 2, 1)
    assert m["rows"]["caption"] == {"train": 2} and s["rows"] == {"caption": 2}
    assert m["rejects"] == {"total": 1, "by_reason": {"duplicate_row": 1}}
    assert m["prompt_pools"] == m["code"]["prompt_pools"]


def test_an_item_kept_in_one_chunk_and_rejected_in_another_leaves_no_reject_row(tmp_path):
    rejected = SceneResult(source="s", items=["a", "d"], rejects=[Reject("s", "a", "rows", "no_rows"),
                                                                  Reject("s", "d", "rows", "no_rows")])
    m, rejects = _consolidate(tmp_path, [[_result(["a"], {"r1": "a"})], [rejected]])
    assert rejects == {"d": "no_rows"}
    assert (m["sources"]["s"]["items_kept"], m["sources"]["s"]["items_rejected"]) == (1, 1)


def _chunks_on_disk(partial: Path, n: int) -> None:
    for i in range(n):
        folder = chunk_folder(partial, i)
        folder.parent.mkdir(parents=True, exist_ok=True)
        rows = {f"r{i}": f"i{i}", f"r{(i + 1) % n}": f"j{i}"}  # every row id but one comes twice
        save_chunk(folder, [_result([f"i{i}", f"j{i}"], rows)], [Reject("s", f"z{i}", "read", "bad")], key=str(i))


def _shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.parquet"))}


def test_streamed_consolidation_out_of_order_equals_the_batch_one(tmp_path):
    """Chunks made ready in any order, consolidated on the background thread, give the same
    shard bytes and manifest as consolidating every chunk after the last."""
    from owl_data.build.accounting import Consolidation

    n = 6
    _chunks_on_disk(tmp_path / "a", n)
    _chunks_on_disk(tmp_path / "b", n)
    batch = consolidate(tmp_path / "a", n, tmp_path / "out_a", [SourceSpec("s", "/x")], BuildConfig())
    c = Consolidation(tmp_path / "b")
    for i in (2, 0, 1, 5, 3, 4):
        c.ready(i)
    streamed = c.finish(n, tmp_path / "out_b", [SourceSpec("s", "/x")], BuildConfig())
    assert streamed["fingerprint"] == batch["fingerprint"] and streamed["sources"] == batch["sources"]
    assert _shard_bytes(tmp_path / "out_a") == _shard_bytes(tmp_path / "out_b")
    assert batch["sources"]["s"]["items_read"] == 3 * n and not (tmp_path / "b").exists()


def test_streamed_consolidation_raises_a_chunk_failure_and_aborts_cleanly(tmp_path):
    from owl_data.build.accounting import Consolidation

    _chunks_on_disk(tmp_path, 3)
    (chunk_folder(tmp_path, 1) / "caption.arrow").write_bytes(b"not arrow")  # damaged after it was written
    c = Consolidation(tmp_path)
    import pyarrow as pa

    with pytest.raises(pa.ArrowInvalid):  # the thread's error, raised in the driver's thread
        for i in range(3):
            c.ready(i)
        c.finish(3, tmp_path / "out", [SourceSpec("s", "/x")], BuildConfig())
    c.abort()
    assert c._thread is not None and not c._thread.is_alive()  # the writer thread is stopped
    assert not (tmp_path / "out").exists()
    with pytest.raises(RuntimeError, match="2 of 3 chunks ready in order"):
        (tmp_path / "fresh").mkdir()
        d = Consolidation(tmp_path / "fresh")
        d.ready(0)
        d.ready(1)
        d.finish(3, tmp_path / "out", [SourceSpec("s", "/x")], BuildConfig())
