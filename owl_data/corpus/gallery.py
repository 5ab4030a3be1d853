"""``owl-data show``: a static HTML gallery of corpus rows with their geometry drawn on.

The page (``index.html``) is self-contained: inline CSS and JavaScript, no external resource.
Beside it, ``thumbs/<image_id>.png`` holds one thumbnail per image, made with Pillow from the
``images`` table's bytes and scaled so that its longer side is :data:`THUMB_PX` pixels, and
``zooms/<image_id>_<x0>_<y0>_<side>.png`` the zoom of each row with a point: the square of the
full-resolution image around the point (:mod:`owl_data.corpus.gallery_images`: 1/6 of the shorter side, at
least 96 px, clamped inside the image), its own pixels, shown upscaled to the thumbnail's height.

Each row is a card: the thumbnail with an SVG overlay in the thumbnail's pixel frame (the
target box as a cyan rectangle, the point as a filled magenta circle), the zoom with the box's
outline and a crosshair that leaves the point itself clear (``data-crop="x0,y0,side"``), and the
row's turns beside it. Geometry is stored normalised to [0, 1] in the stored upright image's frame
(DESIGN.md "Corpus layout"), and the thumbnail is a uniform scaling of that frame, so a point
(x, y) is drawn at (x * w, y * h) for a thumbnail of w x h pixels. Every point marker carries
``data-x``/``data-y`` (the stored normalised point) so a browser test can find it.

Rows come from DuckDB over the Parquet shards, per task ordered by ``id`` and cut at
``limit``; ``where`` is a DuckDB predicate over the task table's own columns
(``source = 'cityscapes' AND target.category = 'car'``), parsed as one expression. The
predicate is user SQL, so it never reaches a connection that can touch anything else: the
task's shards are opened with pyarrow, each checked against the manifest's hash
(:mod:`owl_data.corpus.read`), and registered as the table ``t`` on a fresh DuckDB
connection, then ``enable_external_access`` is switched off and the configuration locked
before the predicate is evaluated. ``read_text``, ``read_csv``, ``glob``, ``COPY``,
``ATTACH``, ``INSTALL`` and ``LOAD`` in ``--where`` fail with a one-line
:class:`GalleryError`, and so do settings functions (:mod:`owl_data.corpus.predicate`).

The output folder holds ``.owl-gallery`` (its marker); ``show`` replaces only an empty
folder or an earlier gallery holding nothing else (:func:`owl_data.fs.check_out`),
writing beside it and swapping it into place (no stale thumbnail survives).

The page layout is fixed (see the ``*_PX`` constants) so that a card's thumbnail sits at a
known place in the viewport: the first card's thumbnail has its top-left corner at
:func:`first_thumb_origin`.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from owl_data.corpus import schema as schemas
from owl_data.corpus.predicate import predicate_problem
from owl_data.corpus.read import CorpusReader
from owl_data.corpus.gallery_images import ZoomCrop, write_images, zoom_overlay
from owl_data.errors import FieldError
from owl_data.fs import OutputKind, check_out, json_marker, staged

__all__ = ["GalleryError", "GallerySettingError", "GalleryConfig", "GalleryReport", "GALLERY_OUT", "MAX_LIMIT",
           "write_gallery", "first_thumb_origin", "THUMB_PX", "HEADER_PX", "GAP_PX", "CARD_PAD_PX", "CARD_BORDER_PX",
           "POINT_COLOUR", "BOX_COLOUR"]

THUMB_PX = 320  # longer side of every thumbnail, in CSS pixels
HEADER_PX = 56  # height of the filter bar at the top of the page
GAP_PX = 12  # padding of the card grid and gap between cards
CARD_PAD_PX = 10  # padding inside a card
CARD_BORDER_PX = 1  # border of a card
CARD_W_PX = 1040  # width of a card (thumbnail + zoom + text column)
POINT_COLOUR = "#ff00ff"  # point marker fill
BOX_COLOUR = "#00e5ff"  # target box stroke
POINT_R_PX = 6  # point marker radius (a white edge inside, a black ring 2 px outside)
MAX_LIMIT = 1_000_000  # most rows per task a gallery shows
GALLERY_MARKER = ".owl-gallery"
GALLERY_FORMAT = "owl-gallery/1"
GALLERY_OUT = OutputKind(what="an Owl-VL gallery", marker=GALLERY_MARKER,
                         recognise=json_marker(lambda d: d.get("format") == GALLERY_FORMAT),
                         owned=lambda name: name in (GALLERY_MARKER, "index.html", "thumbs", "zooms"),
                         example="gallery")

# Per task: the SQL projection onto the gallery's common columns (over the table's own columns).
_COLUMNS = "id, image_id, source, split, conversations, px, py, bbox, category, kind, generator, answers, expression"
_PROJECT: dict[str, str] = {
    "point_vqa": "id, image_id, source, split, conversations, point.x AS px, point.y AS py, target.bbox AS bbox, "
                 "target.category AS category, kind, generator, NULL AS answers, NULL AS expression",
    "grounding": "id, image_id, source, split, conversations, NULL AS px, NULL AS py, bbox, NULL AS category, "
                 "NULL AS kind, NULL AS generator, NULL AS answers, expression",
    "vqa": "id, image_id, source, split, conversations, NULL AS px, NULL AS py, NULL AS bbox, NULL AS category, "
           "NULL AS kind, NULL AS generator, answers, NULL AS expression",
    "caption": "id, image_id, source, split, conversations, NULL AS px, NULL AS py, NULL AS bbox, NULL AS category, "
               "NULL AS kind, NULL AS generator, NULL AS answers, NULL AS expression",
}
assert set(_PROJECT) == set(schemas.TASK_TABLES)  # invariant: every task table has a projection


class GalleryError(ValueError):
    """A gallery request that cannot be served: not a corpus, unknown task, bad predicate."""


class GallerySettingError(GalleryError, FieldError):
    """A :class:`GalleryConfig` setting that is invalid; ``field`` names it (``limit``, ``where``)."""


@dataclass(frozen=True)
class GalleryConfig:
    """What to show.

    Attributes:
        task: one task table (``point_vqa``, ``vqa``, ``caption``, ``grounding``), or None for all.
        where: a DuckDB predicate over the task table's columns, or None.
        limit: at most this many rows per task, the first by ``id``.
        thumb_px: longer side of the thumbnails in pixels.
    """

    task: str | None = None
    where: str | None = None
    limit: int = 100
    thumb_px: int = THUMB_PX

    def __post_init__(self) -> None:
        if self.task is not None and self.task not in schemas.TASK_TABLES:
            raise GalleryError(f"unknown task {self.task!r}: use one of {', '.join(schemas.TASK_TABLES)}")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or not 1 <= self.limit <= MAX_LIMIT:
            shown = repr(self.limit) if len(repr(self.limit)) <= 30 else repr(self.limit)[:27] + "..."
            raise GallerySettingError("limit", f"limit {shown}: must be an integer in 1..{MAX_LIMIT:,} (rows per task)")
        if not isinstance(self.thumb_px, int) or not 16 <= self.thumb_px <= 4096:
            raise GalleryError(f"thumb_px={self.thumb_px!r}: must be an integer in 16..4096")
        if self.where is not None and not self.where.strip():
            raise GalleryError("where='': give a DuckDB predicate, e.g. \"source = 'cityscapes'\", or leave it out")


@dataclass
class GalleryReport:
    """What :func:`write_gallery` wrote.

    Attributes:
        index: path of ``index.html``.
        rows: rows shown per task.
        thumbnails: thumbnails written.
        zooms: rows shown with a zoom around their point.
        missing_images: rows whose image is absent from ``images`` or cannot be decoded.
        skipped: task -> why ``where`` did not apply to it (only when no task was named).
    """

    index: Path
    rows: dict[str, int] = field(default_factory=dict)
    thumbnails: int = 0
    zooms: int = 0
    missing_images: int = 0
    skipped: dict[str, str] = field(default_factory=dict)


def first_thumb_origin() -> tuple[int, int]:
    """Viewport position (CSS px) of the first card's thumbnail top-left corner."""
    inset = GAP_PX + CARD_BORDER_PX + CARD_PAD_PX
    return inset, HEADER_PX + inset


