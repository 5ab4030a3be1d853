"""The embedded default's VQA, caption and referring-expression files (synthetic).

:func:`owl_data.sources.synthetic.scenes.write_default_scenes` draws street scenes in the Cityscapes
layout; :func:`write_task_files` reads them back (the written instanceIds/labelIds maps and
pixels, nothing else) and writes, for the same images, the public formats of the other
three tasks, so that the real readers of those formats run in the demo:

```
ROOT/coco/train2014/COCO_train2014_<id:012d>.png     byte copies of the drawn frames
ROOT/coco/val2014/COCO_val2014_<id:012d>.png         (stored once in the corpus)
ROOT/coco/annotations/v2_OpenEnded_mscoco_<sub>_questions.json   VQA v2 questions
ROOT/coco/annotations/v2_mscoco_<sub>_annotations.json           VQA v2 answers (10 each)
ROOT/coco/annotations/captions_<sub>.json                        COCO captions (5 each)
ROOT/coco/refcoco/refs(unc).p, instances.json        RefCOCO-style refs (plain dicts)
```

Every answer, caption and expression is computed from the drawn objects: counts of the
visible cars and people (instanceIds), colours as the majority of the palette colours the
object was painted in (read from its pixels), presence of traffic lights, poles, signs,
trees, buildings and sky (labelIds: a frame without sky gets no sky question), and
left/right order of visible mask centres. Colours are stated only for objects of at least
``MIN_VISIBLE_PX`` visible pixels, and an object is referred to only when no other object
of its category shares its colour, so every expression names one box. ``train`` frames go
to ``train2014``, ``val`` frames to ``val2014``; RefCOCO refs carry the frame's split.
"""

from __future__ import annotations

import json
import pickle
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from owl_data.sources.synthetic.palette import CAR_COLOUR_NAMES, CAR_PAINTS, CLOTHES_NAMES, CLOTHES_PAINTS, SKIN, WHEEL

__all__ = ["write_task_files", "task_specs", "CAR_COLOUR_NAMES", "CLOTHES_NAMES"]

_TRAFFIC_LIGHT, _TRAFFIC_SIGN, _POLE, _BUILDING, _VEGETATION, _SKY = 19, 20, 17, 11, 21, 23  # Cityscapes ids
_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_COCO_CATEGORY = {"person": 1, "car": 3}
MIN_VISIBLE_PX = 100
"""Objects with fewer visible pixels are counted but never referred to or described."""


@dataclass
class _Object:
    category: str
    colour: str
    x: int
    y: int
    w: int
    h: int
    area: int

    @property
    def cx(self) -> float:
        return self.x + self.w / 2


def _colour(pixels: np.ndarray, palette: list[tuple[tuple[int, int, int], str | None]]) -> str:
    """Majority over the pixels of their nearest palette colour (None entries are ignored)."""
    cols = np.asarray([c for c, _ in palette], dtype=np.float64)
    d = ((pixels[:, None, :].astype(np.float64) - cols[None]) ** 2).sum(-1)
    votes = np.bincount(d.argmin(1), minlength=len(palette))
    for i in np.argsort(-votes, kind="stable"):
        if palette[i][1] is not None:
            return palette[i][1]
    return "grey"


def _objects(rgb: np.ndarray, inst: np.ndarray) -> list[_Object]:
    car_pal = [(p.body, p.name) for p in CAR_PAINTS] + [(p.window, p.name) for p in CAR_PAINTS] + [(WHEEL, None)]
    person_pal = [(p.rgb, p.name) for p in CLOTHES_PAINTS] + [(SKIN, None)]
    out = []
    for v in np.unique(inst):
        if v < 1000 or v // 1000 not in (24, 26):  # Cityscapes ids: person 24, car 26
            continue
        mask = inst == v
        rows, cols = np.nonzero(mask)
        cat = "car" if v // 1000 == 26 else "person"
        colour = _colour(rgb[mask], car_pal if cat == "car" else person_pal)
        out.append(_Object(cat, colour, int(cols.min()), int(rows.min()), int(cols.max() - cols.min() + 1),
                           int(rows.max() - rows.min() + 1), int(mask.sum())))
    return out


def _n(k: int) -> str:
    return _NUMBERS[k] if k < len(_NUMBERS) else str(k)


