"""Helpers shared by the readers: the one spec parser, and what text-row sources (VQA,
captions, grounding, chats) share.

Spec syntax (every source): ``PATH`` or ``PATH?key=value&key=value`` (:func:`parse_spec`).
``PATH`` is the folder as the dataset ships it (a single annotation file is accepted where
noted; ``IMAGES:ANN.json`` for coco); the keys override where files are looked for. A
relative path in a value is taken relative to ``DIR`` (or to the folder of a file ``DIR``);
unknown keys are an error that lists the known ones. Every source also takes ``frame``
(:data:`FRAME_OPTION`): ``upright`` (default), ``raw`` or ``auto``, the frame of an
EXIF-oriented image its pixel annotations are in
(:func:`owl_data.ingest.frame.annotation_frame`).
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Iterator, Mapping, TypeVar, Union

from owl_data.ingest.files import FileProblem, open_regular, read_regular
from owl_data.records import ImageRef, Record, Reject, Scene, TextRow
from owl_data.sources import SourceError
from owl_data.sources._paths import UnsafePath, resolve_inside

__all__ = [
    "parse_spec",
    "split_options",
    "spec_frame",
    "with_frame",
    "FRAME_OPTION",
    "option_path",
    "load_json",
    "load_jsonl",
    "first_existing",
    "image_ref",
    "majority_answer",
    "source_id",
    "read_text_file",
    "images_folder",
    "subtype_folders",
    "file_or_folder",
    "id_order",
    "text_problem",
    "shown",
    "reject_items",
    "scene_or_rejects",
    "image_scenes",
    "grouped_scenes",
    "IMAGE_EXTS",
    "STAGE",
    "Located",
]

IMAGE_EXTS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp")
STAGE = "read"
"""The reject stage of everything a reader rejects itself."""

Located = Union[ImageRef, tuple[str, str]]
"""Where an image is: its :class:`~owl_data.records.ImageRef`, or ``(reason, detail)`` of why not."""
K = TypeVar("K", bound=Hashable)


FRAME_OPTION: dict[str, str] = {
    "frame": "which frame of an EXIF-oriented image the annotations are in: upright (as viewers show it; "
             "default), raw (the file's pixel grid) or auto (the one whose size the annotation states)"}
"""The option every source takes (besides its own), with its help text."""


def split_options(source: str, spec: str, keys: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Split ``PATH?k=v&k=v`` into the path text and its options (``frame`` always known).

    Args:
        source: the source kind, for messages (``vqav2``).
        spec: the spec string (what follows ``NAME=`` in ``--source NAME=SPEC``).
        keys: the source's own options -> what each means (listed, with ``frame``, in the
            error for an unknown key).

    Raises:
        SourceError: empty path, a malformed ``k=v``, an unknown or repeated key, a
            ``frame`` that is not ``upright``, ``raw`` or ``auto``; the message names
            ``--source`` and the spec.
    """
    from owl_data.ingest.frame import FRAMES

    keys = {**keys, **FRAME_OPTION}
    where = f"--source {source}={spec}"
    path, _, query = spec.partition("?")
    if not path:
        raise SourceError(f"{where}: no path before '?'")
    opts: dict[str, str] = {}
    for part in filter(None, query.split("&")):
        k, sep, v = part.partition("=")
        if not sep or not k or not v:
            raise SourceError(f"{where}: option {part!r} is not key=value")
        if k not in keys:
            known = "; ".join(f"{n}: {d}" for n, d in keys.items())
            raise SourceError(f"{where}: unknown option {k!r}; known options: {known}")
        if k in opts:
            raise SourceError(f"{where}: option {k!r} given twice")
        opts[k] = v
    if opts.get("frame", FRAMES[0]) not in FRAMES:
        raise SourceError(f"{where}: frame={opts['frame']!r} is not one of {', '.join(FRAMES)} "
                          f"(the frame of an EXIF-oriented image the annotations are in)")
    return path, opts