def _tables(reader: CorpusReader, table: str) -> list[pa.Table]:
    """The table's shards read whole, each checked against the manifest (:mod:`owl_data.corpus.read`)."""
    return [reader.read_table(rel) for rel in reader.files(table)]


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _sandbox(tables: list[pa.Table]) -> duckdb.DuckDBPyConnection:
    """A fresh connection holding the shards (read by pyarrow) as table ``t`` and nothing else
    it can reach: the connection may open no file, install or load no extension, attach no
    database, and its configuration is locked.
    """
    con = duckdb.connect()
    con.register("t", ds.InMemoryDataset(tables))
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def _query_rows(reader: CorpusReader, cfg: GalleryConfig, report: GalleryReport) -> list[tuple[str, dict[str, Any]]]:
    tasks = [cfg.task] if cfg.task else list(schemas.TASK_TABLES)
    present = {t: f for t in tasks if (f := _tables(reader, t))}
    if cfg.task and not present:
        raise GalleryError(f"{reader.root}: the corpus has no {cfg.task} rows")
    out: list[tuple[str, dict[str, Any]]] = []
    if cfg.where is not None and (why := predicate_problem(cfg.where)):
        raise GallerySettingError("where", why)
    errors: dict[str, str] = {}
    names = _COLUMNS.split(", ")
    for task, files in present.items():
        con = _sandbox(files)
        try:
            rel = con.table("t")
            if cfg.where is not None:
                rel = rel.filter(cfg.where)
            got = rel.order("id").limit(cfg.limit).project(_PROJECT[task]).fetchall()
        except duckdb.ParserException as exc:
            raise GallerySettingError("where", f"where {cfg.where!r} is not a valid DuckDB predicate: "
                                      f"{_first_line(exc)}") from exc
        except duckdb.PermissionException as exc:
            raise GallerySettingError("where", f"where may only read the task table's own columns (file, "
                                      f"extension and setting access are disabled): {_first_line(exc)}") from exc
        except duckdb.Error as exc:
            errors[task] = _first_line(exc)
            continue
        finally:
            con.close()
        report.rows[task] = len(got)
        out += [(task, dict(zip(names, r))) for r in got]
    if errors and (cfg.task or len(errors) == len(present)):
        task, msg = next(iter(errors.items()))
        raise GallerySettingError("where", f"where {cfg.where!r} failed on {task}: {msg}")
    report.skipped = errors
    return out


