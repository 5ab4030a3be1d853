"""`owl-data show`: the HTML gallery, checked in a real browser (headless Chromium) and as text."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from owl_data.build.driver import SourceSpec, run_build
from owl_data.cli.app import app
from owl_data.build.config import BuildConfig
from owl_data.corpus.gallery import (POINT_COLOUR, GalleryConfig, GalleryError, _sandbox, first_thumb_origin,
                                     write_gallery)
from owl_data.fs import OutputError
from owl_data.sources.synthetic.scenes import write_default_scenes
from tests.helpers import one_line_error

runner = CliRunner()
WINDOW = (1600, 900)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gallery")
    scenes = write_default_scenes(root / "scenes")
    out = root / "corpus"
    run_build([SourceSpec("cityscapes", str(scenes), synthetic=True)], out, BuildConfig())
    return out


def _chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing but CI is set: .ci/run installs it (apt-get install chromium)")
        pytest.skip("headless Chromium not found (Debian: apt-get install chromium)")
    return exe


def _browser(args: list[str], url: str, tmp: Path) -> subprocess.CompletedProcess:
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--force-device-scale-factor=1",
           "--hide-scrollbars", f"--window-size={WINDOW[0]},{WINDOW[1]}", "--virtual-time-budget=2000",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
           f"--user-data-dir={tmp / 'chromium-profile'}", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


def _cards(page: str) -> list[str]:
    return re.findall(r'<div class="card".*?</div></div></div>', page)


def _first_point(page: str) -> tuple[float, float, int, int]:
    """The first card's marker position (normalised, from its data attributes) and thumbnail size."""
    first = _cards(page)[0]
    m = re.search(r'<circle class="pt" [^>]*data-x="([^"]+)" data-y="([^"]+)"', first)
    size = re.search(r'<img src="[^"]+" width="(\d+)" height="(\d+)"', first)
    assert m and size, first
    return float(m[1]), float(m[2]), int(size[1]), int(size[2])


def _magenta(rgb: np.ndarray) -> np.ndarray:
    target = np.array([int(POINT_COLOUR[i:i + 2], 16) for i in (1, 3, 5)])
    return (np.abs(rgb.astype(int) - target) <= 12).all(axis=-1)