def parse_spec(source: str, spec: str, keys: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """Split ``PATH?k=v&k=v`` into the path (``~`` expanded) and its options
    (:func:`split_options`; raises as it does)."""
    path, opts = split_options(source, spec, keys)
    return Path(path).expanduser(), opts


def spec_frame(opts: dict[str, str]) -> str:
    """The ``frame`` option of parsed spec options (default ``upright``)."""
    return opts.get("frame", "upright")


def with_frame(records: Iterable[Record], frame: str) -> Iterator[Record]:
    """``records`` with every Scene's :attr:`~owl_data.records.ImageRef.frame` set to ``frame``
    (for readers that build their ImageRefs deep inside; Rejects pass unchanged)."""
    for r in records:
        if isinstance(r, Scene) and r.ref.frame != frame:
            r = dataclasses.replace(r, ref=dataclasses.replace(r.ref, frame=frame))
        yield r


def option_path(base: Path, value: str) -> Path:
    """``value`` as a path, relative to ``base`` unless absolute."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def load_json(path: Path, source: str) -> Any:
    """Parse a JSON file.

    Raises:
        SourceError: missing, unparsable or nested too deeply for the parser (the message
            names the file).
    """
    try:
        with open_regular(path, what="annotation") as f:
            return json.load(f)
    except FileProblem as exc:
        missing = exc.reason == "missing_annotation"
        raise SourceError(f"{source}: {path} does not exist" if missing else f"{source}: cannot read {exc.detail}") from None
    except (OSError, ValueError) as exc:  # ValueError: bad JSON, a 5000-digit integer
        raise SourceError(f"{source}: cannot read {path}: {exc}") from None
    except RecursionError:
        raise SourceError(f"{source}: cannot read {path}: JSON nested too deeply") from None


def load_jsonl(path: Path, source: str) -> list[tuple[int, Any, str]]:
    """Lines of a JSONL file as ``(line number from 1, value or None, problem)``; blank lines skipped.

    Each line is decoded on its own: a line that is not UTF-8 or not JSON is a problem of
    that line (the caller rejects it), never the end of the file.

    Raises:
        SourceError: the file is missing or unreadable.
    """
    try:
        data = read_regular(path, what="annotation")
    except FileProblem as exc:
        raise SourceError(f"{source}: cannot read {exc.detail}") from None
    out = []
    for n, raw in enumerate(data.split(b"\n"), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            out.append((n, None, f"{path.name} line {n} is not UTF-8 (byte {raw[exc.start:exc.start + 1]!r})"))
            continue
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line), ""))
        except ValueError as exc:  # bad JSON, a 5000-digit integer
            out.append((n, None, str(exc)))
        except RecursionError:
            out.append((n, None, "JSON nested too deeply"))
    return out


def source_id(v: Any) -> int | str | None:
    """An id read from a file as a dict key: an int (not a bool) or a non-empty str; else None.

    Ids key dicts and sets and are sorted, so a list, an object, a float or null must never
    reach that code: the caller rejects the entry (``malformed_*``) on None.
    """
    if isinstance(v, bool):
        return None
    if isinstance(v, int) or (isinstance(v, str) and v):
        return v
    return None


def read_text_file(path: Path) -> str | tuple[str, str]:
    """The UTF-8 text of an annotation file, or ``("unreadable_annotation", detail naming it)``
    (``not_a_regular_file`` for a FIFO, folder or device).

    One undecodable or unreadable file becomes rejects of its own items, never the end of
    the whole run.
    """
    try:
        return read_regular(path, what="annotation").decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start:exc.start + 1]
        return "unreadable_annotation", f"{path.name}: not UTF-8 (byte {bad!r} at offset {exc.start})"
    except FileProblem as exc:  # a FIFO or folder keeps its own reason
        return ("unreadable_annotation" if exc.reason == "missing_annotation" else exc.reason), exc.detail


def first_existing(candidates: Iterable[Path], *, is_dir: bool = True) -> Path | None:
    """The first candidate that exists as a folder (or file when ``is_dir`` is False)."""
    for c in candidates:
        if (c.is_dir() if is_dir else c.is_file()):
            return c
    return None


def image_ref(
    name: str,
    root: Path,
    rel: str,
    *,
    group: str | None = None,
    split: str | None = None,
    declared: tuple[int, int] | None = None,
    base: Path | None = None,
    frame: str = "upright",
) -> ImageRef | tuple[str, str]:
    """An ImageRef for ``rel`` (relative to ``base``, default ``root``), or ``(reason, detail)``;
    ``frame`` is the source's ``?frame=`` option (:func:`spec_frame`).

    Reasons: ``path_outside_source`` (absolute, or leads outside ``root``), ``missing_image``.
    ``group`` defaults to the image's path relative to ``root`` (each image its own group).
    """
    try:
        path, source_path = resolve_inside(root, base or root, rel)
    except UnsafePath as exc:
        return exc.reason, exc.detail
    if not path.is_file():
        return "missing_image", f"{source_path} not found"
    return ImageRef(source=name, path=path, source_path=source_path, group=group or source_path,
                    split=split, declared_size=declared, frame=frame)


def majority_answer(answers: list[str]) -> str:
    """The most frequent answer; a tie goes to the one given first (VQA v2's assistant turn)."""
    counts: dict[str, int] = {}
    for a in answers:
        counts[a] = counts.get(a, 0) + 1
    best = max(counts.values())
    return next(a for a in answers if counts[a] == best)


def images_folder(root: Path, opts: dict[str, str], candidates: Iterable[Path]) -> Path:
    """The ``images=`` option (relative to ``root``), else the first existing candidate, else ``root``."""
    if "images" in opts:
        return option_path(root, opts["images"])
    return first_existing(candidates) or root


def subtype_folders(root: Path, subtype: str | None) -> list[Path]:
    """COCO's image folders for a subtype, in the order looked at: ``<subtype>``,
    ``images/<subtype>`` (when there is a subtype), ``images``, ``root`` itself."""
    cands = [root / subtype, root / "images" / subtype] if subtype else []
    return cands + [root / "images", root]


def file_or_folder(kind: str, path: Path, pick: Callable[[Path], Iterable[Path]],
                   what: str) -> tuple[Path, list[Path]]:
    """``(root, files)`` of a ``FILE`` or ``DIR`` spec: the file and its folder, or the folder
    and the files ``pick(folder)`` lists (sorted).

    Raises:
        SourceError: ``path`` does not exist, or ``pick`` finds nothing (``"<kind>: no <what>
            in <path>"``).
    """
    if path.is_file():
        return path.parent, [path]
    if not path.is_dir():
        raise SourceError(f"{kind}: {path} does not exist")
    files = sorted(pick(path))
    if not files:
        raise SourceError(f"{kind}: no {what} in {path}")
    return path, files


def id_order(v: int | str) -> tuple[bool, int | str]:
    """Sort key of source ids: integers first (ascending), then strings (ascending)."""
    return isinstance(v, str), v


def _unencodable(s: str) -> bool:
    if s.isascii():
        return False
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def text_problem(value: Any, what: str = "value") -> str:
    """``""`` when every string in ``value`` (a parsed JSON value, object keys included) is
    valid Unicode text, else a detail naming the first that is not.

    JSON may escape a lone surrogate (``"\\udcff"``); such a string cannot be written to
    the corpus (UTF-8), so a reader rejects what holds one instead of failing the build
    when the row or reject is written. The walk is iterative (any nesting depth).
    """
    stack: list[tuple[str, Any]] = [(what, value)]
    while stack:
        where, v = stack.pop()
        if isinstance(v, str):
            if _unencodable(v):
                return f"{shown(where)}: {ascii(v)[:80]} is not valid Unicode text (a lone surrogate)"
        elif isinstance(v, dict):
            for k, child in reversed(v.items()):
                if isinstance(k, str) and _unencodable(k):
                    return f"{shown(where)}: key {ascii(k)[:80]} is not valid Unicode text (a lone surrogate)"
                stack.append((f"{where}[{k!r}]" if len(where) < 200 else where, child))
        elif isinstance(v, list):
            stack.extend((f"{where}[{i}]" if len(where) < 200 else where, child)
                         for i, child in reversed(list(enumerate(v))))
    return ""


def shown(s: str) -> str:
    """``s`` with anything UTF-8 cannot hold (lone surrogates: a file name that is not UTF-8 on
    disk, an escape in JSON) written as a backslash escape, so it can be stored as text."""
    return s if not _unencodable(s) else s.encode("utf-8", "backslashreplace").decode("utf-8")


def reject_items(name: str, items: Iterable[str], reason: str, detail: str) -> Iterator[Reject]:
    """One ``read``-stage Reject per item key, all with the same reason and detail."""
    for item in items:
        yield Reject(name, item, STAGE, reason, detail)


def scene_or_rejects(name: str, ref: Located, rows: list[TextRow]) -> Iterator[Record]:
    """The Scene of ``rows`` on ``ref`` (no point sampling), or one Reject per row when
    ``ref`` is ``(reason, detail)``."""
    if isinstance(ref, tuple):
        yield from reject_items(name, (tr.item for tr in rows), *ref)
    else:
        yield Scene(ref=ref, rows=rows, sample_points=False)


def image_scenes(name: str, per_image: Mapping[K, list[TextRow]], locate: Callable[[K], Located],
                 order: Callable[[K], Any] | None = id_order) -> Iterator[Record]:
    """One Scene per image of ``per_image`` (image key -> its rows), or the rows' Rejects.

    Args:
        name: the source name.
        per_image: rows grouped by image key.
        locate: image key -> where the image is (called once per image, in order, lazily).
        order: sort key of the image keys; None keeps the order they were first seen in.
    """
    keys = list(per_image) if order is None else sorted(per_image, key=order)
    for key in keys:
        yield from scene_or_rejects(name, locate(key), per_image[key])


def grouped_scenes(name: str, parsed: Iterable[Reject | tuple[K, TextRow]], locate: Callable[[K], Located],
                   order: Callable[[K], Any] | None = id_order) -> Iterator[Record]:
    """Yield the Rejects of ``parsed`` as they come, then :func:`image_scenes` of its rows.

    ``parsed`` is what a reader found in a file, in file order: a Reject, or
    ``(image key, row)``. Rows are grouped by image key in the order they come.
    """
    per_image: dict[K, list[TextRow]] = defaultdict(list)
    for got in parsed:
        if isinstance(got, Reject):
            yield got
        else:
            per_image[got[0]].append(got[1])
    yield from image_scenes(name, per_image, locate, order)
