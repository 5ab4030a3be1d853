"""Task rows that sources give directly (:class:`~owl_data.records.TextRow`) -> table rows.

Called by :func:`owl_data.build.driver.process_scene` once the image is decoded. Geometry goes
through :mod:`owl_data.ingest.geometry` exactly as instances do: boxes and points are in the
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
from typing import Any

from owl_data.generators.prompts import pick, relation_expressions
from owl_data.ingest.geometry import GeometryError, ResolvedInstance, resolve_instance
from owl_data.records import Box, Instance, Reject, Scene, TextRow

__all__ = ["text_rows", "row_id", "user_point"]

STAGE = "rows"


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


def _conversation(tr: TextRow, user: str, assistant: str) -> list[dict[str, str]]:
    turns = [_turn("system", tr.system)] if tr.system else []
    return turns + [_turn("user", user), _turn("assistant", assistant)]


def _chat(tr: TextRow) -> list[dict[str, str]]:
    turns = [_turn(r, c) for r, c in (tr.turns or [])]
    if tr.system and not any(t["role"] == "system" for t in turns):
        turns.insert(0, _turn("system", tr.system))
    if not any("<image>" in t["content"] for t in turns if t["role"] == "user"):
        for t in turns:
            if t["role"] == "user":
                t["content"] = "<image>" + t["content"]
                break
    return turns


class _Geo:
    """Resolves a TextRow's box/point in the stored frame (closure over the image frame)."""

    def __init__(self, declared: tuple[int, int], raw: tuple[int, int], orientation: int, rotate: bool) -> None:
        self.declared, self.raw, self.orientation, self.rotate = declared, raw, orientation, rotate

    def _pixels(self, tr: TextRow, v: float, axis: int) -> float:
        return v * self.declared[axis] if tr.coords == "normalised" else v

    def resolve(self, tr: TextRow) -> ResolvedInstance:
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
        return resolve_instance(inst, declared=self.declared, raw=self.raw,
                                orientation=self.orientation, rotate=self.rotate)


