"""The text layer of the chat exports: a corpus row's turns with ``<point>`` / ``<box>`` rendered
as text in a coordinate convention (:mod:`owl_data.conventions.coords`), and back.

:func:`render_row` gives the turns and the ``owl`` object (everything the text does not
carry: task, source, split, image_id and the task's other fields exactly; the row's own
point or box rendered in the convention); :func:`restore_row` is its inverse, strict about
geometry. A row whose rendered text would not parse back unchanged is not rendered (None).
Geometry is parsed only in the tasks that have it (point_vqa, grounding).
"""

from __future__ import annotations

from typing import Any

from owl_data.conventions.coords import BOX_END, BOX_START, REF_END, REF_START, CoordError, Convention, \
    render_box, render_point, render_text, restore_text
from owl_data.corpus import schema as schemas

__all__ = ["render_row", "restore_row"]

_COMMON = ("id", "image_id", "source", "split", "conversations")
_QWEN_TOKENS = (BOX_START, BOX_END, REF_START, REF_END)
# the field each task's placeholder stands for: <point> -> point, <box> -> bbox
_GEOMETRY = {"point_vqa": "point", "grounding": "bbox"}


def _geometry(task: str, row: dict[str, Any]) -> tuple[tuple[float, float] | None, list[float] | None]:
    if task == "point_vqa":
        return (row["point"]["x"], row["point"]["y"]), row["target"]["bbox"]
    if task == "grounding":
        return None, row["bbox"]
    return None, None


def render_row(task: str, row: dict[str, Any], conv: Convention, size: tuple[int, int]
               ) -> tuple[list[dict[str, str]], dict[str, Any]] | None:
    """A corpus row -> (turns with geometry as text, ``owl`` metadata); None if ambiguous."""
    point, box = _geometry(task, row)
    phrase = row.get("expression") if task == "grounding" else None
    turns = []
    for t in row["conversations"]:
        content = render_text(t["content"], conv, size, point=point, box=box,
                              phrase=phrase if t["role"] == "assistant" else None)
        if task in _GEOMETRY:
            if conv.name == "qwen" and any(tok in t["content"] for tok in _QWEN_TOKENS):
                return None  # the row's own words hold Qwen's box tokens
            try:
                same = restore_text(content, conv, size)[0] == t["content"]
            except CoordError:  # the row's own words hold coordinate-like text off the grid
                same = False
            if not same:
                return None
        turns.append({"role": t["role"], "content": content})
    owl: dict[str, Any] = {"task": task, "source": row["source"], "split": row["split"], "image_id": row["image_id"]}
    geom = _GEOMETRY.get(task)
    for name in schemas.TASK_TABLES[task].names:
        if name not in _COMMON and name != geom:
            owl[name] = row[name]
    if task == "point_vqa":
        owl["point"] = render_point(point, conv, size)
    elif task == "grounding":
        owl["bbox"] = render_box(box, conv, size)
    return turns, owl


def restore_row(rid: str, image_id: str, turns: list[dict[str, str]], owl: dict[str, Any], conv: Convention,
                size: tuple[int, int]) -> tuple[str, dict[str, Any]]:
    """Inverse of :func:`render_row`: (task, corpus row).

    The text of a geometry task must hold exactly its one geometry: one point (point_vqa) or
    one box (grounding), every coordinate on the convention's grid and range, and no stray
    convention token (``<|box_start|>``...) left over.

    Raises:
        CoordError: geometry that does not parse strictly in the convention.
        KeyError: ``owl`` metadata without a needed field.
    """
    task = owl["task"]
    if task not in schemas.TASK_TABLES:
        raise CoordError(f"unknown task {task!r}")
    points: list[tuple[float, float]] = []
    boxes: list[list[float]] = []
    conversations = []
    for t in turns:
        content = t["content"]
        if task in _GEOMETRY:
            content, p, b = restore_text(content, conv, size)
            points += p
            boxes += [bb for bb, _ in b]
        conversations.append({"role": t["role"], "content": content})
    row: dict[str, Any] = {"id": rid, "image_id": image_id, "source": owl["source"], "split": owl["split"],
                           "conversations": conversations}
    geom = _GEOMETRY.get(task)
    for name in schemas.TASK_TABLES[task].names:
        if name not in _COMMON and name != geom:
            row[name] = owl[name]
    if task in _GEOMETRY:
        want = (1, 0) if task == "point_vqa" else (0, 1)
        if (len(points), len(boxes)) != want:
            raise CoordError(f"{task} text holds {len(points)} point(s) and {len(boxes)} box(es) of the "
                             f"{conv.name} convention; expected {want[0]} and {want[1]}")
        stray = [tok for tok in _QWEN_TOKENS if conv.name == "qwen" and any(tok in t["content"] for t in conversations)]
        if stray:
            raise CoordError(f"{task} text keeps {', '.join(stray)} that did not parse as a box")
    if task == "point_vqa":
        x, y = points[0]
        row["point"] = {"x": x, "y": y}
    elif task == "grounding":
        row["bbox"] = boxes[0]
    return task, row
