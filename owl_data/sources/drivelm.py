"""Reader for DriveLM annotation files (``drivelm=DIR``).

Format (OpenDriveLab/DriveLM, ``challenge/`` data, e.g. ``train_sample.json``; images from
nuScenes): a JSON object ``scene_token -> {scene_description, key_frames: {frame_token ->
{key_object_infos, QA, image_paths}}}``.

- ``key_object_infos`` maps a tag ``<cN,CAM_X,x,y>`` to ``{Category, Status,
  Visual_description, 2d_bbox: [x1, y1, x2, y2]}``; ``x, y`` (the tag) and the box are
  pixels of camera ``CAM_X``'s 1600x900 image, x to the right, y down.
- ``QA`` maps a family (``perception``, ``prediction``, ``planning``, ``behavior``) to a
  list of ``{Q, A, ...}``; questions and answers name objects by their tag.
- ``image_paths`` maps a camera to its image, relative to the annotation file's folder
  (``../nuscenes/samples/CAM_X/...``).

Every ``*.json`` under ``DIR`` (recursively, sorted by path) is read as such a file; one
that is not (unparsable, another layout) is rejected as an item of its own
(``not_a_drivelm_file``). A frame token met again in a later file is the same nuScenes
sample and is not read twice; met again under another scene of the same file, it is a
conflict and its items are rejected (``duplicate_frame``).

Records: one :class:`~owl_data.records.Scene` per (frame, camera) with at least one usable
key object on that camera (``group`` = the scene token, ``declared_size`` = (1600, 900),
``sample_points=False`` since points are annotated, ``grounding_from_attributes=True``).

Items: each key object, keyed ``<frame_token>:<tag>``, and each QA entry, keyed
``<frame_token>:<family>:<index>``. A QA that mentions at least one tag becomes a
:class:`~owl_data.records.SourceQA` on the scene of its *target*, the first tag mentioned
(question first, then answer). In the question the target's first mention becomes
``<point>``; every other mention of any tag (in the question and the answer, the target's
included) becomes a short phrase for that object taken from its visual description
(``"Brown SUV."`` -> ``"the brown SUV"``). The answer never carries ``<point>``: the
placeholder belongs to user text (DESIGN.md), not to what the model learns to emit.

Reject reasons (stage ``read``): ``bad_tag``, ``malformed_key_object``, ``non_finite``
(a 2d_bbox number that is infinite or too large), ``missing_image``,
``path_outside_source``, ``malformed_qa``, ``no_point_tag``, ``unknown_tag``,
``malformed_frame``, ``not_a_drivelm_file``, ``duplicate_frame``; a QA whose target key
object was rejected gets that object's reason. The builder adds ``point_outside_target``
(the tag's point is not inside the object's 2d_bbox) and ``empty_category``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from owl_data.ingest.files import FileProblem, open_regular
from owl_data.ingest.numbers import NumberError, finite_float
from owl_data.records import Box, ImageRef, Instance, Record, Reject, Scene, SourceQA
from owl_data.sources import SourceError, SourceOptions
from owl_data.sources._paths import UnsafePath, resolve_inside

__all__ = ["read", "parse_tag", "object_phrase", "CAMERA_SIZE", "TAG_RE"]

STAGE = "read"
CAMERA_SIZE = (1600, 900)
"""(W, H) in pixels of every nuScenes camera image, the frame DriveLM tags refer to."""

_NUM = r"-?\d+(?:\.\d+)?"
TAG_RE = re.compile(rf"<c(\d+),(CAM_[A-Z_]+),({_NUM}),({_NUM})>")
"""The full DriveLM tag grammar ``<cN,CAM_X,x,y>`` (x, y in pixels)."""
_MENTION_RE = re.compile(r"<c\d+,[^<>]*>")
"""Anything that looks like a tag in QA text (well-formed or not)."""
_ARTICLES = ("a ", "an ", "the ")


def parse_tag(tag: str) -> tuple[str, float, float] | None:
    """``"<c1,CAM_BACK,1088.3,497.5>"`` -> ``("CAM_BACK", 1088.3, 497.5)``; None if malformed."""
    m = TAG_RE.fullmatch(tag)
    if m is None:
        return None
    return m.group(2), float(m.group(3)), float(m.group(4))


def object_phrase(description: str, category: str = "") -> str:
    """A short noun phrase for an object, from its DriveLM ``Visual_description``.

    The trailing period is dropped, a leading article replaced by "the", and the first
    letter lower-cased unless the first word is an acronym (``"SUV parked."`` keeps
    ``SUV``). Falls back to the category, then to "the object".
    """
    text = (description or "").strip().rstrip(".").strip()
    if not text:
        text = (category or "").strip()
    if not text:
        return "the object"
    low = text.lower()
    for art in _ARTICLES:
        if low.startswith(art):
            text = text[len(art):].lstrip()
            break
    first = text.split(" ", 1)[0]
    if not (len(first) > 1 and first.isupper()):
        text = text[:1].lower() + text[1:]
    return f"the {text}"


@dataclass
class _KeyObject:
    tag: str
    item: str
    info: Any
    camera: str | None = None
    instance: Instance | None = None
    reason: str = ""  # reject reason, "" when usable
    detail: str = ""
    phrase: str = "the object"


@dataclass
class _Camera:
    ref: ImageRef | None = None
    reason: str = ""
    detail: str = ""
    instances: list[Instance] = field(default_factory=list)
    qa: list[SourceQA] = field(default_factory=list)


def _load(path: Path) -> tuple[dict | None, str]:
    """(data, "") for a DriveLM file, else (None, why it is not one)."""
    try:
        with open_regular(path, what="annotation") as f:
            data = json.load(f)
    except FileProblem as exc:
        return None, f"cannot be read: {exc.detail}"
    except (OSError, ValueError) as exc:  # ValueError: bad JSON, a 5000-digit integer
        return None, f"cannot be parsed: {type(exc).__name__}: {exc}"
    except RecursionError:
        return None, "cannot be parsed: JSON nested too deeply"
    if not isinstance(data, dict) or not data or not all(
        isinstance(v, dict) and isinstance(v.get("key_frames"), dict) for v in data.values()
    ):
        return None, "not in the DriveLM layout (scene_token -> {scene_description, key_frames})"
    return data, ""


def _key_object(frame: str, tag: str, info: Any) -> _KeyObject:
    ko = _KeyObject(tag=tag, item=f"{frame}:{tag}", info=info)
    if isinstance(info, dict):
        ko.phrase = object_phrase(
            info.get("Visual_description") if isinstance(info.get("Visual_description"), str) else "",
            info.get("Category") if isinstance(info.get("Category"), str) else "",
        )
    parsed = parse_tag(tag)
    if parsed is None:
        ko.reason, ko.detail = "bad_tag", f"tag {tag!r} is not <cN,CAM_X,x,y>"
        return ko
    ko.camera, x, y = parsed
    bbox = info.get("2d_bbox") if isinstance(info, dict) else None
    if not isinstance(info, dict) or not isinstance(info.get("Category"), str):
        ko.reason, ko.detail = "malformed_key_object", "not an object with a string Category"
        return ko
    if not (isinstance(bbox, list) and len(bbox) == 4):
        ko.reason, ko.detail = "malformed_key_object", f"2d_bbox {str(bbox)[:80]} is not [x1, y1, x2, y2]"
        return ko
    try:
        box = Box(*(finite_float(v, "2d_bbox value") for v in bbox))
    except NumberError as exc:
        ko.reason = "non_finite" if exc.reason == "non_finite" else "malformed_key_object"
        ko.detail = exc.detail
        return ko
    status, desc = info.get("Status"), info.get("Visual_description")
    ko.instance = Instance(
        instance=tag,
        category=info["Category"],
        kind="thing",
        geometry=box,
        item=ko.item,
        point=(x, y),
        attributes={
            "status": status if isinstance(status, str) else "",
            "visual_description": desc if isinstance(desc, str) else "",
        },
    )
    return ko


def _camera(root: Path, folder: Path, scene: str, camera: str, paths: Any, name: str) -> _Camera:
    rel = paths.get(camera) if isinstance(paths, dict) else None
    if not isinstance(rel, str) or not rel:
        return _Camera(reason="missing_image", detail=f"no image path for {camera}")
    try:
        path, source_path = resolve_inside(root, folder, rel)
    except UnsafePath as exc:
        return _Camera(reason=exc.reason, detail=exc.detail)
    if not path.is_file():
        return _Camera(reason="missing_image", detail=f"{source_path} not found")
    ref = ImageRef(
        source=name, path=path, source_path=source_path, group=scene, split=None,
        declared_size=CAMERA_SIZE,
    )
    return _Camera(ref=ref)


def _rewrite(text: str, objects: dict[str, _KeyObject], target: str | None) -> str:
    """Replace the first mention of ``target`` by ``<point>``, every other tag by its phrase."""
    done = target is None

    def sub(m: re.Match) -> str:
        nonlocal done
        tag = m.group(0)
        if not done and tag == target:
            done = True
            return "<point>"
        phrase = objects[tag].phrase
        start = m.start()
        before = text[:start].rstrip()
        if start == 0 or before.endswith((".", "?", "!")):
            phrase = phrase[:1].upper() + phrase[1:]
        return phrase

    return _MENTION_RE.sub(sub, text)


def _qa(
    frame: str, family: str, index: int, entry: Any, objects: dict[str, _KeyObject],
    cameras: dict[str, _Camera],
) -> tuple[str, SourceQA | tuple[str, str]]:
    """Return (camera, SourceQA) for a usable QA, else ("", (reason, detail))."""
    item = f"{frame}:{family}:{index}"
    if not isinstance(entry, dict) or not isinstance(entry.get("Q"), str) or not isinstance(entry.get("A"), str):
        return "", ("malformed_qa", "Q and A must be strings")
    q, a = entry["Q"], entry["A"]
    mentions = _MENTION_RE.findall(q) + _MENTION_RE.findall(a)
    if not mentions:
        return "", ("no_point_tag", "mentions no object tag")
    for tag in mentions:
        if tag not in objects:
            return "", ("unknown_tag", f"{tag!r} is not a key object of frame {frame}")
    target = objects[mentions[0]]
    if target.reason:
        return "", (target.reason, f"target {target.tag}: {target.detail}")
    cam = cameras[target.camera]
    if cam.ref is None:
        return "", (cam.reason, f"target {target.tag}: {cam.detail}")
    in_question = target.tag in _MENTION_RE.findall(q)
    qa = SourceQA(
        item=item,
        question=_rewrite(q, objects, target.tag if in_question else None),
        answer=_rewrite(a, objects, None),
        target=target.tag,
        family=family,
    )
    return target.camera, qa


def _frame(
    root: Path, folder: Path, scene: str, frame: str, kf: Any, name: str
) -> Iterator[Record]:
    def reject(item: str, reason: str, detail: str = "") -> Reject:
        return Reject(source=name, item=item, stage=STAGE, reason=reason, detail=detail)

    if not isinstance(kf, dict):
        yield reject(frame, "malformed_frame", f"key frame of type {type(kf).__name__}")
        return
    infos = kf.get("key_object_infos", {})
    if not isinstance(infos, dict):
        yield reject(f"{frame}:key_object_infos", "malformed_key_object", "not an object")
        infos = {}
    paths = kf.get("image_paths", {})

    objects = {tag: _key_object(frame, tag, info) for tag, info in infos.items()}
    order = list(paths) if isinstance(paths, dict) else []
    order += sorted({o.camera for o in objects.values() if o.camera and o.camera not in order})
    cameras = {c: _camera(root, folder, scene, c, paths, name) for c in order
               if any(o.camera == c for o in objects.values())}

    for ko in objects.values():
        if not ko.reason and cameras[ko.camera].ref is None:
            ko.reason, ko.detail = cameras[ko.camera].reason, cameras[ko.camera].detail
        if ko.reason:
            yield reject(ko.item, ko.reason, ko.detail)
        else:
            cameras[ko.camera].instances.append(ko.instance)

    qas = kf.get("QA", {})
    if not isinstance(qas, dict):
        yield reject(f"{frame}:QA", "malformed_qa", "QA is not an object")
        qas = {}
    for family, entries in qas.items():
        if not isinstance(entries, list):
            yield reject(f"{frame}:{family}", "malformed_qa", "QA family is not a list")
            continue
        for index, entry in enumerate(entries):
            camera, result = _qa(frame, family, index, entry, objects, cameras)
            if isinstance(result, SourceQA):
                cameras[camera].qa.append(result)
            else:
                yield reject(f"{frame}:{family}:{index}", *result)

    for cam in cameras.values():
        if cam.ref is None or not cam.instances:
            continue
        yield Scene(
            ref=cam.ref,
            instances=cam.instances,
            items=[i.item for i in cam.instances] + [qa.item for qa in cam.qa],
            qa=cam.qa,
            sample_points=False,
            grounding_from_attributes=True,
        )


def read(spec: str, options: SourceOptions) -> Iterator[Record]:
    """Read every DriveLM JSON under ``spec``; yield Scenes per (frame, camera) and Rejects.

    Args:
        spec: ``DIR``, the source root. Annotation files are ``DIR/**/*.json``; image paths
            in them are relative to each file's folder and must resolve inside ``DIR``.
        options: reader options; ``options.name`` becomes ``ImageRef.source``.

    Yields:
        Per frame (file order), first the Rejects of its key objects and QA entries, then
        one Scene per camera with usable key objects (``image_paths`` order). Instances
        carry ``geometry=Box`` and ``point=(x, y)`` in pixels of the 1600x900 camera image.

        A ``*.json`` file that cannot be parsed or is not in the DriveLM layout is one
        Reject (item = its path relative to ``DIR``, reason ``not_a_drivelm_file``). A frame
        token met a second time in the same file (under another scene) is a conflict: each
        item of that second occurrence is rejected (``duplicate_frame``, items keyed
        ``<frame>@<scene>:<tag>`` and ``<frame>@<scene>:<family>:<index>``).

    Raises:
        SourceError: ``DIR`` missing, a JSON file linking outside it, or no DriveLM file
            under it at all (raised once every file has been looked at).
    """
    root = Path(spec)
    if not root.is_dir():
        raise SourceError(f"DriveLM folder {root} does not exist")
    files = sorted(p for p in root.rglob("*.json") if p.is_file())
    for p in files:
        try:
            resolve_inside(root, root, p.relative_to(root).as_posix())
        except UnsafePath as exc:
            raise SourceError(f"annotation file {p} links outside {root}: {exc.detail}") from None
    if not files:
        raise SourceError(f"no DriveLM *.json file under {root}")
    name = options.name
    seen_frames: set[str] = set()
    n_drivelm = 0
    problems: list[str] = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        data, why = _load(path)
        if data is None:
            problems.append(f"{rel}: {why}")
            yield Reject(name, rel, STAGE, "not_a_drivelm_file", why)
            continue
        n_drivelm += 1
        in_file: dict[str, str] = {}
        for scene, body in data.items():
            for frame, kf in body["key_frames"].items():
                if frame in in_file:
                    yield from _duplicate(frame, scene, in_file[frame], kf, name)
                    continue
                in_file[frame] = scene
                if frame in seen_frames:
                    continue  # the same nuScenes sample, already read from an earlier file
                seen_frames.add(frame)
                yield from _frame(root, path.parent, scene, frame, kf, name)
    if n_drivelm == 0:
        raise SourceError(
            f"no DriveLM file under {root}: none of its {len(files)} *.json files has the DriveLM "
            "layout (scene_token -> {scene_description, key_frames}); " + "; ".join(problems[:3]))


def _duplicate(frame: str, scene: str, first_scene: str, kf: Any, name: str) -> Iterator[Reject]:
    """Rejects for every item of a frame met again, in the same file, under ``scene``."""
    detail = f"frame {frame} already read under scene {first_scene}"
    prefix = f"{frame}@{scene}"
    items: list[str] = []
    if isinstance(kf, dict):
        if isinstance(kf.get("key_object_infos"), dict):
            items += [f"{prefix}:{tag}" for tag in kf["key_object_infos"]]
        if isinstance(kf.get("QA"), dict):
            for family, entries in kf["QA"].items():
                if isinstance(entries, list):
                    items += [f"{prefix}:{family}:{i}" for i in range(len(entries))]
    for item in items or [prefix]:
        yield Reject(name, item, STAGE, "duplicate_frame", detail)