def _esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


_PLACEHOLDER = re.compile(r"&lt;(image|point|box)&gt;")


def _text(value: str) -> str:
    """Escaped text with the corpus placeholders (``<image>``, ``<point>``, ``<box>``) marked."""
    return _PLACEHOLDER.sub(r'<span class="ph">&lt;\1&gt;</span>', _esc(value))


def _overlay(row: dict[str, Any], w: int, h: int) -> str:
    parts = []
    bbox = row["bbox"]
    if bbox is not None and len(bbox) == 4:
        x0, y0, x1, y1 = bbox
        parts.append(f'<rect class="box" x="{x0 * w:.2f}" y="{y0 * h:.2f}" width="{(x1 - x0) * w:.2f}" '
                     f'height="{(y1 - y0) * h:.2f}"/>')
    if row["px"] is not None and row["py"] is not None:
        cx, cy = f'{row["px"] * w:.2f}', f'{row["py"] * h:.2f}'
        parts.append(f'<circle class="pt-ring" cx="{cx}" cy="{cy}" r="{POINT_R_PX + 2}"/>'
                     f'<circle class="pt" cx="{cx}" cy="{cy}" r="{POINT_R_PX}" '
                     f'data-x="{row["px"]!r}" data-y="{row["py"]!r}"/>')
    return (f'<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg">'
            + "".join(parts) + "</svg>")


def _zoom(row: dict[str, Any], crop: ZoomCrop, full: tuple[int, int], h: int) -> str:
    """The zoom beside a thumbnail of height ``h``: the crop's PNG shown ``h`` x ``h`` with its marks."""
    name = f'{_esc(row["image_id"])}_{crop.x0}_{crop.y0}_{crop.side}'
    marks = zoom_overlay(crop, row["px"], row["py"], *full, row["bbox"], h)
    return (f'<div class="fig zoom" style="width:{h}px;height:{h}px" data-crop="{crop.x0},{crop.y0},{crop.side}">'
            f'<img src="zooms/{name}.png" width="{h}" height="{h}" alt="zoom">{marks}</div>')


