"""The point-grounding options: config round trip, plain Qwen2-VL gives them off, presets, init-tiny."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from _model_helpers import PT, our_config, tiny_hf_config  # noqa: E402

from owl_train.model.config import POINT_OPTIONS, OwlVLConfig
from owl_train.model.variants import DEFAULT_VARIANT, VARIANTS, apply_variant, variant_of

CROP = 305
ALL_ON = {"point_placement": "text", "mrope_interleaved": True, "point_focus": True, "point_patch_code": True,
          "foveal_crop": True, "foveal_crop_fraction": 0.4, "foveal_crop_pixels": 112}


def test_plain_qwen2_vl_config_has_every_option_off():
    c = OwlVLConfig.from_hf_dict(tiny_hf_config().to_dict())
    assert {k: getattr(c, k) for k in POINT_OPTIONS} == POINT_OPTIONS
    assert POINT_OPTIONS == {"point_placement": "image", "mrope_interleaved": False, "point_focus": False,
                             "point_patch_code": False, "foveal_crop": False, "foveal_crop_fraction": 0.25,
                             "foveal_crop_pixels": 56}
    assert c.point_token_id is None and c.crop_token_id is None
    d = c.to_hf_dict()
    assert not set(POINT_OPTIONS) & set(d) and "crop_token_id" not in d  # defaults are not written
    assert variant_of(c) == "b_image"


@pytest.mark.parametrize("name", list(ALL_ON))
def test_each_option_round_trips_through_config_json(name):
    base = dataclasses.replace(our_config(), crop_token_id=CROP)
    changed = dataclasses.replace(base, **{name: ALL_ON[name]},
                                  **({"foveal_crop": True} if name.startswith("foveal_crop_") else {}))
    d = json.loads(json.dumps(changed.to_hf_dict()))
    assert d[name] == ALL_ON[name] and d["crop_token_id"] == CROP
    back = OwlVLConfig.from_hf_dict(d)
    assert back == changed and getattr(back, name) == ALL_ON[name]


def test_all_options_together_round_trip():
    c = dataclasses.replace(our_config(), crop_token_id=CROP, **ALL_ON)
    assert OwlVLConfig.from_hf_dict(json.loads(json.dumps(c.to_hf_dict()))) == c


@pytest.mark.parametrize("field, value, needs", [
    ("point_placement", "grid", "'image'"),
    ("mrope_interleaved", 1, "true or false"),
    ("point_focus", "yes", "true or false"),
    ("foveal_crop_fraction", 0.0, "fraction"),
    ("foveal_crop_fraction", 1.5, "fraction"),
    ("foveal_crop_pixels", 60, "multiple of 28"),
    ("foveal_crop_pixels", 0, "multiple of 28"),
    ("crop_token_id", PT, "its own token id"),
])
def test_bad_option_values_name_the_field(field, value, needs):
    with pytest.raises(ValueError, match=f"{field}={value!r}.*{needs}"):
        dataclasses.replace(our_config(), **{field: value})


def test_options_that_need_their_tokens():
    plain = our_config(point=False)
    for name in ("point_focus", "point_patch_code", "foveal_crop"):
        with pytest.raises(ValueError, match=f"{name}=True.*point_token_id"):
            dataclasses.replace(plain, **{name: True})
    with pytest.raises(ValueError, match="foveal_crop=True.*crop_token_id"):
        dataclasses.replace(our_config(), foveal_crop=True)


def test_presets_set_every_option_and_apply():
    assert {"a_text", "b_image", "c_interleaved", "d_focus", "e_fovea", "f_patch_code", "cd", "cdf",
            "cdef"} <= set(VARIANTS)
    assert DEFAULT_VARIANT in VARIANTS and VARIANTS[DEFAULT_VARIANT]["mrope_interleaved"] \
        and VARIANTS[DEFAULT_VARIANT]["point_focus"]
    base = dataclasses.replace(our_config(), crop_token_id=CROP)
    for name, opts in VARIANTS.items():
        assert set(opts) == set(POINT_OPTIONS), name
        c = apply_variant(base, name, fresh_weights=True)
        assert {k: getattr(c, k) for k in POINT_OPTIONS} == opts and variant_of(c) == name
    cdef = apply_variant(base, "cdef", fresh_weights=True)
    assert (cdef.mrope_interleaved, cdef.point_focus, cdef.foveal_crop, cdef.point_patch_code) == (True,) * 4
    assert cdef.point_placement == "image"
    assert apply_variant(base, "a_text", fresh_weights=True).point_placement == "text"
    # applying b after cdef switches everything off again (a preset is complete)
    assert apply_variant(cdef, "b_image", fresh_weights=True) == base
    with pytest.raises(ValueError, match="unknown model variant 'zz'.*a_text"):
        apply_variant(base, "zz", fresh_weights=True)
    with pytest.raises(ValueError, match="crop_token_id"):
        apply_variant(our_config(), "e_fovea", fresh_weights=True)


def test_trained_weights_keep_their_rotary_layout():
    trained = our_config()  # mrope_interleaved False
    with pytest.raises(ValueError, match="rotary layout"):
        apply_variant(trained, "cd", fresh_weights=False)
    assert apply_variant(trained, "d_focus", fresh_weights=False).point_focus
    inter = dataclasses.replace(trained, mrope_interleaved=True)
    with pytest.raises(ValueError, match="rotary layout"):
        apply_variant(inter, "d_focus", fresh_weights=False)
    assert apply_variant(inter, "cd", fresh_weights=False).mrope_interleaved


def test_checkpoint_keeps_its_stored_interleaving(tmp_path):
    from owl_train.model.checkpoint import load_pretrained, save_pretrained
    from owl_train.model.model import OwlVL

    for value in (False, True):
        m = OwlVL(dataclasses.replace(our_config(), mrope_interleaved=value))
        save_pretrained(m, tmp_path / str(value))
        again = load_pretrained(tmp_path / str(value))
        assert again.config.mrope_interleaved is value and again.decoder.mrope_interleaved is value


def test_init_tiny_variant_option(tmp_path):
    from owl_train.cli.app import app
    from owl_train.model.checkpoint import load_pretrained

    res = CliRunner().invoke(app, ["init-tiny", str(tmp_path / "e"), "--variant", "cdef"])
    assert res.exit_code == 0, res.output
    m = load_pretrained(tmp_path / "e")
    assert variant_of(m.config) == "cdef" and m.config.crop_token_id is not None and m.point_focus is not None
    res = CliRunner().invoke(app, ["init-tiny", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    assert variant_of(load_pretrained(tmp_path / "d").config) == DEFAULT_VARIANT
    res = CliRunner().invoke(app, ["init-tiny", str(tmp_path / "x"), "--variant", "nope"])
    assert res.exit_code == 2 and "unknown --variant 'nope'" in res.output
    assert not (tmp_path / "x").exists()


def test_init_tiny_options_over_the_preset(tmp_path):
    from owl_train.model.checkpoint import load_pretrained
    from owl_train.model.tiny import init_tiny

    m = load_pretrained(init_tiny(tmp_path / "e112", variant="e_fovea", options={"foveal_crop_pixels": 112}))
    assert m.config.foveal_crop and m.config.foveal_crop_pixels == 112 and variant_of(m.config) is None
    with pytest.raises(ValueError, match="vocab_size: not point-grounding options"):
        init_tiny(tmp_path / "bad", options={"vocab_size": 3})
    with pytest.raises(ValueError, match="foveal_crop_pixels=100"):
        init_tiny(tmp_path / "bad", variant="e_fovea", options={"foveal_crop_pixels": 100})
    with pytest.raises(ValueError, match="unknown model variant"):
        init_tiny(tmp_path / "bad", variant="q")
    assert not (tmp_path / "bad").exists()
