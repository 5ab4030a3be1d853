"""The data path of the point-grounding variants: settings taken from the model, the point's text
placement (a) and the foveal crop (e) in the collator."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from owl_train.data import Collator, DataConfig, data_config_for_model
from owl_train.model.rope import get_rope_index
from owl_train.model.tiny import init_tiny


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoTokenizer

    from owl_train.model.checkpoint import load_pretrained

    d = init_tiny(tmp_path_factory.mktemp("tiny"), variant="b_image")
    return AutoTokenizer.from_pretrained(d), load_pretrained(d).config


def image(w: int = 224, h: int = 112, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def row(point=(0.3, 0.6), img=None, user="<image><point>What is it?", rid="r") -> dict:
    return {"id": rid, "task": "point_vqa", "image": image() if img is None else img, "point": point, "bbox": None,
            "conversations": [{"role": "user", "content": user}, {"role": "assistant", "content": "A red car."}]}


def test_settings_come_from_the_model(tiny):
    _, cfg = tiny
    base = DataConfig(max_pixels=28 * 28 * 16, box_format="norm")
    same = data_config_for_model(base, cfg)
    assert same == base  # variant b: image placement, no crop
    a = data_config_for_model(base, dataclasses.replace(cfg, point_placement="text"))
    assert a.point_placement == "text" and a.foveal_crop_pixels == 0
    e = data_config_for_model(base, dataclasses.replace(cfg, foveal_crop=True, foveal_crop_pixels=112,
                                                        foveal_crop_fraction=0.5))
    assert (e.point_placement, e.foveal_crop_pixels, e.foveal_crop_fraction) == ("image", 112, 0.5)
    assert (e.max_pixels, e.box_format) == (base.max_pixels, "norm")  # the rest is kept
    # a model whose crop is off never gets crops, whatever its size setting
    assert data_config_for_model(e, dataclasses.replace(cfg, foveal_crop_pixels=112)).foveal_crop_pixels == 0


def test_bad_data_settings_name_the_field():
    with pytest.raises(ValueError, match="point_placement='grid'"):
        DataConfig(point_placement="grid")
    with pytest.raises(ValueError, match="foveal_crop_pixels=50"):
        DataConfig(foveal_crop_pixels=50)
    with pytest.raises(ValueError, match="foveal_crop_fraction=0"):
        DataConfig(foveal_crop_fraction=0)


def test_text_placement_in_the_collator(tiny):
    tok, _ = tiny
    rows = [row(), row(point=(0.9, 0.1), rid="s", user="<image><point>")]
    img_b = Collator(tok, DataConfig())(rows)
    txt_b = Collator(tok, DataConfig(point_placement="text"))(rows)
    assert torch.equal(img_b["input_ids"], txt_b["input_ids"])
    pt = tok.convert_tokens_to_ids("<|point|>")
    ve = tok.convert_tokens_to_ids("<|vision_end|>")
    for i in range(2):
        ids, pos = txt_b["input_ids"][i], txt_b["position_ids"][:, i]
        p = int((ids == pt).nonzero())
        assert ids[p - 1] == ve
        assert pos[:, p].tolist() == [float(pos[0, p - 1] + 1)] * 3  # the next text position, t = h = w
        assert pos[:, p + 1].tolist() == [float(pos[0, p - 1] + 2)] * 3
        ipos = img_b["position_ids"][:, i]
        assert ipos[1, p] != pos[1, p] and ipos[0, p + 1] == pos[0, p - 1] + 1  # (b): in the image frame
    expect, _ = get_rope_index(txt_b["input_ids"], txt_b["image_grid_thw"], txt_b["attention_mask"],
                               image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"), point_token_id=pt,
                               points=txt_b["points"], point_placement="text")
    assert torch.equal(txt_b["position_ids"], expect)


def _embed(model, tok, rows, max_pixels: int = DataConfig.max_pixels):
    b = Collator(tok, data_config_for_model(DataConfig(max_pixels=max_pixels), model.config))(rows)
    with torch.no_grad():
        x = model.embed(b["input_ids"], b["pixel_values"], b["image_grid_thw"], b["points"])
    return b, x[0]


def test_focus_locality_through_the_collator(tiny):
    from owl_train.model.model import OwlVL

    tok, cfg = tiny
    model = OwlVL(dataclasses.replace(cfg, point_focus=True)).reset_parameters(1, std=0.2).eval()
    img = image(224, 112)  # kept at its size: merged grid 4 x 8, cells of 28 x 28 pixels
    arr = np.asarray(img)
    # (0.3, 0.6): u = 0.3·8 − 0.5 = 1.9, v = 0.6·4 − 0.5 = 1.9 -> cells rows 1-2, columns 1-2: pixels [28, 84)
    point = (0.3, 0.6)
    far, near = arr.copy(), arr.copy()
    far[:, 140:] = 255 - far[:, 140:]  # columns 5-7: not next to the point
    far[:20, :] = 0  # and the top of row 0
    near[60:64, 60:64] = 255 - near[60:64, 60:64]  # inside cell (2, 2), weight 0.81
    b0, x0 = _embed(model, tok, [row(point, img)])
    bf, xf = _embed(model, tok, [row(point, Image.fromarray(far))])
    _, xn = _embed(model, tok, [row(point, Image.fromarray(near))])
    p = int((b0["input_ids"][0] == tok.convert_tokens_to_ids("<|point|>")).nonzero())
    assert not torch.equal(b0["pixel_values"], bf["pixel_values"])
    img_tok = b0["input_ids"][0] == tok.convert_tokens_to_ids("<|image_pad|>")
    assert not torch.allclose(xf[img_tok], x0[img_tok], atol=1e-4)  # the image tokens saw it (global ViT)
    assert torch.equal(xf[p], x0[p])  # the point token did not, bit for bit
    assert not torch.allclose(xn[p], x0[p], atol=1e-4)


# -- (e) the foveal crop ------------------------------------------------------------------------
def test_foveal_box_by_hand():
    from owl_train.data import foveal_box

    assert foveal_box(400, 200, (0.5, 0.5), 0.25) == (175, 75, 225, 125)  # side 0.25 · 200 = 50
    assert foveal_box(400, 200, (0.01, 0.99), 0.25) == (0, 150, 50, 200)  # shifted inside the image
    assert foveal_box(448, 224, (0.3, 0.6), 0.25) == (106, 106, 162, 162)  # centre (134.4, 134.4), side 56
    assert foveal_box(10, 10, (0.5, 0.5), 0.01) == (5, 5, 6, 6)  # at least one pixel


SMALL_BUDGET = 28 * 28 * 10  # a 448 x 224 image becomes 112 x 56 pixels: 2 x 4 merged tokens


def _crop_collator(tok, **kw):
    return Collator(tok, DataConfig(max_pixels=SMALL_BUDGET, foveal_crop_pixels=56, **kw))


def test_crop_tokens_pixels_and_box(tiny):
    from owl_train.data import preprocess_image

    tok, _ = tiny
    c = _crop_collator(tok)
    img = image(448, 224, seed=3)
    e = c.encode(row((0.3, 0.6), img))
    ids = e["input_ids"]
    crop, pt = tok.convert_tokens_to_ids("<|crop_pad|>"), tok.convert_tokens_to_ids("<|point|>")
    p = int((ids == pt).nonzero())
    assert (ids[p + 1:p + 5] == crop).all() and int((ids == crop).sum()) == 4  # 56 px -> 2 x 2 merged tokens
    assert tok.decode(ids[p + 5:p + 9].tolist()).startswith("What")
    assert (e["labels"][ids == crop] == -100).all()
    assert e["image_grid_thw"].tolist() == [[1, 4, 8], [1, 4, 4]]
    torch.testing.assert_close(e["crop_boxes"], torch.tensor([[106 / 448, 106 / 224, 162 / 448, 162 / 224]]))
    # the crop's 16 patch rows: the square of the *original* image, resized to 56 x 56
    fovea = img.crop((106, 106, 162, 162)).resize((56, 56), resample=Image.Resampling.BICUBIC)
    want, _ = preprocess_image(fovea, DataConfig(min_pixels=56 * 56, max_pixels=56 * 56))
    assert e["pixel_values"].shape[0] == 32 + 16 and torch.equal(e["pixel_values"][32:], want)
    small = img.resize((112, 56), resample=Image.Resampling.BICUBIC)  # what the image tokens see
    blurred = small.crop((26, 26, 40, 40)).resize((56, 56), resample=Image.Resampling.BICUBIC)
    assert not torch.allclose(preprocess_image(blurred, DataConfig(min_pixels=56 * 56, max_pixels=56 * 56))[0],
                              want, atol=0.1)
    # positions: each crop token at its centre in the image's rotary frame (merged 2 x 4), t = s
    b = c([row((0.3, 0.6), img)])
    pos = b["position_ids"][:, 0]
    s = pos[0, int((ids == tok.convert_tokens_to_ids("<|image_pad|>")).nonzero()[0])]
    x0, y0, x1, y1 = 106 / 448, 106 / 224, 162 / 448, 162 / 224
    for k in range(4):
        r, col = divmod(k, 2)
        x, y = x0 + (col + 0.5) / 2 * (x1 - x0), y0 + (r + 0.5) / 2 * (y1 - y0)
        want_pos = [float(s), float(s) + min(max(y * 2 - 0.5, 0), 1), float(s) + min(max(x * 4 - 0.5, 0), 3)]
        torch.testing.assert_close(pos[:, p + 1 + k], torch.tensor(want_pos), rtol=0, atol=1e-5)
    assert pos[0, p + 5] == pos[0, p - 1] + 1  # crop tokens do not move the text positions on


def test_crop_locality_near_pixels_change_far_pixels_are_bit_identical(tiny):
    from owl_train.model.model import OwlVL

    tok, cfg = tiny
    model = OwlVL(dataclasses.replace(cfg, foveal_crop=True)).reset_parameters(2, std=0.2).eval()
    img = image(448, 224, seed=4)
    arr = np.asarray(img)
    far, near = arr.copy(), arr.copy()
    far[:, 200:] = 255 - far[:, 200:]  # right half; the crop square is x, y in [106, 162)
    far[:100, :] = 0
    near[130:134, 130:134] = 255 - near[130:134, 130:134]
    crop = tok.convert_tokens_to_ids("<|crop_pad|>")
    out = {}
    for name, a in (("base", arr), ("far", far), ("near", near)):
        b, x = _embed(model, tok, [row((0.3, 0.6), Image.fromarray(a))])
        out[name] = (b, x)
    b0, x0 = out["base"]
    at = b0["input_ids"][0] == crop
    img_tok = b0["input_ids"][0] == tok.convert_tokens_to_ids("<|image_pad|>")
    assert int(at.sum()) == 4 and not torch.allclose(out["far"][1][img_tok], x0[img_tok], atol=1e-4)
    assert torch.equal(out["far"][0]["pixel_values"][-16:], b0["pixel_values"][-16:])
    assert torch.equal(out["far"][1][at], x0[at])  # bit for bit
    assert not torch.allclose(out["near"][1][at], x0[at], atol=1e-4)


def test_crop_batches_packing_and_virtual_tokens(tiny):
    tok, _ = tiny
    crop = tok.convert_tokens_to_ids("<|crop_pad|>")
    rows = [row((0.3, 0.6), image(448, 224, seed=1), rid="a"),
            {**row(None, image(112, 112, seed=2), user="<image>Describe it.", rid="b")},
            row((0.9, 0.1), image(224, 224, seed=3), user="<image><point>", rid="c")]
    for pack in (False, True):
        c = _crop_collator(tok, pack=pack, max_length=400)
        b = c(rows)
        enc = [c.encode(r) for r in rows]
        assert b["crop_boxes"].shape == (2, 4) and int((b["input_ids"] == crop).sum()) == 8
        assert torch.equal(b["image_grid_thw"], torch.cat([e["image_grid_thw"] for e in enc]))
        for e in enc:  # each row's positions as computed alone
            pts = e["points"] if e["points"].numel() else None
            alone, _ = get_rope_index(e["input_ids"][None], e["image_grid_thw"],
                                      image_token_id=c.special.image_pad, point_token_id=c.special.point,
                                      points=pts, crop_token_id=crop,
                                      crop_boxes=e["crop_boxes"] if e["crop_boxes"].numel() else None)
            n = e["input_ids"].numel()
            where = [(i, j) for i in range(b["input_ids"].shape[0]) for j in range(b["input_ids"].shape[1] - n + 1)
                     if torch.equal(b["input_ids"][i, j:j + n], e["input_ids"])]
            i, j = where[0]
            torch.testing.assert_close(b["position_ids"][:, i, j:j + n], alone[:, 0].to(torch.float32))
    # stage 2: the virtual tokens come after the crop tokens
    c = _crop_collator(tok, num_virtual_tokens=3)
    e = c.encode(rows[2])
    p = int((e["input_ids"] == c.special.point).nonzero())
    assert (e["input_ids"][p + 1:p + 5] == crop).all() and e["virtual_mask"][p + 5:p + 8].all()
    assert int(e["virtual_mask"].sum()) == 3


def test_crop_needs_the_crop_token():
    from tokenizers import Tokenizer, models

    vocab = {t: i for i, t in enumerate(["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                                          "<|image_pad|>", "<|point|>", "<|endoftext|>", "a"])}
    t = Tokenizer(models.WordLevel(vocab, unk_token="a"))
    assert Collator(t, DataConfig()).special.crop_pad is None
    with pytest.raises(ValueError, match="<\\|crop_pad\\|>"):
        Collator(t, DataConfig(foveal_crop_pixels=56))


# -- every path takes the settings from the model ---------------------------------------------------
@pytest.mark.parametrize("variant, placement, crop_px", [("a_text", "text", 0), ("e_fovea", "image", 56)])
def test_training_eval_and_infer_use_the_models_settings(tmp_path, monkeypatch, variant, placement, crop_px):
    from owl_train import runner
    from owl_train.stages.config import TrainConfig
    from owl_train.infer import answer
    from owl_train.stages.checkpoints import load_model_dir
    from owl_train.stages.stage1 import data_config

    loaded = load_model_dir(init_tiny(tmp_path / variant, variant=variant))
    assert data_config(TrainConfig(), loaded.model.config).point_placement == placement
    assert data_config(TrainConfig(), loaded.model.config, num_virtual_tokens=4).foveal_crop_pixels == crop_px
    seen: list[DataConfig] = []
    real = runner.Collator
    monkeypatch.setattr(runner, "Collator", lambda tok, cfg: seen.append(cfg) or real(tok, cfg))
    r = row((0.4, 0.5), image(112, 56))
    runner.answer_rows(loaded, [r], DataConfig(), max_new_tokens=2)
    runner.heldout_loss(loaded, [r], DataConfig())
    answer(loaded, image(112, 56), [(0.2, 0.3)])
    assert len(seen) == 3 and all((c.point_placement, c.foveal_crop_pixels) == (placement, crop_px) for c in seen)