def text_rows(
    scene: Scene,
    *,
    image_id: str,
    split: str,
    declared: tuple[int, int],
    raw: tuple[int, int],
    orientation: int,
    rotate: bool,
    resolved: list[ResolvedInstance],
    seed: int,
) -> tuple[dict[str, list[dict[str, Any]]], set[str], dict[str, Reject]]:
    """Rows of ``scene.rows``: (table -> rows, kept item keys, item -> Reject).

    Each row carries its item key under ``_item`` (the builder checks placeholders per item
    and removes the key before writing).

    Args:
        scene: the scene (``ref`` names source and path; ``rows`` the TextRows).
        image_id, split: of the stored image.
        declared, raw, orientation, rotate: the annotation frame (see
            :func:`owl_data.ingest.geometry.annotation_frame`).
        resolved: the scene's resolved instances (grounding rows may name one).
        seed: build seed (prompt draws).
    """
    src, path = scene.ref.source, scene.ref.source_path
    geo = _Geo(declared, raw, orientation, rotate)
    by_instance = {r.instance: r for r in resolved}
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    kept: set[str] = set()
    rejected: dict[str, Reject] = {}

    def base(tr: TextRow, conv: list[dict[str, str]], *extra: object) -> dict[str, Any]:
        return {"id": row_id(src, path, tr.item, tr.task, tr.key, *extra), "image_id": image_id,
                "source": src, "split": split, "conversations": conv, "_item": tr.item}

    def reject(tr: TextRow, reason: str, detail: str = "", stage: str = STAGE) -> None:
        rejected.setdefault(tr.item, Reject(src, tr.item, stage, reason, detail))

    # grounding: resolve boxes first, then name category-only boxes by position
    ground: list[tuple[TextRow, tuple[float, float, float, float]]] = []
    for tr in scene.rows:
        if tr.task != "grounding":
            continue
        try:
            if tr.box is None and tr.instance is not None:
                if tr.instance not in by_instance:
                    raise GeometryError("unknown_target", f"instance {tr.instance} not resolved")
                bbox = by_instance[tr.instance].bbox
            else:
                bbox = geo.resolve(tr).bbox
        except GeometryError as exc:
            reject(tr, exc.reason, exc.detail, "geometry")
            continue
        if bbox[2] <= bbox[0] or bbox[3] <= bbox[1]:
            reject(tr, "zero_area", "box has no area in the stored image", "geometry")
            continue
        ground.append((tr, bbox))
    names: dict[int, str | None] = {}
    by_cat: dict[str, list[int]] = defaultdict(list)
    for n, (tr, _) in enumerate(ground):
        if tr.expression is None:
            by_cat[tr.category or "object"].append(n)
    for cat, idx in by_cat.items():  # only boxes placed in the image count (a rejected one names nothing)
        exprs = relation_expressions(cat, [(ground[n][1][0] + ground[n][1][2]) / 2 for n in idx])
        names.update(zip(idx, exprs))
    for n, (tr, bbox) in enumerate(ground):
        expr = tr.expression if tr.expression is not None else names.get(n)
        expr = " ".join((expr or "").split())
        if not expr:
            reject(tr, "ambiguous_expression" if tr.expression is None else "empty_text",
                   f"no unambiguous expression for {tr.category!r}" if tr.expression is None else "empty expression")
            continue
        ask = pick("grounding", seed, src, path, tr.item, tr.key).format(expr=expr)
        rows["grounding"].append({**base(tr, _conversation(tr, "<image>" + ask, "<box>"), "ref"),
                                  "expression": expr, "bbox": list(bbox)})
        region = pick("region", seed, src, path, tr.item, tr.key)
        rows["grounding"].append({**base(tr, _conversation(tr, "<image>" + region, expr), "region"),
                                  "expression": expr, "bbox": list(bbox)})
        kept.add(tr.item)

    for tr in scene.rows:
        if tr.task == "grounding":
            continue
        if tr.task == "vqa":
            if tr.turns is not None:
                conv = _chat(tr)
                answers = tr.answers or [t["content"] for t in conv if t["role"] == "assistant"]
            else:
                if not (tr.question or "").strip() or not (tr.answer or "").strip():
                    reject(tr, "empty_text", "question or answer is empty")
                    continue
                conv = _conversation(tr, "<image>" + tr.question, tr.answer)
                answers = tr.answers if tr.answers is not None else [tr.answer]
            rows["vqa"].append({**base(tr, conv), "answers": list(answers)})
        elif tr.task == "caption":
            if tr.turns is not None:
                conv = _chat(tr)
            else:
                if not (tr.answer or "").strip():
                    reject(tr, "empty_text", "empty caption")
                    continue
                prompt = tr.question if tr.question is not None else pick("caption", seed, src, path, tr.item, tr.key)
                conv = _conversation(tr, "<image>" + prompt, tr.answer)
            rows["caption"].append(base(tr, conv))
        elif tr.task == "point_vqa":
            if tr.point is None:
                reject(tr, "no_point", "point_vqa row without a point")
                continue
            if not (tr.answer or "").strip():
                reject(tr, "empty_text", "empty answer")
                continue
            try:
                r = geo.resolve(tr)
            except GeometryError as exc:
                reject(tr, exc.reason, exc.detail, "geometry")
                continue
            x, y = r.point
            rows["point_vqa"].append({
                **base(tr, _conversation(tr, user_point(tr.question), tr.answer)),
                "point": {"x": x, "y": y}, "point_origin": "annotated", "kind": tr.kind,
                "target": {"category": tr.category or "", "instance": tr.instance or tr.item, "bbox": list(r.bbox)},
                "generator": tr.generator or f"source-qa/{src}",
            })
        else:
            reject(tr, "unknown_task", f"task {tr.task!r}")
            continue
        kept.add(tr.item)
    return dict(rows), kept, rejected
