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


def _embed(model, tok, rows):
    from owl_train.data import data_config_for_model

    b = Collator(tok, data_config_for_model(DataConfig(), model.config))(rows)
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
