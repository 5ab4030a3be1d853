"""Placeholders in task rows: where ``<image>``, ``<point>`` and ``<box>`` may stand.

The trainer splices the image, the point and the box in place of these strings, so text
taken from a source (a COCO category named ``"<point><image>"``, a DriveLM question holding
``<point>``) must never add one. The builder runs :func:`check_placeholders` on every
scene's rows; an item with a bad row is rejected whole (``placeholder_in_text``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["PLACEHOLDERS", "placeholder_problem", "check_placeholders"]

PLACEHOLDERS = ("<image>", "<point>", "<box>")


def placeholder_problem(table: str, row: dict[str, Any]) -> str:
    """Why ``row``'s placeholders are wrong, or ``""`` (README "Placeholders").

    The first user turn holds exactly one ``<image>``; ``<point>`` appears there only in
    ``point_vqa`` rows, exactly once; ``<box>`` only in ``grounding`` rows: once in the
    first user turn of a box -> expression row, or as the whole assistant turn of an
    expression -> box row. No other turn holds any placeholder. Source text that carries
    one (a category named ``"<point>"``, a question with ``<image>``) would make the
    trainer splice an image, a point or a box where none belongs.
    """
    conv = row.get("conversations") or []
    if not all(isinstance(t, dict) and isinstance(t.get("role"), str) and isinstance(t.get("content"), str)
               for t in conv):
        return "a turn is not {role, content} text"
    first = next((i for i, t in enumerate(conv) if t["role"] == "user"), None)
    if first is None:
        return "no user turn"
    box_answer = table == "grounding" and any(t["role"] == "assistant" and t["content"] == "<box>" for t in conv)
    for i, t in enumerate(conv):
        c = t["content"]
        n = {p: c.count(p) for p in PLACEHOLDERS}
        if i == first:
            want = {"<image>": 1, "<point>": 1 if table == "point_vqa" else 0,
                    "<box>": 1 if table == "grounding" and not box_answer else 0}
        elif box_answer and t["role"] == "assistant" and c == "<box>":
            continue
        else:
            want = {p: 0 for p in PLACEHOLDERS}
        bad = [f"{n[p]} {p}" for p in PLACEHOLDERS if n[p] != want[p]]
        if bad:
            return f"{table} {t['role']} turn {i} holds {', '.join(bad)}: {c[:80]!r}"
    return ""


def check_placeholders(rows: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """Drop rows with misplaced placeholders (and every row of their items); item -> why.

    Rows carry their item key under ``_item`` (removed here); a bad row of no item (a stuff
    point, context) is dropped alone.
    """
    bad: dict[str, str] = {}
    tagged: dict[str, list[tuple[str | None, dict[str, Any], bool]]] = {}
    for table, trs in rows.items():
        tagged[table] = []
        for r in trs:
            it = r.pop("_item", None)
            why = placeholder_problem(table, r)
            if why and it is not None:
                bad.setdefault(it, why)
            tagged[table].append((it, r, bool(why)))
    for table, trs in tagged.items():
        rows[table] = [r for it, r, wrong in trs if not wrong and it not in bad]
    return bad