def _card(task: str, row: dict[str, Any], size: tuple[int, int] | None, side: int,
          zoom: tuple[ZoomCrop, tuple[int, int]] | None = None) -> str:
    """One row's card; ``zoom`` = (crop, full image (w, h)) for a row with a point."""
    if size is None:
        fig = f'<div class="fig missing" style="width:{side}px;height:{side // 2}px">image missing</div>'
    else:
        w, h = size
        fig = (f'<div class="fig" style="width:{w}px;height:{h}px">'
               f'<img src="thumbs/{_esc(row["image_id"])}.png" width="{w}" height="{h}" alt="">'
               f'{_overlay(row, w, h)}</div>') + (_zoom(row, zoom[0], zoom[1], h) if zoom else "")
    turns = "".join(f'<p class="turn {_esc(t.get("role"))}"><b>{_esc(t.get("role"))}</b> {_text(t.get("content") or "")}</p>'
                    for t in row["conversations"] or [])
    meta = [task, row["source"], row["split"], row["kind"], row["category"]]
    extra = []
    if row["expression"] is not None:
        extra.append(f'<p><b>expression</b> {_text(row["expression"])}</p>')
    if row["answers"] is not None:
        extra.append(f'<p><b>answers</b> {_text(" | ".join(row["answers"]))}</p>')
    geo = []
    if row["px"] is not None:
        geo.append(f'point ({row["px"]:.4f}, {row["py"]:.4f})')
    if row["bbox"] is not None:
        geo.append("box (" + ", ".join(f"{v:.4f}" for v in row["bbox"]) + ")")
    foot = " · ".join([f'id {row["id"]}', *([row["generator"]] if row["generator"] else []), *geo])
    return (f'<div class="card" data-task="{_esc(task)}" data-source="{_esc(row["source"])}" '
            f'data-split="{_esc(row["split"])}" data-category="{_esc(row["category"] or "")}" '
            f'data-id="{_esc(row["id"])}">{fig}<div class="txt">'
            f'<div class="meta">{" · ".join(_esc(m) for m in meta if m)}</div>{turns}{"".join(extra)}'
            f'<div class="foot">{_esc(foot)}</div></div></div>')


_CSS = f"""
*{{box-sizing:border-box}}
body{{margin:0;font:13px/1.35 system-ui,sans-serif;background:#f3f3f3;color:#222}}
header{{position:sticky;top:0;z-index:2;height:{HEADER_PX}px;overflow:hidden;display:flex;align-items:center;
gap:12px;padding:0 {GAP_PX}px;background:#263238;color:#fff;white-space:nowrap}}
header h1{{font-size:16px;margin:0}} header select{{font:inherit}}
#grid{{display:flex;flex-wrap:wrap;align-items:flex-start;gap:{GAP_PX}px;padding:{GAP_PX}px;margin:0}}
.card{{display:flex;gap:12px;width:{CARD_W_PX}px;padding:{CARD_PAD_PX}px;border:{CARD_BORDER_PX}px solid #ccc;
background:#fff;align-items:flex-start}}
.card[hidden]{{display:none!important}}
.fig{{position:relative;flex:none;margin:0;padding:0;background:#ddd}}
.fig img{{display:block;width:100%;height:100%}}
.fig svg{{position:absolute;left:0;top:0;width:100%;height:100%;overflow:visible}}
.zoom img{{image-rendering:pixelated}} .zoom svg{{overflow:hidden}}
.zoom .box,.cross,.cross-halo{{vector-effect:non-scaling-stroke;fill:none}}
.cross{{stroke:{POINT_COLOUR};stroke-width:2}} .cross-halo{{stroke:#000;stroke-width:4}}
.fig.missing{{display:flex;align-items:center;justify-content:center;color:#900}}
.box{{fill:none;stroke:{BOX_COLOUR};stroke-width:2}}
.pt{{fill:{POINT_COLOUR};stroke:#fff;stroke-width:2}} .pt-ring{{fill:none;stroke:#000;stroke-width:1.5}}
.txt{{flex:1;min-width:0;overflow-wrap:anywhere}} .txt p{{margin:4px 0}}
.meta{{font-weight:600;color:#455a64}} .foot{{color:#888;font-size:11px;margin-top:6px}}
.turn.user b{{color:#1565c0}} .turn.assistant b{{color:#2e7d32}}
.ph{{font-family:monospace;background:#eef;border-radius:3px;padding:0 2px}}
"""

