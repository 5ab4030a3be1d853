"""Reader for Flickr30k Entities (``flickr30k=DIR``): captions and phrase grounding.

Format (BryanPlummer/flickr30k_entities, ``flickr30k_entities_utils.py``):
``Sentences/<image_id>.txt`` holds five captions, one a line, phrases marked
``[/EN#<entity_id>/<type>[/<type>...] the phrase]`` (entity 0 is "not visual");
``Annotations/<image_id>.xml`` is VOC-style: ``size/{width,height}`` and ``object``s whose
``name``s are entity ids, with a ``bndbox {xmin, ymin, xmax, ymax}`` (1-based inclusive
pixels, as the official reader which subtracts 1 from the minima) or ``nobndbox``/``scene``.
Split lists ``train.txt``/``val.txt``/``test.txt`` hold image ids.

Spec: ``DIR[?sentences=DIR&annotations=DIR&images=DIR]``; defaults: ``Sentences`` or
``sentences``; ``Annotations`` or ``annotations`` (optional); images ``flickr30k-images``,
``flickr30k_images``, ``images`` or ``DIR`` itself, files ``<image_id>.jpg``.

Rows per sentence (the item, keyed ``<image_id>:<line index from 0>``): a ``caption`` row
(the markup stripped: ``[/EN#1/people A girl] sits .`` -> ``A girl sits.``), and when the
image has annotations, a grounding pair per marked phrase whose entity has boxes: the
phrase (first letter lower-cased unless an acronym) -> the union of the entity's boxes in
the declared (``size``) frame. A phrase already grounded to the same entity earlier in the
image is not repeated. Split: the split lists' (``val``, ``test``, ``train``), else by image.
Reject reasons (stage ``read``): ``empty_text``, ``missing_image``,
``path_outside_source``, ``unreadable_annotation`` (an XML file that does not parse, or a
sentences file that is not UTF-8: its lines are rejected, the detail names the file).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

from owl_data.ingest.files import FileProblem, read_regular
from owl_data.records import Box, Record, Reject, Scene, TextRow
from owl_data.sources import SourceError, SourceOptions
from owl_data.sources._common import (
    STAGE, first_existing, image_ref, images_folder, option_path, parse_spec, spec_frame, read_text_file, reject_items,
)

__all__ = ["read", "parse_sentence", "strip_markup"]

OPTIONS = {"sentences": "folder of <id>.txt", "annotations": "folder of <id>.xml",
           "images": "folder of <id>.jpg"}
PHRASE_RE = re.compile(r"\[/EN#(\d+)((?:/[^\s\]/]+)+)\s+([^\]]*)\]")
_SPACE_PUNCT = re.compile(r"\s+([.,!?;:])")


def strip_markup(sentence: str) -> str:
    """The plain caption: markup removed, spaces before punctuation dropped."""
    text = PHRASE_RE.sub(lambda m: m.group(3), sentence)
    return _SPACE_PUNCT.sub(r"\1", " ".join(text.split()))


def parse_sentence(sentence: str) -> list[tuple[str, str, str]]:
    """``[(entity_id, types, phrase)]`` of the marked phrases, in order."""
    return [(m.group(1), m.group(2).strip("/"), " ".join(m.group(3).split())) for m in PHRASE_RE.finditer(sentence)]


def _phrase(text: str) -> str:
    first = text.split(" ", 1)[0]
    return text if len(first) > 1 and first.isupper() else text[:1].lower() + text[1:]


def _annotation(path: Path) -> tuple[tuple[int, int] | None, dict[str, list[Box]]]:
    root = ET.parse(path).getroot()
    size = None
    w, h = root.findtext("size/width"), root.findtext("size/height")
    if w and h and w.strip().isdigit() and h.strip().isdigit():
        size = (int(w), int(h))
    boxes: dict[str, list[Box]] = {}
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        if bb is None:
            continue
        try:
            x1, y1, x2, y2 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError):
            continue
        for n in obj.iter("name"):
            if n.text and n.text.strip():
                boxes.setdefault(n.text.strip(), []).append(Box(x1 - 1, y1 - 1, x2, y2))
    return size, boxes


def _splits(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for split in ("train", "val", "test"):  # later lists win: an id listed twice goes to test
        f = root / f"{split}.txt"
        if f.is_file():
            text = read_text_file(f)
            if isinstance(text, tuple):
                raise SourceError(f"flickr30k: split list {f} is unreadable: {text[1]}")
            for line in text.split():
                out[line.strip()] = split
    return out


def read(spec: str, options: SourceOptions) -> Iterator[Record]:
    """Read Flickr30k Entities sentences (and boxes when present); one Scene per image.

    Raises:
        SourceError: ``DIR`` or its sentences folder missing.
    """
    root, opts = parse_spec("flickr30k", spec, OPTIONS)
    if not root.is_dir():
        raise SourceError(f"flickr30k: {root} is not a folder")
    sentences = option_path(root, opts["sentences"]) if "sentences" in opts else first_existing(
        [root / "Sentences", root / "sentences"])
    if sentences is None or not sentences.is_dir():
        raise SourceError(f"flickr30k: no Sentences/ folder in {root} (or give ?sentences=DIR)")
    annotations = option_path(root, opts["annotations"]) if "annotations" in opts else first_existing(
        [root / "Annotations", root / "annotations"])
    images = images_folder(root, opts, [root / "flickr30k-images", root / "flickr30k_images", root / "images"])
    splits = _splits(root)
    name = options.name
    for f in sorted(sentences.glob("*.txt"), key=lambda p: (len(p.stem), p.stem)):
        iid = f.stem
        text = read_text_file(f)
        if isinstance(text, tuple):  # one bad file rejects its own sentences, not the run
            try:
                n = max(1, len(read_regular(f, what="annotation").splitlines()))
            except FileProblem:
                n = 1
            yield from reject_items(name, (f"{iid}:{i}" for i in range(n)), *text)
            continue
        lines = text.splitlines()
        items = [f"{iid}:{i}" for i in range(len(lines))]
        size, boxes = None, {}
        xml = annotations / f"{iid}.xml" if annotations is not None else None
        if xml is not None and xml.is_file():
            try:
                size, boxes = _annotation(xml)
            except ET.ParseError as exc:
                yield from reject_items(name, items, "unreadable_annotation", f"{xml.name}: {exc}")
                continue
        ref = image_ref(name, images, f"{iid}.jpg", split=splits.get(iid), declared=size, frame=spec_frame(opts))
        if isinstance(ref, tuple):
            yield from reject_items(name, items, *ref)
            continue
        rows: list[TextRow] = []
        for got in _sentence_rows(name, items, lines, boxes):
            if isinstance(got, Reject):
                yield got
            else:
                rows.append(got)
        if rows:
            yield Scene(ref=ref, rows=rows, sample_points=False)


def _sentence_rows(name: str, items: list[str], lines: list[str],
                   boxes: dict[str, list[Box]]) -> Iterator[Reject | TextRow]:
    """Per sentence of an image: its caption row (or an ``empty_text`` Reject), then a
    grounding row per marked phrase whose entity has boxes (the union of them) and that
    was not grounded to the same entity earlier in the image."""
    grounded: set[tuple[str, str]] = set()
    for it, line in zip(items, lines):
        caption = strip_markup(line)
        if not caption:
            yield Reject(name, it, STAGE, "empty_text", "blank line")
            continue
        yield TextRow(task="caption", item=it, answer=caption)
        for k, (eid, _types, text) in enumerate(parse_sentence(line)):
            bs = boxes.get(eid)
            expr = _phrase(text)
            if eid == "0" or not bs or not expr or (eid, expr.lower()) in grounded:
                continue
            grounded.add((eid, expr.lower()))
            union = Box(min(b.x1 for b in bs), min(b.y1 for b in bs), max(b.x2 for b in bs), max(b.y2 for b in bs))
            yield TextRow(task="grounding", item=it, key=f"{k}:{eid}", expression=expr, box=union)
