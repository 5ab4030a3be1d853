"""Task rows of one scene: the one constructor per task table, and the rows sources give directly.

Every row of the four task tables is made by one constructor here (:func:`point_vqa_row`,
:func:`vqa_row`, :func:`caption_row`, :func:`grounding_row`), whether it comes from a sampled
point, an annotated point, a source QA or a :class:`~owl_data.records.TextRow`. A row is a
mapping of its table's columns (:data:`owl_data.corpus.schema.TASK_TABLES`) plus ``_item``,
the accounting key of the item it came from (None for context rows of no item), which the
builder uses to check placeholders per item and removes before writing.

:func:`text_rows` turns the scene's TextRows into rows, called by
:func:`owl_data.build.scene.process_scene` once the image is decoded. Geometry goes through
:mod:`owl_data.ingest.geometry` exactly as instances do: boxes and points are in the
declared frame (pixels, or normalised to it), transformed with the EXIF orientation when
that frame is the raw one, clipped to the image, normalised to [0, 1]. A box of zero width
or height is rejected (``zero_area``), one wholly outside the image ``outside_image``, an
unordered one ``bad_box``.

Rows written per task (``<image>`` opens the first user turn unless a chat placed it):

- ``vqa``: ``[system] user <image>question / assistant answer``; ``answers`` = all reference
  answers. Chats (``turns``) are written as given, ``answers`` = the assistant turns.
- ``caption``: ``user <image>`` + a caption prompt from the pool / ``assistant caption``.
- ``grounding``: two rows per expression and box: ``ref`` (expression -> box: a grounding
  prompt with the expression, assistant ``<box>``) and ``region`` (box -> expression: a
  region prompt holding ``<box>``, assistant the expression). Expressions built from a
  category get a relation word when the scene holds several valid boxes of that category
  (:func:`owl_data.generators.prompts.relation_expressions`); a box rejected for its
  geometry (reversed, zero area, outside the image) does not count.
- ``point_vqa``: ``<image><point>question`` / answer, ``point_origin = "annotated"``.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

from owl_data.generators.prompts import pick, relation_expressions
from owl_data.ingest.geometry import GeometryError, ResolvedInstance, resolve_instance
from owl_data.records import Box, Instance, Reject, Scene, TextRow

__all__ = ["ImageFrame", "SceneRows", "text_rows", "row_id", "user_point", "conversation",
           "point_vqa_row", "vqa_row", "caption_row", "grounding_row"]

STAGE = "rows"

Row = dict[str, Any]
"""One task-table row: its table's columns plus ``_item`` (see the module docstring)."""
BBox = tuple[float, float, float, float]


