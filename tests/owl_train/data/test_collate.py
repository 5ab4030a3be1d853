"""Rendering, labels, truncation, positions, packing and virtual tokens of the data path."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from owl_data.conventions.coords import parse_box, parse_point, unit
from owl_train.data import INLINE_POINT_PHRASE, Collator, DataConfig, pack_rows
from owl_train.model.rope import get_rope_index
from owl_train.model.tiny import init_tiny
from owl_train.stages.checkpoints import load_tokenizer


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    from transformers import AutoTokenizer

    d = init_tiny(tmp_path_factory.mktemp("tiny"))
    return AutoTokenizer.from_pretrained(d)


def image(w: int = 84, h: int = 56, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def row(user: str = "<image>What is this?", answer: str = "A red car.", point=None, bbox=None, rid: str = "r",
        img=None, task: str = "vqa", turns=None) -> dict:
    conv = turns or [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return {"id": rid, "task": task, "image": image() if img is None else img, "conversations": conv,
            "point": point, "bbox": bbox}


def runs(mask: torch.Tensor) -> list[tuple[int, int]]:
    """Maximal [start, stop) runs of True."""
    out, start = [], None
    for i, v in enumerate(mask.tolist() + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start, i))
            start = None
    return out


def test_two_round_labels_decode_to_the_assistant_texts(tok):
    c = Collator(tok, DataConfig())
    answers = ["The car is red, parked near the bakery.", "Yes: 3 people wait at (120,340)."]
    r = row(turns=[{"role": "user", "content": "<image><point>What is this?"},
                   {"role": "assistant", "content": answers[0]},
                   {"role": "user", "content": "Is it safe to cross now?"},
                   {"role": "assistant", "content": answers[1]}], point=(0.3, 0.6))
    e = c.encode(r)
    sup = e["labels"] != -100
    assert torch.equal(e["labels"][sup], e["input_ids"][sup])
    got = [tok.decode(e["input_ids"][a:b].tolist()) for a, b in runs(sup)]
    assert got == [a + "<|im_end|>" for a in answers]
    sp = c.special
    for t in (sp.image_pad, sp.point, sp.vision_start, sp.vision_end, sp.im_start):
        assert not sup[e["input_ids"] == t].any()
    text = tok.decode(e["input_ids"].tolist())
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                           "<|vision_start|><|image_pad|>")
    assert "<|image_pad|><|vision_end|><|point|>What is this?<|im_end|>\n<|im_start|>assistant\n" in text
    assert text.endswith(answers[1] + "<|im_end|>\n")
    # the batch keeps the same labels, padding unsupervised
    b = c([r, row(rid="short")])
    assert torch.equal(b["labels"][0, :e["labels"].numel()], e["labels"])
    assert (b["labels"][1][b["attention_mask"][1] == 0] == -100).all()


def test_system_prompt_kept_or_none(tok):
    r = row(turns=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "<image>Hi"},
                   {"role": "assistant", "content": "Hello."}])
    text = tok.decode(Collator(tok, DataConfig()).encode(r)["input_ids"].tolist())
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n") and text.count("system") == 1
    text = tok.decode(Collator(tok, DataConfig(system_prompt=None)).encode(row())["input_ids"].tolist())
    assert text.startswith("<|im_start|>user\n")


def test_image_block_never_cut(tok):
    c = Collator(tok, DataConfig(max_length=56))  # 6 image tokens; the block ends at token 32, labels from 43
    long_answer = "the red car waits at the crossing near the bakery " * 10
    kept = c.encode(row(answer=long_answer))
    assert kept is not None and kept["input_ids"].numel() == 56  # truncated after the image
    assert int((kept["input_ids"] == c.special.image_pad).sum()) == 6 and (kept["labels"] != -100).any()
    long_system = [{"role": "system", "content": "the red car waits at the crossing " * 10},
                   {"role": "user", "content": "<image>What?"}, {"role": "assistant", "content": "A car."}]
    b = c([row(rid="a", answer=long_answer), row(rid="b", turns=long_system), row(rid="c")])
    assert b["ids"] == ["a", "c"] and b["dropped"] == {"truncated_image": 1}
    assert c.dropped["truncated_image"] == 1
    assert int((b["input_ids"] == c.special.image_pad).sum()) == 12 and b["image_grid_thw"].shape == (2, 3)
    # the cut would leave no supervised token: dropped too, never cut inside the image
    late = [{"role": "user", "content": "<image>" + "the red car waits " * 8}, {"role": "assistant", "content": "x"}]
    assert c.encode(row(turns=late)) is None and c.dropped["truncated_no_labels"] == 1


def _alone(c: Collator, e: dict) -> torch.Tensor:
    pts = e["points"] if e["points"].numel() else None
    pos, _ = get_rope_index(e["input_ids"][None], e["image_grid_thw"], image_token_id=c.special.image_pad,
                            point_token_id=c.special.point if pts is not None else None, points=pts)
    return pos[:, 0]  # (3, L)


def _mixed_rows(n: int = 5) -> list[dict]:
    out = []
    for i in range(n):
        q = "<image><point>" + "What is it? " * (i % 3) if i % 2 else "<image>" + "Describe it. " * (i + 1)
        out.append(row(user=q, answer="A car. " * (1 + 2 * i), point=(0.1 + 0.15 * i, 0.8 - 0.1 * i) if i % 2 else None,
                       rid=f"r{i}", img=image(84 + 28 * i, 56 + 28 * (i % 2), seed=i)))
    return out


@pytest.mark.parametrize("side", ["right", "left"])
def test_batch_positions_equal_each_row_alone(tok, side):
    c = Collator(tok, DataConfig(padding_side=side, pad_to_multiple_of=8))
    rows = _mixed_rows()
    b = c(rows)
    B, L = b["input_ids"].shape
    assert L % 8 == 0 and b["position_ids"].shape == (3, B, L) and b["points"].shape == (2, 2)
    for i, r in enumerate(rows):
        e = c.encode(r)
        n = e["input_ids"].numel()
        sl = slice(L - n, L) if side == "left" else slice(0, n)
        assert torch.equal(b["input_ids"][i, sl], e["input_ids"]) and b["attention_mask"][i, sl].all()
        assert b["attention_mask"][i].sum() == n
        torch.testing.assert_close(b["position_ids"][:, i, sl], _alone(c, e).to(b["position_ids"].dtype))
    # no points in the batch: integer ids, equal to the same call without points
    b2 = c([r for r in rows if r["point"] is None])
    assert b2["position_ids"].dtype == torch.long and b2["points"] is None


def test_packing_positions_per_segment(tok):
    cfg = DataConfig(pack=True, max_length=160, pad_to_multiple_of=8)
    c = Collator(tok, cfg)
    rows = _mixed_rows(6)
    enc = [c.encode(r) for r in rows]
    b = c(rows)
    groups = pack_rows(enc, cfg.max_length)
    assert b["input_ids"].shape[0] == len(groups) < len(rows)
    assert b["ids"] == [e["id"] for g in groups for e in g]
    grid_rows = torch.cat([e["image_grid_thw"] for g in groups for e in g])
    assert torch.equal(b["image_grid_thw"], grid_rows)
    for i, g in enumerate(groups):
        at = 0
        for k, e in enumerate(g):
            n = e["input_ids"].numel()
            sl = slice(at, at + n)
            assert (b["segment_ids"][i, sl] == k).all()
            assert torch.equal(b["labels"][i, sl], e["labels"])
            torch.testing.assert_close(b["position_ids"][:, i, sl], _alone(c, e).to(b["position_ids"].dtype))
            at += n
        assert (b["segment_ids"][i, at:] == -1).all() and not b["attention_mask"][i, at:].any()


def test_pack_rows_first_fit_is_deterministic():
    rows = [{"id": str(n), "input_ids": torch.zeros(n)} for n in (6, 5, 4, 3, 2, 7)]
    groups = pack_rows(rows, 10)
    assert [[r["id"] for r in g] for g in groups] == [["6", "4"], ["5", "3", "2"], ["7"]]
    assert groups == pack_rows(rows, 10)
    with pytest.raises(ValueError, match="max_length"):
        pack_rows(rows, 6)


def test_virtual_tokens_after_point(tok):
    N = 4
    c = Collator(tok, DataConfig(num_virtual_tokens=N))
    e = c.encode(row(user="<image><point>", answer="A white delivery truck.", point=(0.5, 0.5), task="point_vqa"))
    ids, vm = e["input_ids"], e["virtual_mask"]
    p = int((ids == c.special.point).nonzero())
    assert vm.sum() == N and vm[p + 1:p + 1 + N].all() and (ids[vm] == c.special.pad).all()
    assert ids[p - 1] == c.special.vision_end and ids[p + 1 + N] == tok.convert_tokens_to_ids("<|im_end|>")
    assert (e["labels"][vm] == -100).all()
    b = c([row(rid="q", point=(0.2, 0.2), user="<image><point>What is it?"),
           row(user="<image><point>", answer="A truck.", point=(0.5, 0.5))])
    assert b["virtual_mask"][0].sum() == 0 and b["virtual_mask"][1].sum() == N  # a question: no virtual tokens
    pos = b["position_ids"][:, 1]
    v = b["virtual_mask"][1].nonzero().view(-1)
    ve = v[0] - 2  # <|vision_end|>, then <|point|>
    assert torch.equal(pos[0, v], pos[1, v]) and torch.equal(pos[0, v], pos[2, v])  # text ids: t = h = w
    torch.testing.assert_close(pos[0, v], pos[0, ve] + 1 + torch.arange(N, dtype=pos.dtype))
    # without virtual tokens configured the stage-2 row is plain
    assert Collator(tok, DataConfig()).encode(row(user="<image><point>", point=(0.5, 0.5)))["virtual_mask"].sum() == 0


@pytest.mark.parametrize("fmt", ["qwen", "norm", "pixel"])
def test_boxes_rendered_within_one_unit(tok, fmt):
    c = Collator(tok, DataConfig(box_format=fmt))
    bbox = [0.173828125, 0.6875, 0.384765625, 0.99990]
    e = c.encode(row(user="<image>Locate the white car.", answer="<box>", bbox=bbox, task="grounding"))
    sup = e["labels"] != -100
    text = tok.decode(e["input_ids"][sup].tolist()).removesuffix("<|im_end|>")
    size = (84, 56)  # the 84x56 test image is not resized
    got, _ = parse_box(text, fmt, size)
    ux, uy = unit(fmt, size)
    assert all(abs(g - v) <= u + 1e-9 for g, v, u in zip(got, bbox, (ux, uy, ux, uy))), (text, got)
    if fmt == "qwen":
        assert text == "<|box_start|>(174,688),(385,999)<|box_end|>"
    # a box in the question is rendered, unsupervised
    e = c.encode(row(user="<image>What is in <box>?", answer="a car", bbox=bbox))
    assert "<box>" not in tok.decode(e["input_ids"].tolist())


def test_inline_point_and_point_answers(tok):
    c = Collator(tok, DataConfig())
    e = c.encode(row(user="<image>Is <point> a traffic sign?", answer="No.", point=(0.25, 0.75)))
    text = tok.decode(e["input_ids"].tolist())
    assert f"<|vision_end|><|point|>Is {INLINE_POINT_PHRASE} a traffic sign?" in text
    assert e["points"].tolist() == [[0.25, 0.75]]
    e = c.encode(row(user="<image>Where is the bus?", answer="<point>", point=(0.25, 0.75)))
    assert int((e["input_ids"] == c.special.point).sum()) == 0 and e["points"].shape == (0, 2)
    ans = tok.decode(e["input_ids"][e["labels"] != -100].tolist()).removesuffix("<|im_end|>")
    assert parse_point(ans, "qwen") == (0.25, 0.75)


def test_drop_reasons_are_counted(tok):
    c = Collator(tok, DataConfig())
    bad = [row(user="<image><point>What?", point=None),                  # missing_point
           row(user="<image>What is <|image_pad|>?"),                    # special_token_in_text
           row(img=Image.new("RGB", (3000, 10))),                        # bad_image (aspect > 200)
           row(user="What?"),                                            # image_mismatch
           row(user="<image>Where?", answer="<box>", bbox=None)]         # missing_box
    b = c(bad + [row(rid="ok")])
    assert b["ids"] == ["ok"]
    assert b["dropped"] == {"missing_point": 1, "special_token_in_text": 1, "bad_image": 1, "image_mismatch": 1,
                            "missing_box": 1}
    empty = c(bad[:1])
    assert empty["input_ids"].shape == (0, 0) and empty["ids"] == []


def test_generation_prompt(tok):
    c = Collator(tok, DataConfig())
    e = c.encode(row(turns=[{"role": "user", "content": "<image><point>"}], point=(0.5, 0.5)),
                 add_generation_prompt=True)
    assert tok.decode(e["input_ids"].tolist()).endswith("<|point|><|im_end|>\n<|im_start|>assistant\n")
    assert (e["labels"] == -100).all()


def test_bare_tokenizers_tokenizer_gives_the_same_ids(tok):
    from tokenizers import Tokenizer

    bare = Tokenizer.from_file(str(tok.name_or_path) + "/tokenizer.json")
    r = row(user="<image><point>What is it?", point=(0.4, 0.4), answer="<box> is a car.", bbox=[0.1, 0.2, 0.3, 0.4])
    a, b = Collator(tok, DataConfig()).encode(r), Collator(bare, DataConfig()).encode(r)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
    assert Collator(bare, DataConfig()).special.pad == tok.pad_token_id


def test_tokenizer_without_point_token_is_refused(tmp_path):
    from tokenizers import Tokenizer, models

    t = Tokenizer(models.WordLevel({"<|im_start|>": 0, "a": 1}, unk_token="a"))
    with pytest.raises(ValueError, match="<\\|point\\|>"):
        Collator(t, DataConfig())


IMG = Image.new("RGB", (64, 48), (10, 200, 30))


def U(s):
    return {"role": "user", "content": s}


def A(s):
    return {"role": "assistant", "content": s}


def _row(conv, **kw):
    return {"id": "r", "task": "vqa", "image": IMG, "point": None, "bbox": None, "conversations": conv, **kw}


def _truncated_jpeg() -> Image.Image:
    buf = io.BytesIO()
    Image.effect_noise((256, 192), 64).convert("RGB").save(buf, "PNG")
    data = buf.getvalue()
    img = Image.open(io.BytesIO(data[: len(data) // 2]))  # header fine, pixel data cut
    return img


@pytest.fixture(scope="module")
def coll(tmp_path_factory):
    """A collator over a fresh tiny model's tokenizer, as the trainer loads it."""
    tiny = init_tiny(tmp_path_factory.mktemp("tiny_coll"))
    return Collator(load_tokenizer(tiny), DataConfig(max_pixels=28 * 28 * 16, max_length=512))


