"""The street taxonomy table (owl_data/conventions/taxonomy.yaml): every category of every
supported source maps, to a Cityscapes label, a documented generic name, or itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cityscapesscripts.helpers.labels import labels as CITYSCAPES_LABELS

from owl_data.conventions.taxonomy import TAXONOMY_FILE, TaxonomyError, default_taxonomy, load_taxonomy
from owl_data.sources import SOURCES
from tests.conftest import need_shared_data
from tests.helpers import COCO_80

CITYSCAPES = {label.name for label in CITYSCAPES_LABELS}

# The COCO classes that are Cityscapes classes (by the Cityscapes class definitions); every other keeps its name.
COCO_STREET = {"person": "person", "bicycle": "bicycle", "car": "car", "motorcycle": "motorcycle", "bus": "bus",
               "train": "train", "truck": "truck", "traffic light": "traffic light", "stop sign": "traffic sign"}
# PASCAL VOC names (COCO-format files converted from VOC) -> the COCO class they are.
VOC = {"aeroplane": "airplane", "motorbike": "motorcycle", "diningtable": "dining table",
       "pottedplant": "potted plant", "sofa": "couch", "tvmonitor": "tv", "tv/monitor": "tv"}


@pytest.fixture(scope="module")
def tax():
    return default_taxonomy()


def test_coco_has_80_classes_each_listed_and_mapped(tax):
    assert len(COCO_80) == len(set(COCO_80)) == 80
    for name in COCO_80:
        assert tax.listed("coco", name), f"{name} is not in the table (a fallback would hide it)"
        assert tax.unify("coco", name) == COCO_STREET.get(name, name)
    assert all(v in CITYSCAPES for v in COCO_STREET.values())


def test_voc_names_map_to_their_coco_class(tax):
    for voc, coco in VOC.items():
        assert tax.listed("coco", voc) and tax.unify("coco", voc) == tax.unify("coco", coco), voc
    assert tax.unify("coco", "motorbike") == "motorcycle"


def test_refcoco_and_caps_boxes_read_coco_names(tax):
    for src in ("refcoco", "llava_caps_boxes"):
        assert tax.unify(src, "stop sign") == "traffic sign" and tax.unify(src, "zebra") == "zebra"


def test_a_custom_coco_class_keeps_its_name(tax):
    assert not tax.listed("coco", "dock")
    assert tax.unify("coco", "dock") == "dock" and tax.unify("coco", "Mountain Hut") == "Mountain Hut"


def test_every_cityscapes_label_is_a_base_name(tax):
    assert len(CITYSCAPES) == 35
    for name in CITYSCAPES:
        assert tax.unify("cityscapes", name) == name


@pytest.mark.parametrize("description, unified", [
    ("Black sedan car.", "car"), ("Brown SUV.", "car"), ("White van parked.", "car"), ("Red hatchback.", "car"),
    ("Champagne-colored sedan.", "car"), ("White truck.", "truck"), ("Blue pick-up.", "truck"),
    ("Gray pickup truck.", "truck"), ("White truck with a trailer.", "truck"), ("Car towing a trailer.", "car"),
    ("Red bus.", "bus"), ("Yellow school bus.", "bus"), ("Tram on the left.", "train"),
    ("Black motorcycle.", "motorcycle"), ("Person on a scooter.", "motorcycle"), ("Parked bike.", "bicycle"),
    ("White camper.", "caravan"), ("Empty trailer.", "trailer"),
    ("Black vehicle.", "vehicle"), ("Construction vehicle.", "vehicle"), ("", "vehicle"),
    ("Scarlet sedanchair.", "vehicle"),  # words match whole: "sedanchair" names no kind
])
def test_drivelm_vehicle_is_split_by_its_description(tax, description, unified):
    assert tax.unify("drivelm", "Vehicle", description) == unified


@pytest.mark.parametrize("category, description, unified", [
    ("Traffic element", "Green light.", "traffic light"), ("Traffic element", "Red light.", "traffic light"),
    ("Traffic element", "Stop sign.", "traffic sign"), ("Traffic element", "Speed limit sign.", "traffic sign"),
    ("Traffic element", "Traffic cone.", "traffic element"), ("Pedestrian", "Adult in black.", "person"),
    ("pedestrian", "", "person"), ("Others", "Barrier.", "others"),  # unlisted: lower-cased
])
def test_drivelm_other_categories_by_table(tax, category, description, unified):
    assert tax.unify("drivelm", category, description) == unified


def test_every_drivelm_category_of_the_real_sample_maps_to_a_street_name(tax):
    d = need_shared_data("drivelm")
    seen = set()
    for f in sorted(d.rglob("*.json")):
        for scene in json.loads(f.read_text()).values():
            for frame in scene["key_frames"].values():
                for info in frame.get("key_object_infos", {}).values():
                    cat, desc = info["Category"], info.get("Visual_description") or ""
                    assert tax.listed("drivelm", cat), cat
                    unified = tax.unify("drivelm", cat, desc)
                    assert unified in CITYSCAPES, (cat, desc, unified)  # this sample names every kind
                    seen.add((cat, unified))
    assert {c for c, _ in seen} == {"Vehicle", "Traffic element"}
    assert {u for _, u in seen} == {"car", "truck", "traffic light"}


def test_synthetic_scene_categories_are_base_names(tax, tmp_path):
    from owl_data.sources.synthetic.scenes import write_default_sources

    sources = dict(write_default_sources(tmp_path, seed=0, train=3, val=2, width=256, height=128))
    drawn = {o["label"] for f in tmp_path.rglob("*_polygons.json") for o in json.loads(f.read_text())["objects"]}
    assert {"car", "person", "road", "sky"} <= drawn <= CITYSCAPES
    for name in drawn:
        assert tax.unify("cityscapes", name) == name
    refs = json.loads((Path(sources["refcoco"].split("?")[0]) / "instances.json").read_text())
    names = {c["name"] for c in refs["categories"]}
    assert names == {"person", "car"} and all(tax.unify("refcoco", n) == n for n in names)


def test_the_drivelm_categories_are_listed(tax):
    for name in ("Vehicle", "Pedestrian", "Traffic element"):  # those of DriveLM's key_object_infos
        assert tax.listed("drivelm", name)


def test_every_registered_source_is_in_the_table(tax):
    assert set(tax.sources) == set(SOURCES)


def test_every_mapped_name_is_a_street_class_a_generic_name_or_kept(tax):
    for vname, vocab in tax.vocabularies.items():
        for src, target in vocab.names.items():
            outs = {target} if isinstance(target, str) else {u for _, u in target.kinds} | {target.otherwise}
            for out in outs:
                assert out in CITYSCAPES or out in tax.generic or out == src or out in COCO_80, (vname, src, out)
    assert set(tax.generic) == {"vehicle", "traffic element"}


def test_a_source_that_sets_no_category_keeps_what_it_has(tax):
    assert tax.sources["pointingqa"] is None
    assert tax.unify("pointingqa", "") == "" and tax.unify("vqav2", "Vehicle") == "Vehicle"
    assert tax.unify("not-a-source", "Vehicle") == "Vehicle"
    assert tax.unify("drivelm", "") == ""


def test_the_version_is_the_table_hash(tax):
    import hashlib

    assert tax.version == hashlib.sha256(TAXONOMY_FILE.read_bytes()).hexdigest()[:16]


@pytest.mark.parametrize("edit, match", [
    (lambda t: t.replace("    trailer: [trailer]", "    trailer: [trailer, van]"), "'van' is empty or listed twice"),
    (lambda t: t.replace("{kinds: vehicle, otherwise: vehicle}", "{kinds: vehicles, otherwise: vehicle}"),
     "'vehicle' -> .* is neither a name"),
    (lambda t: t.replace("    unlisted: lower", "    unlisted: drop"), "vocabulary 'drivelm' needs unlisted"),
    (lambda t: t.replace("  drivelm: drivelm", "  drivelm: nuscenes"), "names vocabulary 'nuscenes'"),
    (lambda t: t.replace("      sofa: couch", "      sofa: couch\n      Sofa: chair"), "lists 'Sofa' twice"),
])
def test_a_malformed_table_is_refused_naming_the_entry(tmp_path, edit, match):
    text = TAXONOMY_FILE.read_text()
    changed = edit(text)
    assert changed != text
    p = tmp_path / "taxonomy.yaml"
    p.write_text(changed)
    with pytest.raises(TaxonomyError, match=match):
        load_taxonomy(p)


def test_the_table_is_package_data():
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parents[3]
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert TAXONOMY_FILE == root / "owl_data" / "conventions" / "taxonomy.yaml"
    globs = data.get("*", []) + data.get("owl_data.conventions", [])
    assert any(fnmatch.fnmatch(TAXONOMY_FILE.name, g) for g in globs), data