def row_id(*parts: object) -> str:
    """A deterministic row id: the first 24 hex digits of sha256 over the parts."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:24]


def user_point(question: str | None) -> str:
    """The user content of a point row: ``<image><point>`` + question (``<image>`` + question
    when the question already holds ``<point>`` inline, as DriveLM's do)."""
    if question is None:
        return "<image><point>"
    if "<point>" in question:
        return f"<image>{question}"
    return f"<image><point>{question}"


def _turn(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def conversation(user: str, assistant: str, system: str | None = None) -> list[dict[str, str]]:
    """``[system] user / assistant`` turns (``{role, content}``); no system turn when None or empty."""
    turns = [_turn("system", system)] if system else []
    return turns + [_turn("user", user), _turn("assistant", assistant)]


def _chat(tr: TextRow) -> list[dict[str, str]]:
    """A source's whole chat, with its system turn first and ``<image>`` in a user turn."""
    turns = [_turn(r, c) for r, c in (tr.turns or [])]
    if tr.system and not any(t["role"] == "system" for t in turns):
        turns.insert(0, _turn("system", tr.system))
    if not any("<image>" in t["content"] for t in turns if t["role"] == "user"):
        for t in turns:
            if t["role"] == "user":
                t["content"] = "<image>" + t["content"]
                break
    return turns


@dataclass(frozen=True)
class ImageFrame:
    """The stored image a scene's rows point to, and the frame its annotations are in.

    Attributes:
        source, source_path: the image's source and its path in the source (row ids).
        image_id, split: of the stored image.
        declared, raw, orientation, rotate: the annotation frame (see
            :func:`owl_data.ingest.frame.annotation_frame`): (W, H) of the annotation
            frame (raw when ``rotate``, else upright) and of the raw grid in pixels, the
            EXIF orientation, whether annotations are in the raw frame.
    """

    source: str
    source_path: str
    image_id: str
    split: str
    declared: tuple[int, int]
    raw: tuple[int, int]
    orientation: int
    rotate: bool

    def row_id(self, *parts: object) -> str:
        """:func:`row_id` over the source, the source path and ``parts``."""
        return row_id(self.source, self.source_path, *parts)

    def resolve(self, inst: Instance) -> ResolvedInstance:
        """``inst`` in the stored upright frame (:func:`owl_data.ingest.geometry.resolve_instance`)."""
        return resolve_instance(inst, declared=self.declared, raw=self.raw,
                                orientation=self.orientation, rotate=self.rotate)

    def _pixels(self, tr: TextRow, v: float, axis: int) -> float:
        return v * self.declared[axis] if tr.coords == "normalised" else v

    def resolve_text_row(self, tr: TextRow) -> ResolvedInstance:
        """A TextRow's box and point in the stored frame.

        Raises:
            GeometryError: ``zero_area`` for a box of no width or height, else as :meth:`resolve`.
        """
        box = None
        if tr.box is not None:
            b = tr.box
            box = Box(self._pixels(tr, b.x1, 0), self._pixels(tr, b.y1, 1),
                      self._pixels(tr, b.x2, 0), self._pixels(tr, b.y2, 1))
            if box.x2 == box.x1 or box.y2 == box.y1:
                raise GeometryError("zero_area", f"box {b.x1},{b.y1},{b.x2},{b.y2} has no area")
        point = None
        if tr.point is not None:
            point = (self._pixels(tr, tr.point[0], 0), self._pixels(tr, tr.point[1], 1))
        inst = Instance(instance=tr.instance or tr.item, category=tr.category or "", geometry=box, point=point)
        return self.resolve(inst)


# --- one constructor per task table ---------------------------------------------------------


def _row(frame: ImageFrame, rid: str, conv: list[dict[str, str]], item: str | None) -> Row:
    return {"id": rid, "image_id": frame.image_id, "source": frame.source, "split": frame.split,
            "conversations": conv, "_item": item}


def point_vqa_row(frame: ImageFrame, rid: str, conv: list[dict[str, str]], *, point: tuple[float, float],
                  origin: str, kind: str, category: str, source_category: str, instance: str, bbox: BBox,
                  generator: str, item: str | None) -> Row:
    """A ``point_vqa`` row; ``point`` (x, y) and ``bbox`` (xyxy, the target's) normalised to [0, 1]
    in the stored upright frame; ``origin`` is ``sampled``/``annotated``...; ``kind``
    ``description`` or ``reasoning``; ``category`` the unified name, ``source_category`` the
    source's own (:mod:`owl_data.conventions.taxonomy`)."""
    return {**_row(frame, rid, conv, item), "point": {"x": float(point[0]), "y": float(point[1])},
            "point_origin": origin, "kind": kind,
            "target": {"category": category, "source_category": source_category, "instance": instance,
                       "bbox": list(bbox)},
            "generator": generator}


def vqa_row(frame: ImageFrame, rid: str, conv: list[dict[str, str]], answers: list[str], item: str) -> Row:
    """A ``vqa`` row; ``answers`` are every reference answer."""
    return {**_row(frame, rid, conv, item), "answers": list(answers)}


def caption_row(frame: ImageFrame, rid: str, conv: list[dict[str, str]], item: str) -> Row:
    """A ``caption`` row."""
    return _row(frame, rid, conv, item)


def grounding_row(frame: ImageFrame, rid: str, conv: list[dict[str, str]], expression: str, bbox: BBox,
                  item: str | None) -> Row:
    """A ``grounding`` row; ``bbox`` xyxy normalised to [0, 1] in the stored upright frame."""
    return {**_row(frame, rid, conv, item), "expression": expression, "bbox": list(bbox)}


@dataclass
class SceneRows:
    """The rows of one scene as they are made, and its items' fate so far.

    Attributes:
        source: the scene's source (of every Reject made here).
        rows: table -> rows, in the order made.
        kept: item keys that produced at least one row.
        rejected: item key -> its first Reject.
    """

    source: str
    rows: dict[str, list[Row]] = field(default_factory=lambda: defaultdict(list))
    kept: set[str] = field(default_factory=set)
    rejected: dict[str, Reject] = field(default_factory=dict)

    def add(self, table: str, row: Row) -> None:
        """Append ``row`` to ``table``."""
        self.rows[table].append(row)

    def reject(self, item: str, stage: str, reason: str, detail: str = "") -> None:
        """Reject ``item`` unless it was rejected already (the first reason stands)."""
        self.rejected.setdefault(item, Reject(self.source, item, stage, reason, detail))


# --- rows sources give directly ---------------------------------------------------------------


def _grounding_boxes(scene: Scene, frame: ImageFrame, by_instance: dict[str, ResolvedInstance],
                     out: SceneRows) -> list[tuple[TextRow, BBox]]:
    """The grounding TextRows whose box resolves to an area in the stored image, with that box
    (a row naming an ``instance`` without a box takes that instance's); the others are rejected."""
    ground: list[tuple[TextRow, BBox]] = []
    for tr in scene.rows:
        if tr.task != "grounding":
            continue
        try:
            if tr.box is None and tr.instance is not None:
                if tr.instance not in by_instance:
                    raise GeometryError("unknown_target", f"instance {tr.instance} not resolved")
                bbox = by_instance[tr.instance].bbox
            else:
                bbox = frame.resolve_text_row(tr).bbox
        except GeometryError as exc:
            out.reject(tr.item, "geometry", exc.reason, exc.detail)
            continue
        if bbox[2] <= bbox[0] or bbox[3] <= bbox[1]:
            out.reject(tr.item, "geometry", "zero_area", "box has no area in the stored image")
            continue
        ground.append((tr, bbox))
    return ground


def _category_expressions(ground: list[tuple[TextRow, BBox]]) -> dict[int, str | None]:
    """Index in ``ground`` -> expression for the boxes named by category only: the category with
    a relation word among the placed boxes of that category (a rejected one names nothing)."""
    names: dict[int, str | None] = {}
    by_cat: dict[str, list[int]] = defaultdict(list)
    for n, (tr, _) in enumerate(ground):
        if tr.expression is None:
            by_cat[tr.category or "object"].append(n)
    for cat, idx in by_cat.items():
        exprs = relation_expressions(cat, [(ground[n][1][0] + ground[n][1][2]) / 2 for n in idx])
        names.update(zip(idx, exprs))
    return names


def _grounding_rows(scene: Scene, frame: ImageFrame, resolved: list[ResolvedInstance], seed: int,
                    out: SceneRows) -> None:
    """The ``ref`` and ``region`` rows of every grounding TextRow with a box and an expression."""
    src, path = frame.source, frame.source_path
    ground = _grounding_boxes(scene, frame, {r.instance: r for r in resolved}, out)
    names = _category_expressions(ground)
    for n, (tr, bbox) in enumerate(ground):
        expr = tr.expression if tr.expression is not None else names.get(n)
        expr = " ".join((expr or "").split())
        if not expr:
            out.reject(tr.item, STAGE, "ambiguous_expression" if tr.expression is None else "empty_text",
                       f"no unambiguous expression for {tr.category!r}" if tr.expression is None
                       else "empty expression")
            continue
        ask = pick("grounding", seed, src, path, tr.item, tr.key).format(expr=expr)
        rid = frame.row_id(tr.item, tr.task, tr.key, "ref")
        out.add("grounding", grounding_row(frame, rid, conversation("<image>" + ask, "<box>", tr.system),
                                           expr, bbox, tr.item))
        region = pick("region", seed, src, path, tr.item, tr.key)
        rid = frame.row_id(tr.item, tr.task, tr.key, "region")
        out.add("grounding", grounding_row(frame, rid, conversation("<image>" + region, expr, tr.system),
                                           expr, bbox, tr.item))
        out.kept.add(tr.item)


def _vqa_text_row(tr: TextRow, frame: ImageFrame, seed: int, out: SceneRows) -> Row | None:
    """The ``vqa`` row of ``tr`` (a chat as given, or question and answer), or None when rejected."""
    if tr.turns is not None:
        conv = _chat(tr)
        answers = tr.answers or [t["content"] for t in conv if t["role"] == "assistant"]
    else:
        if not (tr.question or "").strip() or not (tr.answer or "").strip():
            out.reject(tr.item, STAGE, "empty_text", "question or answer is empty")
            return None
        conv = conversation("<image>" + tr.question, tr.answer, tr.system)
        answers = tr.answers if tr.answers is not None else [tr.answer]
    return vqa_row(frame, frame.row_id(tr.item, tr.task, tr.key), conv, answers, tr.item)


def _caption_text_row(tr: TextRow, frame: ImageFrame, seed: int, out: SceneRows) -> Row | None:
    """The ``caption`` row of ``tr`` (its prompt, else one from the caption pool), or None when rejected."""
    if tr.turns is not None:
        conv = _chat(tr)
    else:
        if not (tr.answer or "").strip():
            out.reject(tr.item, STAGE, "empty_text", "empty caption")
            return None
        prompt = (tr.question if tr.question is not None
                  else pick("caption", seed, frame.source, frame.source_path, tr.item, tr.key))
        conv = conversation("<image>" + prompt, tr.answer, tr.system)
    return caption_row(frame, frame.row_id(tr.item, tr.task, tr.key), conv, tr.item)


def _point_vqa_text_row(tr: TextRow, frame: ImageFrame, seed: int, out: SceneRows) -> Row | None:
    """The ``point_vqa`` row of ``tr`` (its point resolved in the stored frame), or None when rejected."""
    if tr.point is None:
        out.reject(tr.item, STAGE, "no_point", "point_vqa row without a point")
        return None
    if not (tr.answer or "").strip():
        out.reject(tr.item, STAGE, "empty_text", "empty answer")
        return None
    try:
        r = frame.resolve_text_row(tr)
    except GeometryError as exc:
        out.reject(tr.item, "geometry", exc.reason, exc.detail)
        return None
    return point_vqa_row(
        frame, frame.row_id(tr.item, tr.task, tr.key), conversation(user_point(tr.question), tr.answer, tr.system),
        point=r.point, origin="annotated", kind=tr.kind, category=tr.category or "",
        source_category=tr.source_category if tr.source_category is not None else (tr.category or ""),
        instance=tr.instance or tr.item, bbox=r.bbox, generator=tr.generator or f"source-qa/{frame.source}",
        item=tr.item)


_TEXT_ROW: dict[str, Callable[[TextRow, ImageFrame, int, SceneRows], Row | None]] = {
    "vqa": _vqa_text_row, "caption": _caption_text_row, "point_vqa": _point_vqa_text_row,
}
"""Task -> the builder of its row from one TextRow (grounding rows come in pairs: :func:`_grounding_rows`)."""


def text_rows(scene: Scene, frame: ImageFrame, resolved: list[ResolvedInstance], seed: int,
              out: SceneRows | None = None) -> SceneRows:
    """Rows of ``scene.rows``, added to ``out`` (a new :class:`SceneRows` when None), which is returned.

    Grounding rows come first (their category-only expressions depend on every box of the
    scene), then the other tasks in the order of ``scene.rows``; a TextRow of any other task
    is rejected (``unknown_task``).

    Args:
        scene: the scene (``rows`` the TextRows).
        frame: the stored image and the annotation frame.
        resolved: the scene's resolved instances (grounding rows may name one).
        seed: build seed (prompt draws).
        out: where rows, kept items and rejects go.
    """
    out = out if out is not None else SceneRows(frame.source)
    _grounding_rows(scene, frame, resolved, seed, out)
    for tr in scene.rows:
        if tr.task == "grounding":
            continue
        make = _TEXT_ROW.get(tr.task)
        if make is None:
            out.reject(tr.item, STAGE, "unknown_task", f"task {tr.task!r}")
            continue
        row = make(tr, frame, seed, out)
        if row is not None:
            out.add(tr.task, row)
            out.kept.add(tr.item)
    return out