DROPS = {
    "empty_answer": _row([U("<image>What?"), A("  ")]),
    "missing_box": _row([U("<image>Where?"), A("<box>")]),
    "bad_box_outside": _row([U("<image>Where?"), A("<box>")], bbox=[0.2, 0.2, 1.5, 0.9]),
    "bad_box_inverted": _row([U("<image>Where?"), A("<box>")], bbox=[0.8, 0.8, 0.2, 0.2]),
    "bad_box_nan": _row([U("<image>Where?"), A("<box>")], bbox=[float("nan"), 0.2, 0.5, 0.9]),
    "bad_box_short": _row([U("<image>Where?"), A("<box>")], bbox=[0.2, 0.2]),
    "bad_point_outside": _row([U("<image><point>What?"), A("x")], point=(1.5, -0.2)),
    "bad_point_nan": _row([U("<image><point>What?"), A("x")], point=(float("nan"), 0.5)),
    "bad_point_text": _row([U("<image><point>What?"), A("x")], point="0.5"),
    "bad_image_aspect": _row([U("<image>What?"), A("x")], image=Image.new("RGB", (10000, 20))),
    "bad_image_path": _row([U("<image>What?"), A("x")], image="foo.png"),
    "bad_image_bytes": _row([U("<image>What?"), A("x")], image=b"\x89PNG"),
    "special_token_in_text": _row([U("<image>What? <|im_start|>system"), A("x")]),
    "truncated_no_labels": _row([U("<image>" + "word " * 2000), A("x")]),
}


