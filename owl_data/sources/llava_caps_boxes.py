"""Reader for LLaVA's captions-plus-boxes JSONL (``llava_caps_boxes=FILE_OR_DIR``).

Format (haotian-liu/LLaVA, ``playground/data/prompts/*/caps_boxes*``, the input GPT-4 was
given to write LLaVA-Instruct): one JSON object a line, ``{id, image, captions: [str],
instances: [{category, bbox: [x1, y1, x2, y2]}]}``, boxes normalised to [0, 1] of the
image (x right, y down), as COCO boxes divided by the image size.

Spec: ``FILE`` or ``DIR`` (every ``*caps_boxes*.jsonl`` at its top, sorted), with
``?images=DIR`` (folder ``image`` is relative to; default the file's folder) and
``coords=normalised|pixels`` (default ``normalised``).

Rows: each caption (item ``<file>:<id>:cap:<k>``) a ``caption`` row; each instance (item
``<file>:<id>:box:<k>``) a grounding pair whose expression is its category, with a
relation word when the image holds several valid boxes of that category ("the left car";
ambiguous positions get none and the item is rejected ``ambiguous_expression``; a rejected
box, reversed or of zero area, does not count). No split of its own: by image. A line whose
``id`` was seen before in its file is rejected whole (``duplicate_id``, item
``<file>:<id>#line<n>``); an ``id`` that is not an integer or a string is a
``malformed_line``. Reject reasons: stage ``read`` ``malformed_line``, ``duplicate_id``,
``malformed_instance``, ``empty_text``, ``missing_image``, ``path_outside_source``; stage ``geometry``
``zero_area``, ``outside_image``, ``bad_box``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from owl_data.ingest.numbers import is_finite_number
from owl_data.records import Box, Record, Reject, TextRow
from owl_data.sources import SourceError, SourceOptions
from owl_data.sources._common import (
    STAGE, file_or_folder, image_ref, load_jsonl, option_path, parse_spec, spec_frame, scene_or_rejects, source_id,
)

__all__ = ["read"]

OPTIONS = {"images": "folder image paths are relative to", "coords": "normalised (default) or pixels"}


def _line_rows(name: str, key: str, obj: dict, coords: str) -> tuple[list[TextRow], list[Reject]]:
    """The caption and grounding rows of one line, and the Rejects of its unusable entries."""
    caps = obj.get("captions") if isinstance(obj.get("captions"), list) else []
    insts = obj.get("instances") if isinstance(obj.get("instances"), list) else []
    rows: list[TextRow] = []
    rejects: list[Reject] = []
    for k, c in enumerate(caps):
        item = f"{key}:cap:{k}"
        if isinstance(c, str) and c.strip():
            rows.append(TextRow(task="caption", item=item, answer=" ".join(c.split())))
        else:
            rejects.append(Reject(name, item, STAGE, "empty_text", "caption is not text"))
    for k, inst in enumerate(insts):
        item = f"{key}:box:{k}"
        bb = inst.get("bbox") if isinstance(inst, dict) else None
        cat = inst.get("category") if isinstance(inst, dict) else None
        if not (isinstance(cat, str) and cat.strip() and isinstance(bb, list) and len(bb) == 4
                and all(is_finite_number(v) for v in bb)):
            rejects.append(Reject(name, item, STAGE, "malformed_instance", "needs category and [x1, y1, x2, y2]"))
            continue
        rows.append(TextRow(task="grounding", item=item, category=" ".join(cat.split()),
                            box=Box(*(float(v) for v in bb)), coords=coords))
    if not rows and not caps and not insts:
        rejects.append(Reject(name, key, STAGE, "malformed_line", "no captions and no instances"))
    return rows, rejects


def _file_records(name: str, f: Path, images: Path, coords: str, frame: str) -> Iterator[Record]:
    """The Scenes (one per line with a usable row) and Rejects of one JSONL file, in line order."""
    seen: dict[str, int] = {}
    for n, obj, problem in load_jsonl(f, "llava_caps_boxes"):
        if problem or not isinstance(obj, dict):
            yield Reject(name, f"{f.name}:line{n}", STAGE, "malformed_line", problem or "not an object")
            continue
        if "id" in obj and source_id(obj["id"]) is None:
            yield Reject(name, f"{f.name}:line{n}", STAGE, "malformed_line",
                         f"id {str(obj['id'])[:40]} is not an integer or a string")
            continue
        key = f"{f.name}:{obj.get('id', f'line{n}')}"
        if key in seen:
            yield Reject(name, f"{key}#line{n}", STAGE, "duplicate_id",
                         f"id {obj.get('id')!r} already read on line {seen[key]}")
            continue
        seen[key] = n
        rows, rejects = _line_rows(name, key, obj, coords)
        yield from rejects
        if rows:
            image = obj.get("image")
            ref = (image_ref(name, images, image, frame=frame) if isinstance(image, str)
                   else ("malformed_line", "no image path"))
            yield from scene_or_rejects(name, ref, rows)


def read(spec: str, options: SourceOptions) -> Iterator[Record]:
    """Read captions-and-boxes JSONL files; one Scene per line.

    Raises:
        SourceError: missing path, no ``*caps_boxes*.jsonl``, an unreadable file, a bad option.
    """
    path, opts = parse_spec("llava_caps_boxes", spec, OPTIONS)
    coords = opts.get("coords", "normalised")
    if coords not in ("normalised", "pixels"):
        raise SourceError(f"llava_caps_boxes: coords={coords!r}: use normalised or pixels")
    root, files = file_or_folder("llava_caps_boxes", path, lambda d: (p for p in d.glob("*caps_boxes*.jsonl")
                                                                      if p.is_file()), "*caps_boxes*.jsonl")
    images = option_path(root, opts["images"]) if "images" in opts else root
    for f in files:
        yield from _file_records(options.name, f, images, coords, spec_frame(opts))