def _questions(objs: list[_Object], labels: np.ndarray) -> list[tuple[str, list[str]]]:
    """(question, ten answers) computed from the frame; the majority answer is the truth."""
    cars = [o for o in objs if o.category == "car"]
    people = [o for o in objs if o.category == "person"]
    qs = [
        ("How many cars are there?", [str(len(cars))] * 7 + [_n(len(cars))] * 2 + [str(len(cars) + 1)]),
        ("How many people are there?", [str(len(people))] * 7 + [_n(len(people))] * 2 + [str(max(len(people) - 1, 0))]),
        ("Is there a traffic light?", ["yes" if (labels == _TRAFFIC_LIGHT).any() else "no"] * 9 + ["no"]),
        ("Is there a bus?", ["no"] * 9 + ["yes"]),
    ]
    if (labels == _SKY).any():  # the drawn sky is Cityscapes' sky colour, a steel blue
        qs.append(("What color is the sky?", ["blue"] * 8 + ["light blue"] * 2))
    qs.append(("What is the weather like?", ["sunny"] * 4 + ["clear"] * 4 + ["cloudy"] * 2))  # a tie: first given wins
    visible = sorted((o for o in cars if o.area >= MIN_VISIBLE_PX), key=lambda o: o.cx)
    if visible:
        qs.append(("What color is the leftmost car?", [visible[0].colour] * 8 + [visible[-1].colour] * 2))
    return qs


def _things(k: int, one: str, many: str) -> str:
    return f"{_n(k)} {one if k == 1 else many}"


def _captions(objs: list[_Object], labels: np.ndarray) -> list[str]:
    """Five captions, each true of the frame (counts, what is present, colours of visible cars)."""
    cars = sorted((o for o in objs if o.category == "car"), key=lambda o: o.cx)
    people = [o for o in objs if o.category == "person"]
    nc, np_ = len(cars), len(people)
    buildings, sky = (labels == _BUILDING).any(), (labels == _SKY).any()
    things = [n for n, lid in (("greenery", _VEGETATION), ("traffic lights", _TRAFFIC_LIGHT), ("poles", _POLE),
                               ("traffic signs", _TRAFFIC_SIGN)) if (labels == lid).any()]
    street = "A city street lined with buildings" if buildings else "A street"
    caps = [
        f"A street scene with {_things(nc, 'car', 'cars')} and {_things(np_, 'person', 'people')}.",
        street + (" under a blue sky." if sky else "."),
        f"{_things(np_, 'person', 'people').capitalize()} and {_things(nc, 'car', 'cars')} on a street.",
        "A drawn street view with " + (", ".join(things[:-1]) + " and " + things[-1] if len(things) > 1
                                       else (things[0] if things else "a road")) + ".",
    ]
    shown = [o for o in cars if o.area >= MIN_VISIBLE_PX]
    behind = " in front of buildings" if buildings else ""
    if len(shown) >= 2:
        caps.append(f"A {shown[0].colour} car and a {shown[-1].colour} car on a road{behind}.")
    elif shown:
        caps.append(f"A {shown[0].colour} car on a road{behind}.")
    else:
        caps.append(f"A road{behind}." if buildings else "A road with no car in sight.")
    return caps


def _refs(objs: list[_Object]) -> list[tuple[_Object, list[str]]]:
    """Expressions for the objects whose colour no other object of their category shares."""
    shared = Counter((o.category, o.colour) for o in objs)
    out = []
    for o in objs:
        if o.area < MIN_VISIBLE_PX or shared[(o.category, o.colour)] > 1:
            continue
        if o.category == "car":
            out.append((o, [f"the {o.colour} car", f"{o.colour} car"]))
        else:
            out.append((o, [f"the person in {o.colour}", f"person wearing {o.colour}"]))
    return out