def test_screenshot_shows_images_and_the_point_where_the_row_says(corpus, tmp_path):
    out = tmp_path / "show"
    res = runner.invoke(app, ["show", str(corpus), "--task", "point_vqa", "--limit", "6", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "point_vqa: 6" in res.output
    page = (out / "index.html").read_text()
    assert len(_cards(page)) == 6
    assert not re.search(r'(src|href)="(https?:)?//', page), "the page must not load external resources"

    shot = tmp_path / "shot.png"
    proc = _browser([f"--screenshot={shot}"], (out / "index.html").as_uri(), tmp_path)
    assert shot.is_file(), proc.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (WINDOW[1], WINDOW[0])

    # The first card's thumbnail sits at a fixed place (fixed CSS layout) and shows the image.
    x, y, tw, th = _first_point(page)
    ox, oy = first_thumb_origin()
    region = img[oy:oy + th, ox:ox + tw]
    ex, ey = x * tw, y * th  # expected marker centre inside the thumbnail, CSS px
    far = np.ones((th, tw), bool)  # pixels away from the overlay (marker and box)
    yy, xx = np.mgrid[0:th, 0:tw]
    far &= (xx - ex) ** 2 + (yy - ey) ** 2 > 14 ** 2
    bbox = re.search(r'<rect class="box" x="([^"]+)" y="([^"]+)" width="([^"]+)" height="([^"]+)"', _cards(page)[0])
    bx, by, bw, bh = (float(v) for v in bbox.groups())
    far &= ~((xx > bx - 4) & (xx < bx + bw + 4) & (yy > by - 4) & (yy < by + bh + 4))
    colours, counts = np.unique(region[far], axis=0, return_counts=True)
    assert len(colours) > 1000 and counts.max() < 0.5 * far.sum(), "thumbnail area is near-uniform: no image"
    first_id = re.search(r'<img src="thumbs/([0-9a-f]+)\.png"', _cards(page)[0])[1]
    thumb = np.asarray(Image.open(out / "thumbs" / f"{first_id}.png").convert("RGB"))
    assert thumb.shape[:2] == (th, tw)
    diff = np.abs(region.astype(int) - thumb.astype(int))[far]
    assert diff.mean() < 4, f"the screenshot does not show the thumbnail (mean abs diff {diff.mean():.1f})"

    # The magenta marker is drawn where the row's point says, and the image itself is not magenta there.
    win = 12
    x0, y0 = int(ox + ex) - win, int(oy + ey) - win
    patch = _magenta(img[y0:y0 + 2 * win + 1, x0:x0 + 2 * win + 1])
    assert patch.sum() >= 40, f"no point marker near ({ox + ex:.1f}, {oy + ey:.1f}) in the screenshot"
    py, px = np.nonzero(patch)
    cx, cy = x0 + px.mean() + 0.5, y0 + py.mean() + 0.5  # pixel centres
    assert abs(cx - (ox + ex)) <= 1.5 and abs(cy - (oy + ey)) <= 1.5, (cx, cy, ox + ex, oy + ey)
    tx0, ty0 = max(0, int(ex) - win), max(0, int(ey) - win)
    assert _magenta(thumb[ty0:ty0 + 2 * win + 1, tx0:tx0 + 2 * win + 1]).sum() == 0, "image has magenta there"

    # Beside the thumbnail (one card gap to its right), the zoom: its PNG upscaled to the thumbnail's
    # height, the crosshair's arms around the point, and the point itself left clear.
    zx = ox + tw + 12
    name = re.search(r'<img src="(zooms/[^"]+\.png)" width="(\d+)"', _cards(page)[0])
    assert name and int(name[2]) == th
    zoom = Image.open(out / name[1]).convert("RGB")
    shown = img[oy:oy + th, zx:zx + th].astype(int)
    want = np.asarray(zoom.resize((th, th), Image.Resampling.NEAREST)).astype(int)
    cx, cy = (float(v) for v in re.search(r'class="cross" d="[^"]+" data-cx="([^"]+)" data-cy="([^"]+)"',
                                         _cards(page)[0]).groups())
    k = th / zoom.size[0]
    zy, zx_ = np.mgrid[0:th, 0:th]
    r = np.hypot(zx_ + 0.5 - cx * k, zy + 0.5 - cy * k)
    arms = (r > 4) & (r < 17) & ((np.abs(zx_ + 0.5 - cx * k) < 4) | (np.abs(zy + 0.5 - cy * k) < 4))
    assert _magenta(img[oy:oy + th, zx:zx + th][arms]).sum() >= 20, "no crosshair around the point in the zoom"
    clear = r < 4
    assert not _magenta(img[oy:oy + th, zx:zx + th][clear]).any(), "the crosshair covers the point"
    box = re.search(r'<rect class="box" x="([^"]+)" y="([^"]+)" width="([^"]+)" height="([^"]+)"',
                    _cards(page)[0].split('class="fig zoom"')[1])
    keep = ~arms & (r >= 17)
    if box:
        bx, by, bw, bh = (float(v) * k for v in box.groups())
        edge = ((np.abs(zx_ - bx) < 4) | (np.abs(zx_ - bx - bw) < 4) | (np.abs(zy - by) < 4) | (np.abs(zy - by - bh) < 4))
        keep &= ~edge
    assert np.abs(shown - want)[keep].mean() < 8, "the screenshot does not show the zoom beside the thumbnail"


def test_page_filters_in_the_browser(corpus, tmp_path):
    out = tmp_path / "show"
    assert runner.invoke(app, ["show", str(corpus), "--limit", "20", "--out", str(out)]).exit_code == 0
    page = (out / "index.html").read_text()
    cats = re.findall(r'data-category="([^"]*)"', page)
    assert "car" in cats and len(set(cats)) > 1
    proc = _browser(["--dump-dom"], (out / "index.html").as_uri() + "#category=car", tmp_path)
    dom = proc.stdout
    cards = _cards(dom)
    assert len(cards) == len(cats), proc.stderr[-2000:]
    for card in cards:
        shown = " hidden" not in card.split(">", 1)[0]
        assert shown == ('data-category="car"' in card), card[:200]
    assert f'{cats.count("car")} of {len(cats)} rows' in dom


def test_text_is_escaped_and_placeholders_marked(corpus, tmp_path):
    rep = write_gallery(corpus, tmp_path / "g", GalleryConfig(task="point_vqa", limit=3))
    page = rep.index.read_text()
    assert "<image>" not in page and "<point>" not in page
    assert '<span class="ph">&lt;image&gt;</span><span class="ph">&lt;point&gt;</span>' in page
    # text with markup goes through html.escape: a crafted row cannot inject elements
    from owl_data.corpus.gallery import _card

    row = {"id": 'x"><script>alert(1)</script>', "image_id": "ab", "source": "s<b>", "split": "train",
           "conversations": [{"role": "user", "content": "<image><point>is <b>this</b> & that?"},
                             {"role": "assistant", "content": "</div><img src=x onerror=alert(1)>"}],
           "px": 0.5, "py": 0.5, "bbox": [0.1, 0.2, 0.3, 0.4], "category": 'c"a', "kind": "description",
           "generator": "g", "answers": None, "expression": None}
    card = _card("point_vqa", row, (100, 50), 320)
    assert "<script>" not in card and "<b>this" not in card and "<img src=x" not in card
    assert "is &lt;b&gt;this&lt;/b&gt; &amp; that?" in card and 'data-category="c&quot;a"' in card
    assert html.unescape(re.search(r'data-id="([^"]*)"', card)[1]) == row["id"]
    assert 'cx="50.00" cy="25.00"' in card and 'x="10.00" y="10.00" width="20.00" height="10.00"' in card


def test_where_filters_rows_in_id_order(corpus, tmp_path):
    out = tmp_path / "cars"
    res = runner.invoke(app, ["show", str(corpus), "--where", "source = 'cityscapes' AND target.category = 'car'",
                              "--limit", "5", "--out", str(out)])
    assert res.exit_code == 0, res.output
    page = (out / "index.html").read_text()
    ids = re.findall(r'data-id="([^"]+)"', page)
    assert set(re.findall(r'data-category="([^"]*)"', page)) == {"car"}
    expected = [r[0] for r in duckdb.connect().execute(
        f"SELECT id FROM read_parquet('{corpus.as_posix()}/point_vqa/**/*.parquet') "
        "WHERE target.category = 'car' ORDER BY id LIMIT 5").fetchall()]
    assert ids == expected
    # thumbnails are made only for the images shown, longest side 320 px
    thumbs = sorted((out / "thumbs").glob("*.png"))
    assert thumbs and all(max(Image.open(t).size) == 320 for t in thumbs)
    assert {t.stem for t in thumbs} == set(re.findall(r'src="thumbs/([0-9a-f]+)\.png"', page))


def test_invalid_where_and_other_errors_are_one_line(corpus, tmp_path):
    for where, words in (("target.category = = 'car'", "not a valid DuckDB predicate"),
                         ("no_such_column = 1", "no_such_column"),
                         ("source", "Conversion Error")):
        res = runner.invoke(app, ["show", str(corpus), "--where", where, "--out", str(tmp_path / "o")])
        assert res.exit_code == 2, res.output
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], res.output
    for args, words in ((["--task", "nope"], "unknown task 'nope'"), (["--task", "vqa"], "no vqa rows"),
                        (["--limit", "0"], "limit")):
        res = runner.invoke(app, ["show", str(corpus), *args, "--out", str(tmp_path / "o")])
        assert res.exit_code == 2 and words in res.output, res.output
    res = runner.invoke(app, ["show", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "not a corpus" in res.output
    with pytest.raises(GalleryError, match="predicate"):
        write_gallery(corpus, tmp_path / "o", GalleryConfig(where="1 +"))


def test_gallery_is_deterministic(corpus, tmp_path):
    a = write_gallery(corpus, tmp_path / "a", GalleryConfig(limit=4))
    b = write_gallery(corpus, tmp_path / "b", GalleryConfig(limit=4))
    assert a.index.read_bytes() == b.index.read_bytes()
    for t in (tmp_path / "a" / "thumbs").iterdir():
        assert t.read_bytes() == (tmp_path / "b" / "thumbs" / t.name).read_bytes()


def test_all_tasks_where_skips_tables_it_does_not_apply_to(corpus, tmp_path):

    from owl_data.corpus.writer import finish_corpus, read_manifest, to_table

    c = tmp_path / "corpus"
    shutil.copytree(corpus, c)
    image_id = duckdb.connect().execute(
        f"SELECT min(image_id) FROM read_parquet('{c.as_posix()}/images/*.parquet')").fetchone()[0]
    user = {"role": "user", "content": "<image>Where is <the car>?"}
    rows = [{"id": "g1", "image_id": image_id, "source": "refcoco", "split": "train", "expression": "the <b>car</b>",
             "bbox": [0.25, 0.5, 0.5, 0.75], "conversations": [user, {"role": "assistant", "content": "<box>"}]}]
    (c / "grounding" / "train").mkdir(parents=True)
    pq.write_table(to_table("grounding", rows), c / "grounding" / "train" / "part-00000.parquet")
    rows = [{"id": "v1", "image_id": "f" * 64, "source": "vqav2", "split": "val", "answers": ["yes", "no"],
             "conversations": [{"role": "user", "content": "<image>Is it?"}, {"role": "assistant", "content": "yes"}]}]
    (c / "vqa" / "val").mkdir(parents=True)
    pq.write_table(to_table("vqa", rows), c / "vqa" / "val" / "part-00000.parquet")
    finish_corpus(c, read_manifest(c))  # the added shards listed with their hashes

    rep = write_gallery(c, tmp_path / "all", GalleryConfig(limit=2))
    assert rep.rows == {"point_vqa": 2, "vqa": 1, "grounding": 1} and rep.missing_images == 1
    page = rep.index.read_text()
    assert 'data-task="grounding"' in page and "the &lt;b&gt;car&lt;/b&gt;" in page and "image missing" in page
    assert 'x="80.00" y="80.00" width="80.00" height="40.00"' in page  # 320x160 thumbnail
    assert '<option value="refcoco">' in page and '<option value="vqav2">' in page

    res = runner.invoke(app, ["show", str(c), "--where", "target.category = 'car'", "--out", str(tmp_path / "w")])
    assert res.exit_code == 0, res.output
    assert "does not apply to vqa" in res.output and "does not apply to grounding" in res.output
    assert "point_vqa:" in res.output
    res = runner.invoke(app, ["show", str(c), "--task", "grounding", "--where", "target.category = 'car'",
                              "--out", str(tmp_path / "w")])
    assert res.exit_code == 2 and "failed on grounding" in res.output


def test_where_cannot_read_files_or_change_settings(tiny, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:TOPSECRET\n")
    for where in (f"(SELECT content FROM read_text('{secret}')) LIKE 'root:%'",
                  f"(SELECT count(*) FROM read_csv('{secret}')) > 0",
                  f"(SELECT count(*) FROM glob('{tmp_path}/*')) > 0",
                  f"(SELECT count(*) FROM read_parquet('{tiny}/vqa/*/*.parquet')) > 0"):
        res = runner.invoke(app, ["show", str(tiny), "--out", str(tmp_path / "g"), "--task", "vqa", "--where", where])
        out = one_line_error(res)
        assert "TOPSECRET" not in out and "disabled" in out
        assert not (tmp_path / "g").exists()
    con = _sandbox([pq.read_table(p) for p in (tiny / "vqa").rglob("*.parquet")])
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
    out = one_line_error(runner.invoke(app, ["show", str(tiny), "--out", str(tmp_path / "g"), "--task", "vqa",
                                              "--where", f"1=1; COPY t TO '{tmp_path}/leak.csv'"]))
    assert "not a valid DuckDB predicate" in out and not (tmp_path / "leak.csv").exists()
    rep = write_gallery(tiny, tmp_path / "g", GalleryConfig(task="vqa", where="source = 'gqa'"))
    assert rep.rows == {"vqa": 4}


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
    out = one_line_error(runner.invoke(app, ["show", str(tiny), "--out", str(g)]))
    assert "notes.txt" in out and (g / "notes.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_where_cannot_read_settings(tiny, tmp_path):
    """No yes/no oracle on the session: settings and introspection functions are refused by name."""
    for where, name in (("current_setting('home_directory') = '/root'", "current_setting"),
                        ("(SELECT value FROM duckdb_settings() WHERE name = 'home_directory') = '/root'",
                         "duckdb_settings"),
                        ("getenv('HOME') = '/root'", "getenv"),
                        ("(SELECT count(*) FROM pragma_version()) > 0", "pragma_version")):
        res = runner.invoke(app, ["show", str(tiny), "--out", str(tmp_path / "g"), "--task", "vqa", "--where", where])
        out = one_line_error(res)
        assert f"may not call {name}()" in out and "--where" in out
        assert not (tmp_path / "g").exists()
    res = runner.invoke(app, ["show", str(tiny), "--out", str(tmp_path / "g"), "--task", "vqa", "--where",
                              "(SELECT count(*) FROM duckdb_tables) > 0"])
    assert "may read only the task table (t), not 'duckdb_tables'" in one_line_error(res)
    rep = write_gallery(tiny, tmp_path / "g", GalleryConfig(task="vqa", where="lower(source) = 'gqa'"))
    assert rep.rows == {"vqa": 4}
