"""A corpus of schema 1.0.0 (no target.source_category) is refused by every reader with one line
saying "rebuild with this version"; the published schema file is the code's."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
from typer.testing import CliRunner

from owl_data.cli.app import app
from owl_data.corpus import schema as schemas
from owl_data.corpus.gallery import write_gallery
from owl_data.corpus.read import CorpusReader
from owl_data.corpus.schema import SchemaError, check_version
from owl_data.corpus.stats import corpus_stats
from owl_data.corpus.validate import validate_corpus
from owl_data.corpus.writer import read_manifest
from owl_data.export import export_corpus
from owl_data.mix.io import MixConfig, open_corpus, write_mix

ROOT = Path(__file__).resolve().parents[3]
REFUSED = r"schema '1\.0\.0', this owl-data reads schema 1\.1\.0 .*: rebuild with this version"


def _downgrade(corpus: Path, version: str = "1.0.0") -> None:
    m = json.loads((corpus / "manifest.json").read_text())
    m["schema_version"] = version
    (corpus / "manifest.json").write_text(json.dumps(m))


def test_the_version_is_1_1_0_with_source_category():
    assert schemas.SCHEMA_VERSION == "1.1.0"
    target = schemas.POINT_VQA.field("target").type
    assert [target.field(i).name for i in range(target.num_fields)] == ["category", "source_category", "instance",
                                                                         "bbox"]
    published = json.loads((ROOT / "schemas" / "owl-corpus-1.1.0.json").read_text())
    assert published == schemas.schema_document()
    old = json.loads((ROOT / "schemas" / "owl-corpus-1.0.0.json").read_text())  # the previous version stays published
    old_target = next(f for f in old["tables"]["point_vqa"] if f["name"] == "target")
    assert "source_category" not in old_target["type"] and "source_category" in json.dumps(published)


@pytest.mark.parametrize("version, ok", [("1.1.0", True), ("1.1.7", True), ("1.0.0", False), ("1.2.0", False),
                                         ("2.1.0", False), ("1.1", True), ("1", False), (None, False), (110, False)])
def test_check_version_accepts_this_major_minor_only(version, ok):
    if ok:
        check_version(version, "c")
    else:
        with pytest.raises(SchemaError, match="rebuild with this version"):
            check_version(version, "c")


def test_every_reader_refuses_a_1_0_0_corpus(tiny, tmp_path):
    write_mix(tiny, tmp_path / "mix", MixConfig(ratio=(Fraction(1),), tasks=("point_vqa",)))  # made at 1.1.0
    _downgrade(tiny)
    readers = {
        "manifest": lambda: read_manifest(tiny),
        "reader": lambda: CorpusReader(tiny),
        "reader with a manifest": lambda: CorpusReader(tiny, json.loads((tiny / "manifest.json").read_text())),
        "validate": lambda: validate_corpus(tiny),
        "stats": lambda: corpus_stats(tiny),
        "gallery": lambda: write_gallery(tiny, tmp_path / "gallery"),
        "mix": lambda: write_mix(tiny, tmp_path / "mix2", MixConfig(ratio=(Fraction(1),), tasks=("point_vqa",))),
        "mix open": lambda: open_corpus(tiny),
        "export hf": lambda: export_corpus(tiny, tmp_path / "hf", "hf"),
        "export llava": lambda: export_corpus(tiny, tmp_path / "llava", "llava"),
    }
    for name, call in readers.items():
        with pytest.raises(SchemaError, match=REFUSED) as exc:
            call()
        assert "\n" not in str(exc.value), name
    assert not (tmp_path / "gallery").exists() and not (tmp_path / "hf").exists()


def test_the_trainer_refuses_a_1_0_0_corpus(tiny, tmp_path):
    pytest.importorskip("torch")
    from owl_train.data.mix_dataset import MixRows
    from owl_train.data.rows import corpus_rows

    write_mix(tiny, tmp_path / "mix", MixConfig(ratio=(Fraction(1),), tasks=("point_vqa",)))
    _downgrade(tiny)
    with pytest.raises(SchemaError, match=REFUSED):
        corpus_rows(tiny, "point_vqa", "train")
    with pytest.raises(SchemaError, match=REFUSED):
        MixRows(tiny, tmp_path / "mix")


@pytest.mark.parametrize("command", [["validate"], ["stats"], ["manifest"], ["show", "--out", "GALLERY"],
                                     ["mix", "--ratio", "1", "--tasks", "point_vqa", "--out", "MIX"], ["export", "--format", "hf", "--out", "HF"]])
def test_the_cli_says_it(tiny, tmp_path, command):
    _downgrade(tiny)
    args = [str(tmp_path / a) if a.isupper() else a for a in command]
    res = CliRunner().invoke(app, [args[0], str(tiny), *args[1:]])
    assert res.exit_code != 0
    assert "rebuild with this version" in " ".join(res.output.split()), res.output
