"""One scene to rows: decode its image, resolve its geometry, sample points, generate text.

:func:`process_scene` is a pure function of a :class:`~owl_data.records.Scene` and the build
config; the driver (:mod:`owl_data.build.driver`) runs it over every scene, in one process or many.
Its result holds the image row, the image reference, the task rows, the rejects and the
item keys it kept (see :mod:`owl_data.build.driver` for the accounting rules).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any

from owl_data.config import BuildConfig
from owl_data.ingest.geometry import GeometryError, ResolvedScene, annotation_frame, resolve_instance, transform_mask
from owl_data.ingest.images import ImageError, load_image
from owl_data.conventions.placeholders import check_placeholders
from owl_data.ingest.points import sample_points
from owl_data.records import SPLIT_NAME, Reject, Scene
from owl_data.build.rows import row_id, text_rows, user_point

__all__ = ["process_scene", "split_for_group", "GROUNDING_PROMPT"]


def split_for_group(group: str, val_percent: int) -> str:
    """``val`` when int(sha256(group)) mod 100 < val_percent, else ``train`` (DESIGN.md)."""
    return "val" if int(hashlib.sha256(group.encode()).hexdigest(), 16) % 100 < val_percent else "train"


def _turns(user: str, assistant: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


GROUNDING_PROMPT = "Where is {expr} in the image? Answer with its bounding box."

def process_scene(scene: Scene, cfg: BuildConfig) -> dict[str, Any]:
    """Turn one scene into image/ref/task rows and rejects (a pure function of its inputs).

    Returns a dict with ``image`` (row or None), ``ref``, ``rows`` (table -> rows),
    ``row_items`` (table -> the item key of each row, or None), ``rejects`` (list of
    Reject), ``kept`` (item keys that produced rows), ``items``.
    """
    from owl_data.generators import GeneratorConfig, generate
    from owl_data.generators.annotated import describe_annotated, phrase

    ref = scene.ref
    src = ref.source
    items = list(dict.fromkeys(scene.items + [tr.item for tr in scene.rows]))
    out: dict[str, Any] = {"image": None, "ref": None, "rows": defaultdict(list), "rejects": [],
                           "kept": set(), "items": items}
    rejected: dict[str, Reject] = {}

    def reject_all(stage: str, reason: str, detail: str) -> dict[str, Any]:
        out["rejects"] = [Reject(src, it, stage, reason, detail) for it in items]
        return out

    try:
        img = load_image(ref.path, max_pixels=cfg.max_image_pixels, reencode_format=cfg.reencode_format)
    except ImageError as exc:
        return reject_all("decode", exc.reason, exc.detail or str(ref.source_path))
    try:
        rotate = annotation_frame(ref.declared_size, img.raw_size, img.orientation)
    except GeometryError as exc:
        return reject_all("geometry", exc.reason, exc.detail)
    declared = ref.declared_size or img.raw_size

    split = ref.split or split_for_group(ref.group, cfg.val_percent)
    if not SPLIT_NAME.fullmatch(split):  # a folder name of the corpus: never a path
        return reject_all("read", "bad_split", f"split {split[:40]!r} is not a plain name (letters, digits, _ . -)")
    semantic = None
    if scene.semantic is not None:
        if scene.semantic.shape != (img.raw_size[1], img.raw_size[0]):
            return reject_all("geometry", "size_mismatch", f"label map {scene.semantic.shape[::-1]} vs image {img.raw_size}")
        semantic = transform_mask(scene.semantic, img.orientation)
    resolved = []
    for inst in scene.instances:
        if inst.item and not inst.category.strip():
            rejected.setdefault(inst.item, Reject(src, inst.item, "rows", "empty_category",
                                                  f"instance {inst.instance}: empty category name"))
            continue
        try:
            resolved.append(resolve_instance(inst, declared=declared, raw=img.raw_size,
                                             orientation=img.orientation, rotate=rotate))
        except GeometryError as exc:
            if inst.item:
                rejected.setdefault(inst.item, Reject(src, inst.item, "geometry", exc.reason, exc.detail))
    rs = ResolvedScene(pixels=img.pixels, width=img.width, height=img.height,
                       instances=resolved, semantic=semantic)
    key = f"{src}:{ref.source_path}"
    rows = out["rows"]
    kept: set[str] = out["kept"]

    def point_row(target, x: float, y: float, origin: str, qa, variant: str) -> dict[str, Any]:
        return {
            "id": row_id(src, ref.source_path, target.instance, f"{x:.6f},{y:.6f}", qa.generator, variant),
            "image_id": img.image_id, "source": src, "split": split,
            "conversations": _turns(user_point(qa.question), qa.answer),
            "point": {"x": float(x), "y": float(y)}, "point_origin": origin, "kind": qa.kind,
            "target": {"category": target.category, "instance": target.instance, "bbox": list(target.bbox)},
            "generator": qa.generator, "_item": target.source.item,
        }

    gcfg = GeneratorConfig(description_no_question=cfg.description_no_question, max_reasoning=cfg.max_reasoning)
    if scene.sample_points:
        points, skipped = sample_points(rs, cfg.points, seed=cfg.seed, key=key)
        for inst, reason in skipped:
            if inst.source.item:
                rejected.setdefault(inst.source.item, Reject(src, inst.source.item, "points", reason, ""))
        for p in points:
            qas = generate(rs, p.target, (p.x, p.y), seed=cfg.seed, config=gcfg)
            for n, qa in enumerate(qas):
                rows["point_vqa"].append(point_row(p.target, p.x, p.y, p.origin, qa, f"{p.index}:{n}"))
            if qas and p.target.source.item:
                kept.add(p.target.source.item)
    by_instance = {r.instance: r for r in resolved}
    for r in resolved:
        if scene.sample_points or r.point is None or r.source.crowd:
            continue
        qas = describe_annotated(r, without_question=cfg.description_no_question)
        for n, qa in enumerate(qas):
            rows["point_vqa"].append(point_row(r, r.point[0], r.point[1], "annotated", qa, f"a:{n}"))
        if qas and r.source.item:
            kept.add(r.source.item)
    if scene.grounding_from_attributes:
        for r in resolved:
            expr = phrase(r.source.attributes.get("visual_description", "") or "")
            if not expr or r.source.crowd or r.bbox[2] <= r.bbox[0] or r.bbox[3] <= r.bbox[1]:
                continue
            rows["grounding"].append({
                "id": row_id(src, ref.source_path, r.instance, "grounding"),
                "image_id": img.image_id, "source": src, "split": split,
                "conversations": _turns("<image>" + GROUNDING_PROMPT.format(expr=expr), "<box>"),
                "expression": expr, "bbox": list(r.bbox), "_item": r.source.item,
            })
            if r.source.item:
                kept.add(r.source.item)
    item_of = {inst.instance: inst.item for inst in scene.instances if inst.item}
    for qa in scene.qa:
        target = by_instance.get(qa.target)
        if target is None or target.point is None:
            target_reject = rejected.get(item_of.get(qa.target, ""))
            reason = target_reject.reason if target_reject is not None else "unknown_target"
            rejected.setdefault(qa.item, Reject(src, qa.item, "qa", reason, f"target {qa.target}"))
            continue
        gen = f"source-qa/{src}/{qa.family}"
        rows["point_vqa"].append({
            "id": row_id(src, ref.source_path, qa.item, "qa"),
            "image_id": img.image_id, "source": src, "split": split,
            "conversations": _turns(user_point(qa.question), qa.answer),
            "point": {"x": target.point[0], "y": target.point[1]}, "point_origin": "annotated",
            "kind": "reasoning",
            "target": {"category": target.category, "instance": target.instance, "bbox": list(target.bbox)},
            "generator": gen, "_item": qa.item,
        })
        kept.add(qa.item)
    if scene.rows:  # rows the source gives directly (VQA, captions, grounding, point QA)
        t_rows, t_kept, t_rejected = text_rows(
            scene, image_id=img.image_id, split=split, declared=declared, raw=img.raw_size,
            orientation=img.orientation, rotate=rotate, resolved=resolved, seed=cfg.seed)
        for table, trs in t_rows.items():
            rows[table].extend(trs)
        kept |= t_kept
        for it, rj in t_rejected.items():
            rejected.setdefault(it, rj)
    item_of_row = {id(r): r.get("_item") for trs in rows.values() for r in trs}
    for it, why in check_placeholders(rows).items():  # source text must not inject placeholders
        kept.discard(it)
        rejected[it] = Reject(src, it, "rows", "placeholder_in_text", why)
    for it in items:
        if it in kept:
            rejected.pop(it, None)
        elif it not in rejected:
            rejected[it] = Reject(src, it, "rows", "no_rows", "item produced no row")
    out["rejects"] = [rejected[it] for it in items if it in rejected] + [
        r for it, r in rejected.items() if it not in set(items)]
    if any(rows.values()):
        out["image"] = {"image_id": img.image_id, "bytes": img.data, "format": img.format,
                        "width": img.width, "height": img.height, "split": split}
        out["ref"] = {"image_id": img.image_id, "source": src, "source_path": ref.source_path, "group": ref.group}
    out["rows"] = dict(rows)
    out["row_items"] = {t: [item_of_row.get(id(r)) for r in trs] for t, trs in rows.items()}
    return out
