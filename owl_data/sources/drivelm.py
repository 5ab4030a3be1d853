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
(``not_a_drivelm_file``; ``not_a_regular_file`` for a FIFO, socket or device named ``*.json``,
which is never waited on). Every item of every file is counted: a frame token met again with
key objects (in a later file, or under another scene of the same file) is read once, the
items of its repeats are rejected (``duplicate_frame``). A question-only frame (an evaluation
file's: ``QA`` and ``image_paths``, no ``key_object_infos``) resolves its tags against the
key objects of the same frame in another file; its scene is held out: every row of it, from
every file, goes to split ``test`` (``DIR?eval_split=S`` names another).

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

No row states an object that is not in its image. A key object is tagged in exactly one
camera, so the camera where every object a QA mentions appears is the target's camera when all
its tags name that camera, and there is none otherwise: a QA whose tags name two cameras is
rejected (``cross_camera``; "Are <c1,CAM_BACK,...> and <c3,CAM_FRONT,...> traffic signs?"), and
so is one that names, by its visual description and without its tag, a key object of another
camera that no object of the target's camera shares a description with ("... then the green
light" on a CAM_BACK row when the green light is tagged in CAM_FRONT). No QA is moved to another
camera: nothing in DriveLM says an object tagged in one camera is visible in another.

A tag's point is where an annotator clicked, not a point computed from the object's pixels:
it need not lie on the object (a click on fog between the lamps of a traffic light), only in
its 2d_bbox; the builder's rows say so with ``point_origin = "annotated"``.

A frame holding a string that is not valid Unicode text (JSON can escape a lone surrogate,
which the corpus cannot store) in its scene token, its frame token or anywhere in its key
frame is not read: every item of it is ``malformed_frame`` (keys escaped); so are the items of
a question-only frame whose key objects in another file hold one.

Reject reasons (stage ``read``): ``bad_tag``, ``malformed_key_object``, ``non_finite``
(a 2d_bbox number that is infinite or too large), ``missing_image``,
``path_outside_source``, ``malformed_qa``, ``no_point_tag``, ``unknown_tag``,
``malformed_frame``, ``not_a_drivelm_file``, ``not_a_regular_file``, ``duplicate_frame``,
``cross_camera``; a QA whose target key object was rejected, or that mentions an object whose
tag is malformed, gets that object's reason. The builder adds ``point_outside_target``
(the tag's point is not inside the object's 2d_bbox) and ``empty_category``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from owl_data.errors import exc_text
from owl_data.ingest.files import FileProblem, open_regular
from owl_data.records import SPLIT_NAME, Record, Reject, Scene, SourceQA, TextRow
from owl_data.sources import SourceError, SourceOptions
from owl_data.sources._common import parse_spec, shown, spec_frame, text_problem, with_frame
from owl_data.sources._drivelm_frame import (
    CAMERA_SIZE, STAGE, TAG_RE, _camera, _frame, _key_object, _qa, object_phrase, parse_tag,
)
from owl_data.sources._paths import UnsafePath, resolve_inside

__all__ = ["read", "parse_tag", "object_phrase", "CAMERA_SIZE", "TAG_RE"]


def _load(path: Path) -> tuple[dict | None, str, str]:
    """(data, "", "") for a DriveLM file, else (None, reject reason, why it is not one).

    The reason is ``not_a_regular_file`` for a FIFO, socket or device named ``*.json``
    (refused by :func:`~owl_data.ingest.files.open_regular` without waiting on it), else
    ``not_a_drivelm_file``.
    """
    try:
        with open_regular(path, what="annotation") as f:
            data = json.load(f)
    except FileProblem as exc:
        reason = exc.reason if exc.reason == "not_a_regular_file" else "not_a_drivelm_file"
        return None, reason, f"cannot be read: {exc.detail}"
    except (OSError, ValueError) as exc:  # ValueError: bad JSON, a 5000-digit integer
        return None, "not_a_drivelm_file", f"cannot be parsed: {exc_text(exc)}"
    except RecursionError:
        return None, "not_a_drivelm_file", "cannot be parsed: JSON nested too deeply"
    if not isinstance(data, dict) or not data or not all(
        isinstance(v, dict) and isinstance(v.get("key_frames"), dict) for v in data.values()
    ):
        return None, "not_a_drivelm_file", "not in the DriveLM layout (scene_token -> {scene_description, key_frames})"
    return data, "", ""


def _question_only(kf: Any) -> bool:
    """A key frame of a question-only (evaluation) file: QA and image paths, no key objects."""
    return isinstance(kf, dict) and "key_object_infos" not in kf


def _plan(docs: list[tuple[str, Path, dict]]) -> tuple[dict[str, Any], set[str]]:
    """Across every file: frame -> the key objects of its first full occurrence, and the scenes
    held out for evaluation (those a question-only frame belongs to, closed over shared frames
    so that no image and no scene straddles splits)."""
    objects: dict[str, Any] = {}
    scenes_of: dict[str, set[str]] = {}
    frames_of: dict[str, set[str]] = {}
    held: set[str] = set()
    for _, _, data in docs:
        for scene, body in data.items():
            for frame, kf in body["key_frames"].items():
                scenes_of.setdefault(frame, set()).add(scene)
                frames_of.setdefault(scene, set()).add(frame)
                if _question_only(kf):
                    held.add(frame)
                elif isinstance(kf, dict) and frame not in objects:
                    objects[frame] = kf.get("key_object_infos")
    scenes: set[str] = set()
    while held:
        new = {s for f in held for s in scenes_of[f]} - scenes
        scenes |= new
        held = {f for s in new for f in frames_of[s]} - held
    return objects, scenes


def _question_frame(
    root: Path, folder: Path, scene: str, prefix: str, kf: dict, infos: Any, name: str, split: str
) -> Iterator[Record]:
    """The QA items of a question-only frame (keyed ``<frame>@<file>:<family>:<index>``): tags
    resolve against ``infos``, the key objects another file gives for the same frame; each
    usable QA is a point_vqa TextRow on its target's camera, in ``split``."""
    frame = prefix.split("@", 1)[0]
    bad = text_problem(infos, f"the key objects of frame {frame} (another file)")
    if bad:
        yield from _all_items(prefix, bad, kf, name, "malformed_frame")
        return
    objects = {tag: _key_object(frame, tag, info) for tag, info in (infos if isinstance(infos, dict) else {}).items()}
    paths = kf.get("image_paths", {})
    cameras = {c: _camera(root, folder, scene, c, paths, name, split)
               for c in dict.fromkeys(o.camera for o in objects.values() if o.camera)}
    for ko in objects.values():
        if not ko.reason and cameras[ko.camera].ref is None:
            ko.reason, ko.detail = cameras[ko.camera].reason, cameras[ko.camera].detail
    rows: dict[str, list[TextRow]] = {}
    qas = kf.get("QA", {})
    if not isinstance(qas, dict):
        yield Reject(name, f"{prefix}:QA", STAGE, "malformed_qa", "QA is not an object")
        qas = {}
    for family, entries in qas.items():
        if not isinstance(entries, list):
            yield Reject(name, f"{prefix}:{family}", STAGE, "malformed_qa", "QA family is not a list")
            continue
        for index, entry in enumerate(entries):
            camera, qa = _qa(prefix, family, index, entry, objects, cameras)
            if not isinstance(qa, SourceQA):
                yield Reject(name, f"{prefix}:{family}:{index}", STAGE, *qa)
                continue
            inst = objects[qa.target].instance
            rows.setdefault(camera, []).append(TextRow(
                task="point_vqa", item=qa.item, question=qa.question, answer=qa.answer,
                category=inst.category, box=inst.geometry, instance=inst.instance, point=inst.point,
                kind="reasoning", generator=f"source-qa/{name}/{family}",
                description=inst.attributes.get("visual_description", "")))
    for camera, trs in rows.items():
        yield Scene(ref=cameras[camera].ref, rows=trs, sample_points=False)


def read(spec: str, options: SourceOptions) -> Iterator[Record]:
    """Read every DriveLM JSON under ``spec``; yield Scenes per (frame, camera) and Rejects.

    Args:
        spec: ``DIR[?eval_split=S&frame=F]``, the source root. Annotation files are
            ``DIR/**/*.json``; image paths in them are relative to each file's folder and must
            resolve inside ``DIR``. ``eval_split`` (default ``test``) is the split of held-out
            scenes; ``frame`` (default ``upright``) is the frame of an EXIF-oriented image
            the tags are in (:func:`owl_data.ingest.frame.annotation_frame`).
        options: reader options; ``options.name`` becomes ``ImageRef.source``.

    Yields:
        Per frame (file order), first the Rejects of its key objects and QA entries, then
        one Scene per camera with usable key objects (``image_paths`` order). Instances
        carry ``geometry=Box`` and ``point=(x, y)`` in pixels of the 1600x900 camera image.

        A ``*.json`` file that cannot be parsed or is not in the DriveLM layout is one
        Reject (item = its path relative to ``DIR``, reason ``not_a_drivelm_file``; a FIFO,
        socket, device or dangling link named ``*.json`` likewise, ``not_a_regular_file``
        for the first three). A frame token met a second time in the same file (under
        another scene) is a conflict: each item of that second occurrence is rejected (``duplicate_frame``, items keyed
        ``<frame>@<scene>:<tag>`` and ``<frame>@<scene>:<family>:<index>``); met again with
        key objects in a later file, likewise (keyed ``<frame>@<file>:...``).

        A question-only key frame (``QA`` and ``image_paths``, no ``key_object_infos``: an
        evaluation file) gives QA items keyed ``<frame>@<file>:<family>:<index>``, their tags
        resolved against the key objects of the same frame in another file; its scene, and
        every scene sharing a frame with it, goes to ``eval_split`` (rows from every file).

    Raises:
        SourceError: ``DIR`` missing, a bad option, a JSON file linking outside it, or no
            DriveLM file under it at all (raised once every file has been looked at).
    """
    root, opts = parse_spec("drivelm", spec, {"eval_split": "split of scenes a question-only file asks about"})
    eval_split = opts.get("eval_split", "test")
    if not SPLIT_NAME.fullmatch(eval_split):
        raise SourceError(f"drivelm spec {spec!r}: eval_split {eval_split[:40]!r} is not a plain name")
    if root.is_file():
        raise SourceError(f"drivelm={root} is a file: give the folder that holds the DriveLM JSON files and the "
                          f"nuScenes images their image_paths point to (e.g. drivelm={root.parent}); every "
                          "*.json under it is read")
    if not root.is_dir():
        raise SourceError(f"DriveLM folder {root} does not exist")
    # every entry named *.json but a folder: a FIFO, socket or dangling link is an item too
    # (a reject row from _load), never skipped unseen
    files = sorted(p for p in root.rglob("*.json") if not p.is_dir())
    for p in files:
        try:
            resolve_inside(root, root, p.relative_to(root).as_posix())
        except UnsafePath as exc:
            raise SourceError(f"annotation file {p} links outside {root}: {exc.detail}") from None
    if not files:
        raise SourceError(f"no DriveLM *.json file under {root}")
    name = options.name
    docs: list[tuple[str, Path, dict]] = []
    problems: list[str] = []
    for path in files:
        rel = shown(path.relative_to(root).as_posix())  # a name that is not UTF-8 on disk: escaped
        data, reason, why = _load(path)
        if data is None:
            problems.append(f"{rel}: {why}")
            yield Reject(name, rel, STAGE, reason, why)
        else:
            docs.append((rel, path, data))
    if not docs:
        raise SourceError(
            f"no DriveLM file under {root}: none of its {len(files)} *.json files has the DriveLM "
            "layout (scene_token -> {scene_description, key_frames}); " + "; ".join(problems[:3]))
    objects, held = _plan(docs)
    seen_frames: dict[str, str] = {}
    for rel, path, data in docs:
        yield from with_frame(_file(root, rel, path.parent, data, name, objects, held, eval_split, seen_frames),
                              spec_frame(opts))


def _file(root: Path, rel: str, folder: Path, data: dict, name: str, objects: dict[str, Any],
          held: set[str], eval_split: str, seen_frames: dict[str, str]) -> Iterator[Record]:
    """The records of one DriveLM file (``seen_frames``: frame -> the file that read it fully)."""
    in_file: dict[str, str] = {}
    for scene, body in data.items():
        split = eval_split if scene in held else None
        for frame, kf in body["key_frames"].items():
            bad = text_problem(scene, "scene token") or text_problem(frame, "frame token") or text_problem(
                kf, f"frame {frame}")
            if bad:  # a string the corpus cannot hold (a lone surrogate): every item of the frame
                yield from _all_items(shown(frame) + (f"@{rel}" if _question_only(kf) else ""), bad, kf, name,
                                      "malformed_frame")
                continue
            if frame in in_file:
                detail = f"frame {frame} already read under scene {in_file[frame]}"
                yield from _all_items(f"{frame}@{scene}", detail, kf, name)
                continue
            in_file[frame] = scene
            if _question_only(kf):
                yield from _question_frame(root, folder, scene, f"{frame}@{rel}", kf, objects.get(frame),
                                           name, eval_split)
            elif frame in seen_frames:
                detail = f"frame {frame} already read from {seen_frames[frame]}"
                yield from _all_items(f"{frame}@{rel}", detail, kf, name)
            else:
                seen_frames[frame] = rel
                yield from _frame(root, folder, scene, frame, kf, name, split)


def _all_items(prefix: str, detail: str, kf: Any, name: str, reason: str = "duplicate_frame") -> Iterator[Reject]:
    """Rejects (``reason``) for every item of a frame that is not read (met again, or holding
    text the corpus cannot store), keyed under ``prefix`` (tags and families escaped by
    :func:`~owl_data.sources._common.shown`)."""
    items: list[str] = []
    if isinstance(kf, dict):
        if isinstance(kf.get("key_object_infos"), dict):
            items += [f"{prefix}:{shown(tag)}" for tag in kf["key_object_infos"]]
        if isinstance(kf.get("QA"), dict):
            for family, entries in kf["QA"].items():
                if isinstance(entries, list):
                    items += [f"{prefix}:{shown(family)}:{i}" for i in range(len(entries))]
    for item in dict.fromkeys(items or [prefix]):
        yield Reject(name, item, STAGE, reason, detail)
