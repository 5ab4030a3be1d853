"""The embedded default's VQA, caption and RefCOCO files, checked against the drawn maps.

Every fact is recomputed here from the written instanceIds/labelIds PNGs and pixels, with
other code than :mod:`owl_data.sources.synthetic.tasks`: a colour is the most frequent basic term
of the pixels of the visible mask by the description generator's perceptual namer
(:func:`owl_data.generators.colour.pixel_terms`, CIELAB), not by the palette vote.
"""

from __future__ import annotations

import json
import pickle
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from owl_data.generators.colour import BASIC_TERMS, pixel_terms
from owl_data.generators.scene_facts import rgb_colour_name
from owl_data.sources.synthetic.scenes import CLOTHES, write_default_sources
from owl_data.sources.synthetic.tasks import CLOTHES_NAMES, MIN_VISIBLE_PX

CAR, PERSON, LIGHT, BUILDING, SKY = 26, 24, 19, 11, 23


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tasks") / "scenes"
    write_default_sources(root, seed=0, train=12, val=4)
    return root


class Frame:
    def __init__(self, root: Path, coco_file: str) -> None:
        coco = root / "coco" / coco_file
        frames = {p.read_bytes(): p for p in root.glob("leftImg8bit/*/*/*_leftImg8bit.png")}
        src = frames[coco.read_bytes()]  # the COCO copy is a byte copy of one drawn frame
        stem = src.name[: -len("_leftImg8bit.png")]
        gt = root / "gtFine" / src.parts[-3] / src.parts[-2]
        self.rgb = np.array(Image.open(src).convert("RGB"))
        self.ids = np.array(Image.open(gt / f"{stem}_gtFine_instanceIds.png")).astype(np.int64)
        self.labels = np.array(Image.open(gt / f"{stem}_gtFine_labelIds.png"))

    def things(self, cls: int) -> list[dict]:
        out = []
        for v in np.unique(self.ids).tolist():
            if v // 1000 == cls and v >= 1000:
                m = self.ids == v
                rows, cols = np.nonzero(m)
                out.append({"area": int(m.sum()), "colour": _plurality(self.rgb[m]),
                            "box": [int(cols.min()), int(rows.min()), int(cols.max() - cols.min() + 1),
                                    int(rows.max() - rows.min() + 1)],
                            "cx": (cols.min() + cols.max() + 1) / 2})
        return out


def _plurality(px: np.ndarray) -> str:
    """The most frequent basic term of (N, 3) uint8 pixels (ties: the first in BASIC_TERMS)."""
    return BASIC_TERMS[int(np.argmax(np.bincount(pixel_terms(px), minlength=len(BASIC_TERMS))))]


def _frames(root: Path) -> dict[int, tuple[str, Frame]]:
    out = {}
    for sub in ("train2014", "val2014"):
        caps = json.loads((root / "coco" / "annotations" / f"captions_{sub}.json").read_text())
        for im in caps["images"]:
            out[im["id"]] = (sub, Frame(root, f"{sub}/{im['file_name']}"))
    return out


def _majority(answers: list[dict]) -> str:
    c = Counter(a["answer"] for a in answers)
    return next(a["answer"] for a in answers if c[a["answer"]] == max(c.values()))


def test_vqa_answers_are_true_of_the_drawing(root):
    frames = _frames(root)
    asked_sky = 0
    for sub in ("train2014", "val2014"):
        qs = json.loads((root / "coco" / "annotations" / f"v2_OpenEnded_mscoco_{sub}_questions.json").read_text())
        ans = {a["question_id"]: a for a in json.loads(
            (root / "coco" / "annotations" / f"v2_mscoco_{sub}_annotations.json").read_text())["annotations"]}
        per_image: dict[int, list[str]] = {}
        for q in qs["questions"]:
            f = frames[q["image_id"]][1]
            truth = _majority(ans[q["question_id"]]["answers"])
            text = q["question"]
            per_image.setdefault(q["image_id"], []).append(text)
            if text == "How many cars are there?":
                assert truth == str(len(f.things(CAR)))
            elif text == "How many people are there?":
                assert truth == str(len(f.things(PERSON)))
            elif text == "Is there a traffic light?":
                assert truth == ("yes" if (f.labels == LIGHT).any() else "no")
            elif text == "What color is the sky?":
                assert (f.labels == SKY).any() and truth == "blue"
                asked_sky += 1
            elif text == "What color is the leftmost car?":
                cars = sorted((c for c in f.things(CAR) if c["area"] >= MIN_VISIBLE_PX), key=lambda c: c["cx"])
                assert truth == cars[0]["colour"], (truth, cars)
        for image_id, texts in per_image.items():
            f = frames[image_id][1]
            assert ("What color is the sky?" in texts) == bool((f.labels == SKY).any())
            assert ("What color is the leftmost car?" in texts) == any(
                c["area"] >= MIN_VISIBLE_PX for c in f.things(CAR))
    assert asked_sky > 0


def test_captions_are_true_of_the_drawing(root):
    frames = _frames(root)
    words = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
    for sub in ("train2014", "val2014"):
        caps = json.loads((root / "coco" / "annotations" / f"captions_{sub}.json").read_text())
        for c in caps["annotations"]:
            f = frames[c["image_id"]][1]
            text = c["caption"]
            m = re.match(r"A street scene with (\w+) cars? and (\w+) (?:person|people)\.", text)
            if m:
                assert (words[m.group(1)], words[m.group(2)]) == (len(f.things(CAR)), len(f.things(PERSON)))
            if "blue sky" in text:
                assert (f.labels == SKY).any()
            if "buildings" in text:
                assert (f.labels == BUILDING).any()
            if "traffic lights" in text:
                assert (f.labels == LIGHT).any()
            for colour in re.findall(r"(\w+) car\b", text):
                if colour not in words and colour != "no":
                    assert colour in {t["colour"] for t in f.things(CAR)}, (text, f.things(CAR))


def test_every_referring_expression_names_one_object(root):
    frames = _frames(root)
    refs = pickle.loads((root / "coco" / "refcoco" / "refs(unc).p").read_bytes())
    anns = {a["id"]: a for a in json.loads((root / "coco" / "refcoco" / "instances.json").read_text())["annotations"]}
    assert len(refs) >= 20
    clothes = {n: rgb_colour_name(c) for c, n in zip(CLOTHES, CLOTHES_NAMES)}  # "dark blue" reads as blue
    assert len(set(clothes.values())) == len(clothes)
    for r in refs:
        f = frames[r["image_id"]][1]
        cls = CAR if r["category_id"] == 3 else PERSON
        sent = r["sentences"][0]["sent"]
        colour = sent.removeprefix("the ").removesuffix(" car").removeprefix("person in ")
        colour = clothes.get(colour, colour) if cls == PERSON else colour
        same = [t for t in f.things(cls) if t["colour"] == colour]
        assert len(same) == 1, (sent, f.things(cls))  # the colour tells one object of the category
        assert anns[r["ann_id"]]["bbox"] == same[0]["box"]