def write_task_files(root: Path) -> list[tuple[str, str]]:
    """Write the VQA v2, COCO captions and RefCOCO files for the scenes under ``root``.

    Args:
        root: a folder written by :func:`owl_data.sources.synthetic.scenes.write_default_scenes`.

    Returns:
        ``[(source name, spec)]`` for ``vqav2``, ``coco_captions`` and ``refcoco``.
    """
    root = Path(root)
    coco = root / "coco"
    ann_dir = coco / "annotations"
    ref_dir = coco / "refcoco"
    ann_dir.mkdir(parents=True, exist_ok=True)
    ref_dir.mkdir(parents=True, exist_ok=True)
    frames = sorted(root.glob("leftImg8bit/*/*/*_leftImg8bit.png"),
                    key=lambda p: (p.parts[-3] != "train", p.as_posix()))
    per_sub: dict[str, dict[str, list]] = {}
    instances: dict[str, list] = {"images": [], "annotations": [],
                                  "categories": [{"id": i, "name": n} for n, i in _COCO_CATEGORY.items()]}
    refs: list[dict] = []
    for image_id, frame in enumerate(frames, 1):
        split = frame.parts[-3]
        sub = f"{split}2014"
        stem = frame.name[: -len("_leftImg8bit.png")]
        gt = root / "gtFine" / split / frame.parts[-2]
        rgb = np.array(Image.open(frame).convert("RGB"))
        inst = np.array(Image.open(gt / f"{stem}_gtFine_instanceIds.png"))
        labels = np.array(Image.open(gt / f"{stem}_gtFine_labelIds.png"))
        objs = _objects(rgb, inst)
        file_name = f"COCO_{sub}_{image_id:012d}.png"
        (coco / sub).mkdir(parents=True, exist_ok=True)
        (coco / sub / file_name).write_bytes(frame.read_bytes())
        h, w = inst.shape
        d = per_sub.setdefault(sub, {"questions": [], "annotations": [], "images": [], "captions": []})
        d["images"].append({"id": image_id, "file_name": file_name, "width": w, "height": h})
        for k, (q, answers) in enumerate(_questions(objs, labels)):
            qid = image_id * 1000 + k
            d["questions"].append({"image_id": image_id, "question": q, "question_id": qid})
            d["annotations"].append({"question_id": qid, "image_id": image_id, "answers": [
                {"answer": a, "answer_confidence": "yes", "answer_id": n + 1} for n, a in enumerate(answers)]})
        for k, c in enumerate(_captions(objs, labels)):
            d["captions"].append({"id": image_id * 100 + k, "image_id": image_id, "caption": c})
        instances["images"].append({"id": image_id, "file_name": f"{sub}/{file_name}", "width": w, "height": h})
        for o, sents in _refs(objs):
            ann_id = len(instances["annotations"]) + 1
            instances["annotations"].append({
                "id": ann_id, "image_id": image_id, "category_id": _COCO_CATEGORY[o.category],
                "bbox": [o.x, o.y, o.w, o.h], "area": o.area, "iscrowd": 0, "segmentation": []})
            refs.append({"ref_id": len(refs), "ann_id": ann_id, "image_id": image_id, "split": split,
                         "category_id": _COCO_CATEGORY[o.category], "file_name": file_name,
                         "sentences": [{"sent": s, "raw": s, "tokens": s.split(), "sent_id": len(refs) * 10 + n}
                                       for n, s in enumerate(sents)]})
    info = {"description": "Owl-VL synthetic street scenes (drawn, not photographed)"}
    for sub, d in per_sub.items():
        common = {"info": info, "data_subtype": sub, "task_type": "Open-Ended", "data_type": "mscoco"}
        (ann_dir / f"v2_OpenEnded_mscoco_{sub}_questions.json").write_text(
            json.dumps({**common, "questions": d["questions"]}, indent=1))
        (ann_dir / f"v2_mscoco_{sub}_annotations.json").write_text(
            json.dumps({**common, "annotations": d["annotations"]}, indent=1))
        (ann_dir / f"captions_{sub}.json").write_text(
            json.dumps({"info": info, "images": d["images"], "annotations": d["captions"]}, indent=1))
    (ref_dir / "instances.json").write_text(json.dumps(instances, indent=1))
    with open(ref_dir / "refs(unc).p", "wb") as f:
        pickle.dump(refs, f, protocol=2)
    return task_specs(root)


def task_specs(root: Path) -> list[tuple[str, str]]:
    """``[(source name, spec)]`` of the task files :func:`write_task_files` wrote under ``root``."""
    coco = Path(root) / "coco"
    return [("vqav2", str(coco)), ("coco_captions", str(coco)), ("refcoco", f"{coco / 'refcoco'}?images={coco}")]