_JS = """
(function(){
  var sels = Array.prototype.slice.call(document.querySelectorAll('select[data-key]'));
  var cards = Array.prototype.slice.call(document.querySelectorAll('.card'));
  function apply(){
    var n = 0;
    cards.forEach(function(c){
      var ok = sels.every(function(s){ return !s.value || c.dataset[s.dataset.key] === s.value; });
      c.hidden = !ok; if (ok) n++;
    });
    document.getElementById('count').textContent = n + ' of ' + cards.length + ' rows';
  }
  // Filters may be preset in the URL: index.html#task=point_vqa&category=car
  var q = new URLSearchParams(location.hash.slice(1));
  sels.forEach(function(s){
    if (q.has(s.dataset.key)) s.value = q.get(s.dataset.key);
    s.addEventListener('change', apply);
  });
  apply();
})();
"""


def _select(key: str, values: list[str]) -> str:
    opts = "".join(f'<option value="{_esc(v)}">{_esc(v)}</option>' for v in values)
    return f'<label>{key} <select data-key="{key}"><option value="">all</option>{opts}</select></label>'


def write_gallery(corpus: Path, out: Path, cfg: GalleryConfig | None = None) -> GalleryReport:
    """Write ``out/index.html`` and ``out/thumbs/*.png`` for the rows ``cfg`` selects.

    Raises:
        DamagedShardError / CorpusChangedError: a shard that differs from the manifest's hash
            (:mod:`owl_data.corpus.read`).
        GalleryError: ``corpus`` is not a corpus, the named task has no rows, or ``cfg.where``
            is not a valid predicate (on the named task, or on every task when none is named)
            or reaches beyond the table's columns.
        OutputError: ``out`` is not new, empty or an earlier gallery holding nothing else;
            ``.``; the current directory; inside the corpus or holding it.
    """
    cfg = cfg or GalleryConfig()
    corpus, out = Path(corpus), Path(out)
    if not (corpus / "manifest.json").is_file():
        raise GalleryError(f"{corpus}: not a corpus (manifest.json is missing)")
    check_out(out, kind=GALLERY_OUT, reads={"the corpus": corpus})
    reader = CorpusReader(corpus)
    report = GalleryReport(index=out / "index.html")
    rows = _query_rows(reader, cfg, report)
    with staged(out) as staging:
        sizes, zooms = write_images(reader, rows, staging, cfg.thumb_px)
        report.thumbnails, report.zooms = len(sizes), len(zooms)
        report.missing_images = sum(1 for _, r in rows if r["image_id"] not in sizes)
        cards = "".join(_card(t, r, sizes.get(r["image_id"]), cfg.thumb_px, zooms.get(i)) for i, (t, r) in enumerate(rows))
        filters = "".join(_select(k, sorted({str(v) for t, r in rows if (v := (t if k == "task" else r[k]))}))
                          for k in ("task", "source", "split", "category"))
        title = f"Owl-VL gallery: {corpus.name}"
        where = f'<span title="--where">{_esc(cfg.where)}</span>' if cfg.where else ""
        page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
                f'<style>{_CSS}</style></head><body><header><h1>{_esc(title)}</h1>{filters}'
                f'<span id="count">{len(rows)} rows</span>{where}</header>'
                f'<main id="grid">{cards or "<p>no rows match</p>"}</main><script>{_JS}</script></body></html>\n')
        (staging / "index.html").write_text(page, encoding="utf-8")
        (staging / GALLERY_MARKER).write_text(json.dumps({"format": GALLERY_FORMAT, "corpus": str(corpus)}) + "\n")
    return report
