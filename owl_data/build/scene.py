"""One scene to rows: decode its image, resolve its geometry, sample points, generate text.

:func:`process_scene` is a pure function of a :class:`~owl_data.records.Scene` and the build
config; the driver (:mod:`owl_data.build.driver`) runs it over every scene, in one process or many.
Its result (:class:`SceneResult`) holds the image row, the image reference, the task rows, the
rejects and the item keys it kept (see :mod:`owl_data.build.driver` for the accounting rules).

The steps, in the order rows are made (the order of the corpus):

1. :func:`_open`: decode the image, find the annotation frame and the split, orient the label
   map; a fault here rejects every item of the scene. Then :func:`_unified`: every category
   mapped to the unified taxonomy (:mod:`owl_data.conventions.taxonomy`), the source's own name
   kept as ``source_category`` (the only place categories are mapped).
2. :func:`_resolve`: every instance in the stored frame (a bad one rejects its item).
3. :func:`_sampled_point_rows`: points sampled in masks, described by the template generators.
4. :func:`_annotated_point_rows`: the points the source annotates (when none are sampled).
5. :func:`_attribute_grounding_rows`: ``visual_description`` attributes -> grounding rows.
6. :func:`_source_qa_rows`: the source's QA about its instances.
7. :func:`~owl_data.build.rows.text_rows`: the task rows the source gives directly.
8. :func:`_settle`: placeholders checked per item; every item kept or rejected exactly once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from owl_data.build.config import BuildConfig
from owl_data.ingest.frame import AnnotationFrame, annotation_frame
from owl_data.ingest.geometry import GeometryError, ResolvedInstance, ResolvedScene, transform_mask
from owl_data.ingest.images import ImageError, DecodedImage, load_image
from owl_data.conventions.placeholders import check_placeholders
from owl_data.conventions.taxonomy import default_taxonomy
from owl_data.errors import RejectError
from owl_data.ingest.points import sample_points
from owl_data.records import SPLIT_NAME, Reject, Scene
from owl_data.build.rows import (ImageFrame, SceneRows, conversation, grounding_row, point_vqa_row, text_rows,
                                 user_point)

__all__ = ["process_scene", "split_for_group", "scene_items", "SceneResult", "GROUNDING_PROMPT"]

GROUNDING_PROMPT = "Where is {expr} in the image? Answer with its bounding box."


def split_for_group(group: str, val_percent: int) -> str:
    """``val`` when int(sha256(group)) mod 100 < val_percent, else ``train`` (DESIGN.md)."""
    return "val" if int(hashlib.sha256(group.encode()).hexdigest(), 16) % 100 < val_percent else "train"


def scene_items(scene: Scene) -> list[str]:
    """The scene's item keys, first seen first: ``scene.items``, then its TextRows' items."""
    return list(dict.fromkeys(scene.items + [tr.item for tr in scene.rows]))


@dataclass
class SceneResult:
    """What one scene produced (pickled back from a worker process).

    Attributes:
        source: the scene's source name.
        items: every item key of the scene (:func:`scene_items`).
        image: its ``images`` row, or None when the scene produced no task row.
        ref: its ``image_refs`` row, or None likewise.
        rows: task table -> rows (columns of :data:`owl_data.corpus.schema.TASK_TABLES`).
        row_items: task table -> the item key of each of its rows (None for a row of no item).
        rejects: one Reject per rejected item, the scene's items first in their order.
        kept: item keys that produced at least one row.
        frame: the annotation frame taken for the image (``upright`` or ``raw``), or None
            when the scene was rejected before one was (undecodable image, size mismatch) or
            places nothing on the image (captions, VQA).
        frame_ambiguous: the annotation did not settle the frame (EXIF orientation 2..8 and
            no stated size, or one equal to both sizes): the ``?frame=`` option decided.
        source_path: the image's path in its source (the manifest counts frames per image).
    """

    source: str
    items: list[str]
    image: dict[str, Any] | None = None
    ref: dict[str, Any] | None = None
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    row_items: dict[str, list[str | None]] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    kept: set[str] = field(default_factory=set)
    frame: str | None = None
    frame_ambiguous: bool = False
    source_path: str = ""

    @classmethod
    def rejected_whole(cls, scene: Scene, stage: str, reason: str, detail: str) -> "SceneResult":
        """Every item of ``scene`` rejected at ``stage`` for ``reason``; no row."""
        items = scene_items(scene)
        return cls(scene.ref.source, items,
                   rejects=[Reject(scene.ref.source, it, stage, reason, detail) for it in items])


class SplitError(RejectError):
    """A split that is not a plain folder name (reason ``bad_split``, stage ``read``)."""


@dataclass
class _Opened:
    """A scene's decoded image, the frame its rows point to, its label map upright (or None)
    and the annotation frame taken."""

    img: DecodedImage
    frame: ImageFrame
    semantic: np.ndarray | None
    annotation: AnnotationFrame


def _places(scene: Scene) -> bool:
    """Whether the scene puts anything on the image: instances, a label map, or a text row's box
    or point (only then does the annotation frame matter, and the image count in ``frames``)."""
    return bool(scene.instances) or scene.semantic is not None or any(
        tr.box is not None or tr.point is not None for tr in scene.rows)


def _open(scene: Scene, cfg: BuildConfig) -> _Opened:
    """Decode the image and place the scene in its frame and split.

    Raises:
        ImageError: the image cannot be decoded or is too large (stage ``decode``).
        GeometryError: the declared size does not fit the frame the source's ``?frame=``
            option takes (:func:`~owl_data.ingest.frame.annotation_frame`), or the label
            map's size does not (stage ``geometry``).
        SplitError: the split is not a plain name (stage ``read``).
    """
    ref = scene.ref
    img = load_image(ref.path, max_pixels=cfg.max_image_pixels, max_bytes=cfg.max_file_bytes,
                     reencode_format=cfg.reencode_format)
    # a scene that places nothing (captions, VQA) is in no frame: a stated size of either frame fits it
    af = annotation_frame(ref.declared_size, img.raw_size, img.orientation, ref.frame if _places(scene) else "auto")
    split = ref.split or split_for_group(ref.group, cfg.val_percent)
    if not SPLIT_NAME.fullmatch(split):  # a folder name of the corpus: never a path
        raise SplitError("bad_split", f"split {split[:40]!r} is not a plain name (letters, digits, _ . -)")
    semantic = None
    if scene.semantic is not None:
        if scene.semantic.shape != (af.size[1], af.size[0]):
            raise GeometryError("size_mismatch", f"label map {scene.semantic.shape[::-1]} vs the {af.name} "
                                                 f"frame {af.size} of image {img.raw_size}")
        semantic = transform_mask(scene.semantic, img.orientation if af.rotate else 1)
    frame = ImageFrame(source=ref.source, source_path=ref.source_path, image_id=img.image_id, split=split,
                       declared=af.size, raw=img.raw_size, orientation=img.orientation, rotate=af.rotate)
    return _Opened(img, frame, semantic, af)


def _resolve(scene: Scene, frame: ImageFrame, out: SceneRows) -> list[ResolvedInstance]:
    """The scene's instances in the stored frame; an unusable one rejects its item
    (``empty_category``, or the geometry's reason)."""
    resolved = []
    for inst in scene.instances:
        if inst.item and not inst.category.strip():
            out.reject(inst.item, "rows", "empty_category", f"instance {inst.instance}: empty category name")
            continue
        try:
            resolved.append(frame.resolve(inst))
        except GeometryError as exc:
            if inst.item:
                out.reject(inst.item, "geometry", exc.reason, exc.detail)
    return resolved


def _unified(scene: Scene) -> Scene:
    """``scene`` with every instance's and TextRow's category in the unified taxonomy
    (:mod:`owl_data.conventions.taxonomy`, by the scene's source), the source's own name kept as
    ``source_category``: the one place categories are mapped, before any row or text is made."""
    tax = default_taxonomy()
    src = scene.ref.source
    instances = [i if i.source_category is not None else
                 replace(i, category=tax.unify(src, i.category, i.attributes.get("visual_description", "")),
                         source_category=i.category) for i in scene.instances]
    rows = [tr if tr.category is None or tr.source_category is not None else
            replace(tr, category=tax.unify(src, tr.category, tr.description), source_category=tr.category)
            for tr in scene.rows]
    return replace(scene, instances=instances, rows=rows)


MAX_CATEGORY_CHARS = 64
"""A category name longer than this is ``bad_category`` (the longest COCO, Cityscapes or
DriveLM name is under 20): it would be repeated in every description and expression."""
MAX_DESCRIPTION_CHARS = 300
"""A visual description (DriveLM ``Visual_description``) longer than this is ``bad_description``."""


def _name_problem(name: object, limit: int) -> str | None:
    """Why a category name or description cannot go into text, or None: not a string, longer
    than ``limit`` characters, or holding a control character (a newline would end a turn)."""
    if not isinstance(name, str):
        return f"not a string ({type(name).__name__})"
    if len(name) > limit:
        return f"{len(name)} characters (limit {limit}): {name[:40]!r}..."
    if not name.isprintable():
        return f"control character in {name[:40]!r}"
    return None


def _drop_bad_names(scene: Scene, out: SceneRows) -> Scene:
    """``scene`` without the instances and TextRows whose category or visual description cannot
    be said (:func:`_name_problem`); each one's item is rejected (``bad_category``,
    ``bad_description``), an instance without an item (context) is left out of the scene."""
    def problem(category: object, description: object) -> tuple[str, str] | None:
        why = _name_problem(category, MAX_CATEGORY_CHARS)
        if why is not None:
            return "bad_category", f"category {why}"
        why = _name_problem(description if description is not None else "", MAX_DESCRIPTION_CHARS)
        return None if why is None else ("bad_description", f"visual description {why}")

    instances = []
    for inst in scene.instances:
        bad = problem(inst.category, inst.attributes.get("visual_description"))
        if bad is None:
            instances.append(inst)
        elif inst.item:
            out.reject(inst.item, "rows", *bad)
    rows = []
    for tr in scene.rows:
        bad = None if tr.category is None else problem(tr.category, tr.description)
        if bad is None:
            rows.append(tr)
        else:
            out.reject(tr.item, "rows", *bad)
    if len(instances) == len(scene.instances) and len(rows) == len(scene.rows):
        return scene
    return replace(scene, instances=instances, rows=rows)


def _source_category(target: ResolvedInstance) -> str:
    """The source's own category name of a resolved target (its unified one if never unified)."""
    own = target.source.source_category
    return own if own is not None else target.category


def _generated_row(frame: ImageFrame, target: ResolvedInstance, point: tuple[float, float], origin: str,
                   qa: Any, variant: str) -> dict[str, Any]:
    """The point_vqa row of one generated QA (:class:`~owl_data.generators.GeneratedQA`) at ``point``."""
    x, y = point
    return point_vqa_row(
        frame, frame.row_id(target.instance, f"{x:.6f},{y:.6f}", qa.generator, variant),
        conversation(user_point(qa.question), qa.answer), point=point, origin=origin, kind=qa.kind,
        category=target.category, source_category=_source_category(target), instance=target.instance,
        bbox=target.bbox, generator=qa.generator, item=target.source.item)


def _sampled_point_rows(rs: ResolvedScene, frame: ImageFrame, cfg: BuildConfig, out: SceneRows) -> None:
    """Points sampled in the masks (:func:`~owl_data.ingest.points.sample_points`), each described
    by the template generators; an instance skipped by the sampler rejects its item."""
    from owl_data.generators import GeneratorConfig, generate

    gcfg = GeneratorConfig(description_no_question=cfg.description_no_question, max_reasoning=cfg.max_reasoning)
    points, skipped = sample_points(rs, cfg.points, seed=cfg.seed, key=f"{frame.source}:{frame.source_path}")
    for inst, reason in skipped:
        if inst.source.item:
            out.reject(inst.source.item, "points", reason, "")
    for p in points:
        qas = generate(rs, p.target, (p.x, p.y), seed=cfg.seed, config=gcfg)
        for n, qa in enumerate(qas):
            out.add("point_vqa", _generated_row(frame, p.target, (p.x, p.y), p.origin, qa, f"{p.index}:{n}"))
        if qas and p.target.source.item:
            out.kept.add(p.target.source.item)


def _annotated_point_rows(resolved: list[ResolvedInstance], frame: ImageFrame, cfg: BuildConfig,
                          out: SceneRows) -> None:
    """Descriptions at the points the source annotates (non-crowd instances with a point)."""
    from owl_data.generators.annotated import describe_annotated

    for r in resolved:
        if r.point is None or r.source.crowd:
            continue
        qas = describe_annotated(r, without_question=cfg.description_no_question)
        for n, qa in enumerate(qas):
            out.add("point_vqa", _generated_row(frame, r, r.point, "annotated", qa, f"a:{n}"))
        if qas and r.source.item:
            out.kept.add(r.source.item)


def _attribute_grounding_rows(resolved: list[ResolvedInstance], frame: ImageFrame, out: SceneRows) -> None:
    """A grounding row per non-crowd instance with a ``visual_description`` and a box of some area."""
    from owl_data.generators.annotated import phrase

    for r in resolved:
        expr = phrase(r.source.attributes.get("visual_description", "") or "")
        if not expr or r.source.crowd or r.bbox[2] <= r.bbox[0] or r.bbox[3] <= r.bbox[1]:
            continue
        conv = conversation("<image>" + GROUNDING_PROMPT.format(expr=expr), "<box>")
        out.add("grounding", grounding_row(frame, frame.row_id(r.instance, "grounding"), conv, expr, r.bbox,
                                           r.source.item))
        if r.source.item:
            out.kept.add(r.source.item)


def _source_qa_rows(scene: Scene, resolved: list[ResolvedInstance], frame: ImageFrame, out: SceneRows) -> None:
    """A point_vqa row per source QA, at its target's annotated point; a QA whose target was
    not resolved (or has no point) is rejected with the target's reason (else ``unknown_target``)."""
    by_instance = {r.instance: r for r in resolved}
    item_of = {inst.instance: inst.item for inst in scene.instances if inst.item}
    for qa in scene.qa:
        target = by_instance.get(qa.target)
        if target is None or target.point is None:
            target_reject = out.rejected.get(item_of.get(qa.target, ""))
            reason = target_reject.reason if target_reject is not None else "unknown_target"
            out.reject(qa.item, "qa", reason, f"target {qa.target}")
            continue
        out.add("point_vqa", point_vqa_row(
            frame, frame.row_id(qa.item, "qa"), conversation(user_point(qa.question), qa.answer),
            point=target.point, origin="annotated", kind="reasoning", category=target.category,
            source_category=_source_category(target), instance=target.instance, bbox=target.bbox,
            generator=f"source-qa/{frame.source}/{qa.family}", item=qa.item))
        out.kept.add(qa.item)


def _settle(items: list[str], out: SceneRows) -> tuple[dict[str, list[str | None]], list[Reject]]:
    """Check placeholders and close the accounting of the scene's items.

    An item with a row whose source text carries a placeholder loses all its rows
    (``placeholder_in_text``); a kept item leaves no reject; an item neither kept nor
    rejected is ``no_rows``. Removes ``_item`` from every row.

    Returns:
        (task table -> the item of each remaining row, the rejects: the scene's items first in
        their order, then the rejected items the scene did not list).
    """
    rows, kept, rejected = out.rows, out.kept, out.rejected
    item_of_row = {id(r): r.get("_item") for trs in rows.values() for r in trs}
    for it, why in check_placeholders(rows).items():  # source text must not inject placeholders
        kept.discard(it)
        rejected[it] = Reject(out.source, it, "rows", "placeholder_in_text", why)
    for it in items:
        if it in kept:
            rejected.pop(it, None)
        elif it not in rejected:
            rejected[it] = Reject(out.source, it, "rows", "no_rows", "item produced no row")
    listed = set(items)
    rejects = [rejected[it] for it in items if it in rejected] + [r for it, r in rejected.items() if it not in listed]
    row_items = {t: [item_of_row.get(id(r)) for r in trs] for t, trs in rows.items()}
    return row_items, rejects


_WHOLE_SCENE_STAGE: tuple[tuple[type[RejectError], str], ...] = (
    (ImageError, "decode"), (GeometryError, "geometry"), (SplitError, "read"))
"""The faults of :func:`_open` and the reject stage each gives every item of the scene."""


def process_scene(scene: Scene, cfg: BuildConfig) -> SceneResult:
    """Turn one scene into image/ref/task rows and rejects (a pure function of its inputs).

    Rows are made in the steps of the module docstring; the image and its reference are
    kept only when the scene produced at least one task row.
    """
    ref = scene.ref
    try:
        opened = _open(scene, cfg)
    except (ImageError, GeometryError, SplitError) as exc:
        stage = next(s for kind, s in _WHOLE_SCENE_STAGE if isinstance(exc, kind))
        detail = (exc.detail or str(ref.source_path)) if isinstance(exc, ImageError) else exc.detail
        return SceneResult.rejected_whole(scene, stage, exc.reason, detail)
    img, frame = opened.img, opened.frame
    out = SceneRows(ref.source)
    scene = _unified(_drop_bad_names(scene, out))
    resolved = _resolve(scene, frame, out)
    if scene.sample_points:
        rs = ResolvedScene(pixels=img.pixels, width=img.width, height=img.height,
                           instances=resolved, semantic=opened.semantic)
        _sampled_point_rows(rs, frame, cfg, out)
    else:
        _annotated_point_rows(resolved, frame, cfg, out)
    if scene.grounding_from_attributes:
        _attribute_grounding_rows(resolved, frame, out)
    _source_qa_rows(scene, resolved, frame, out)
    if scene.rows:  # rows the source gives directly (VQA, captions, grounding, point QA)
        text_rows(scene, frame, resolved, cfg.seed, out)
    items = scene_items(scene)
    row_items, rejects = _settle(items, out)
    result = SceneResult(ref.source, items, rows=dict(out.rows), row_items=row_items, rejects=rejects,
                         kept=out.kept, source_path=ref.source_path)
    if _places(scene):
        result.frame, result.frame_ambiguous = opened.annotation.name, opened.annotation.ambiguous
    if any(out.rows.values()):
        result.image = {"image_id": img.image_id, "bytes": img.data, "format": img.format,
                        "width": img.width, "height": img.height, "split": frame.split}
        result.ref = {"image_id": img.image_id, "source": ref.source, "source_path": ref.source_path,
                      "group": ref.group}
    return result
