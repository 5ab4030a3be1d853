"""The `owl-train` command line."""

from __future__ import annotations

from typer.testing import CliRunner

from owl_train import __version__
from owl_train.cli import app


def test_version_is_a_subcommand():
    res = CliRunner().invoke(app, ["version"])
    assert res.exit_code == 0 and res.output.strip() == __version__


def test_init_tiny_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "trained").mkdir()
    weights = tmp_path / "trained" / "model.safetensors"
    weights.write_bytes(b"trained weights")
    res = CliRunner().invoke(app, ["init-tiny", str(tmp_path / "trained")])
    assert res.exit_code == 2 and "not an empty folder" in res.output
    assert weights.read_bytes() == b"trained weights"


def test_bad_train_yaml_is_one_line_naming_the_place(tmp_path):
    import pytest

    from owl_train.config import load_train_config, parse_overrides

    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  a: [1,\n b: : :\n")
    with pytest.raises(ValueError, match=r"bad.yaml: not valid YAML \(line \d+, column \d+\)"):
        load_train_config(bad)
    with pytest.raises(ValueError, match="not valid YAML"):
        parse_overrides(["lr=[1,"])


def test_infer_config_rejects_non_positive_token_budget():
    import pytest

    from owl_train.infer import InferConfig

    with pytest.raises(ValueError, match="max_new_tokens"):
        InferConfig(max_new_tokens=-1)
