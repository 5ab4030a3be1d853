"""One DriveLM key frame -> Scenes and Rejects (the reader, :mod:`owl_data.sources.drivelm`, walks
the files and documents the format): tags, key objects, camera images, QA rewriting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from owl_data.ingest.numbers import NumberError, finite_float
from owl_data.records import Box, ImageRef, Instance, Record, Reject, Scene, SourceQA
from owl_data.sources._paths import UnsafePath, resolve_inside

__all__ = ["parse_tag", "object_phrase", "CAMERA_SIZE", "TAG_RE", "STAGE"]

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


def _camera(root: Path, folder: Path, scene: str, camera: str, paths: Any, name: str,
            split: str | None = None) -> _Camera:
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
        source=name, path=path, source_path=source_path, group=scene, split=split,
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


def _named_elsewhere(text: str, objects: dict[str, _KeyObject], camera: str) -> list[str]:
    """Key objects of other cameras that ``text`` names by their visual description, untagged.

    An object's name is its ``Visual_description`` as :func:`object_phrase` shortens it, without
    "the" (``"Green light."`` -> "green light"), matched case-insensitively as whole words in
    ``text`` with every tag removed. Objects without a description are not looked for (a
    category such as "vehicle" would match "the ego vehicle"), nor is a name that an object of
    ``camera`` also bears (the text may mean that one). Returns ``"name (CAMERA)"``, sorted.
    """
    def name(o: _KeyObject) -> str:
        desc = o.info.get("Visual_description") if isinstance(o.info, dict) else None
        if not isinstance(desc, str) or not desc.strip().rstrip(".").strip():
            return ""
        return object_phrase(desc).lower()[len("the "):]

    bare = _MENTION_RE.sub(" ", text).lower()
    here = {name(o) for o in objects.values() if o.camera == camera}
    found = set()
    for o in objects.values():
        n = name(o)
        if o.camera in (None, camera) or not n or n in here:
            continue
        if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", bare):
            found.add(f"{n} ({o.camera})")
    return sorted(found)


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
    # every object the QA mentions must be in the target's image: a DriveLM key object is tagged
    # in exactly one camera, so the only camera where all appear is the target's, when it is theirs
    for tag in dict.fromkeys(mentions):
        other = objects[tag]
        if other.camera is None:  # a malformed tag names no camera: where the object is, is unknown
            return "", (other.reason, f"mentioned {tag}: {other.detail}")
        if other.camera != target.camera:
            away = sorted({f"{t} ({objects[t].camera})" for t in mentions
                           if objects[t].camera != target.camera})
            return "", ("cross_camera", f"target {target.tag} is seen by {target.camera}; the QA also mentions "
                        + ", ".join(away)[:300])
    named = _named_elsewhere(q + " " + a, objects, target.camera)
    if named:
        return "", ("cross_camera", f"target {target.tag} is seen by {target.camera}; the QA names "
                    + ", ".join(named)[:300] + " without its tag")
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
    root: Path, folder: Path, scene: str, frame: str, kf: Any, name: str, split: str | None = None
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
    cameras = {c: _camera(root, folder, scene, c, paths, name, split) for c in order
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