@pytest.mark.parametrize("name", sorted(DROPS))
def test_odd_rows_are_dropped_with_a_reason(coll, name):
    b = coll([DROPS[name], _row([U("<image>What?"), A("A car.")])])
    reason = name if name in ("empty_answer", "missing_box", "special_token_in_text", "truncated_no_labels") \
        else "_".join(name.split("_")[:2])
    assert b["dropped"] == {reason: 1} and b["input_ids"].shape[0] == 1


def test_truncated_image_data_is_dropped(coll):
    b = coll([_row([U("<image>What?"), A("x")], image=_truncated_jpeg())])
    assert b["dropped"] == {"bad_image": 1} and b["input_ids"].shape[0] == 0


@pytest.mark.parametrize("kw,conv", [
    ({"image": Image.new("RGB", (1, 1))}, None),
    ({"image": Image.new("L", (64, 48))}, None),
    ({"image": Image.new("RGBA", (64, 48))}, None),
    ({"point": (0.0, 0.0)}, [U("<image><point>What?"), A("x")]),
    ({"point": (1.0, 1.0)}, [U("<image><point>What?"), A("x")]),
    ({"bbox": [0.0, 0.0, 1.0, 1.0]}, [U("<image>Where?"), A("<box>")]),
    ({"bbox": [9, 9, 9, 9]}, None),  # a box the text does not use is not checked
    ({}, [{"role": "system", "content": "Be terse."}, U("<image>What?"), A("A car.")]),
    ({}, [U("<image>What?"), U("And?"), A("A car."), U("More?")]),
    ({}, [U("<image>Qu'est-ce? 日本語 🚗"), A("Une voiture 🚗 é " * 400)]),
])
def test_odd_but_valid_rows_are_kept(coll, kw, conv):
    b = coll([_row(conv or [U("<image>What?"), A("x")], **kw)])
    assert b["dropped"] == {} and b["input_ids"].shape == (1, min(512, b["input_ids"].shape[1]))
    assert (b["labels"] != -100).any() and b["position_ids"].float().isfinite().all()
