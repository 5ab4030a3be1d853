"""Library errors name config fields; the `owl-data` error exit shows them as flags (cli.app.FLAGS)."""

from __future__ import annotations

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from owl_data.build.driver import SourceSpec
from owl_data.cli import app
from owl_data.cli.app import FLAGS, flag_message
from owl_data.corpus.gallery import GalleryConfig
from owl_data.errors import FieldError
from owl_data.export import export_corpus
from owl_data.export.push import push_corpus
from owl_data.fs import check_out
from owl_data.mix.io import MixConfig, parse_ratio
from tests.helpers import one_line_error
from tests.owl_data.mix.conftest import write_tiny_corpus

runner = CliRunner()


def _field_error(fn, *args, **kwargs) -> FieldError:
    with pytest.raises(FieldError) as e:
        fn(*args, **kwargs)
    assert "--" not in str(e.value), str(e.value)  # the library speaks in fields
    assert str(e.value).startswith(e.value.field), str(e.value)
    return e.value


def test_flag_message_rewrites_the_leading_field_and_quoted_fields_only():
    assert flag_message(FieldError("tasks", "tasks: unknown task(s) x; tasks: vqa")) == \
        "--tasks: unknown task(s) x; tasks: vqa"
    assert flag_message(FieldError("epochs", "epochs needs `on_exhausted` repeat")) == \
        "--epochs needs --on-exhausted repeat"
    assert flag_message(FieldError("seed", "config field seed=-1 is invalid")) == "config field seed=-1 is invalid"
    assert flag_message(ValueError("tasks: `tasks`")) == "tasks: `tasks`"  # only a FieldError is rewritten
    assert flag_message(FieldError("unlisted", "unlisted `hf auth login`")) == "unlisted `hf auth login`"


def test_every_flag_of_the_table_is_an_option_of_a_command():
    cli = get_command(app)
    options = {o for cmd in cli.commands.values() for p in cmd.params if p.param_type_name == "option" for o in p.opts}
    assert set(FLAGS.values()) <= options, set(FLAGS.values()) - options


def test_mix_shows_flags(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "c")
    e = _field_error(MixConfig, ratio=parse_ratio("1"), tasks=("nope",))
    assert e.field == "tasks"
    out = one_line_error(runner.invoke(app, ["mix", str(corpus), "-r", "1", "-t", "nope", "-o", str(tmp_path / "m")]))
    assert "error: --tasks: unknown task(s) nope; tasks: point_vqa" in out
    _field_error(MixConfig, ratio=parse_ratio("1:1:1:1"), num_samples=5, epochs=1)
    out = one_line_error(runner.invoke(app, ["mix", str(corpus), "-r", "1:1:1:1", "-n", "5", "-e", "1",
                                             "-o", str(tmp_path / "m")]))
    assert "error: --num-samples and --epochs both set; give one" in out
    _field_error(parse_ratio, "1:x")
    out = one_line_error(runner.invoke(app, ["mix", str(corpus), "-r", "1:x", "-o", str(tmp_path / "m")]))
    assert "error: --ratio '1:x': weight 'x' is not a finite number" in out


def test_export_shows_flags(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "c")
    assert _field_error(export_corpus, corpus, tmp_path / "x", "webdataset").field == "format"
    out = one_line_error(runner.invoke(app, ["export", str(corpus), "--format", "webdataset", "-o", str(tmp_path / "x")]))
    assert "error: --format 'webdataset': use one of hf, llava, sharegpt" in out
    assert _field_error(export_corpus, corpus, tmp_path / "x", "hf", "qwen").field == "coords"
    out = one_line_error(runner.invoke(app, ["export", str(corpus), "-f", "hf", "--coords", "qwen", "-o", str(tmp_path / "x")]))
    assert "error: --coords applies to llava and sharegpt" in out
    out = one_line_error(runner.invoke(app, ["export", str(corpus), "-f", "llava", "-o", str(corpus / "x")]))
    assert f"error: --out {corpus / 'x'}: inside the folder read" in out


def test_show_shows_flags(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "c")
    assert _field_error(GalleryConfig, limit=0).field == "limit"
    out = one_line_error(runner.invoke(app, ["show", str(corpus), "--limit", "0", "-o", str(tmp_path / "g")]))
    assert "error: --limit 0: must be an integer in 1..1,000,000" in out


def test_push_shows_flags(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "c")
    assert _field_error(push_corpus, corpus, "no-slash").field == "repo"
    out = one_line_error(runner.invoke(app, ["push", str(corpus), "--repo", "no-slash"]))
    assert "error: --repo 'no-slash': expected ORG/NAME" in out


def test_build_shows_flags(tmp_path):
    assert _field_error(SourceSpec.parse, "nonsense").field == "sources"
    out = one_line_error(runner.invoke(app, ["build", "--source", "nonsense", "-o", str(tmp_path / "c")]))
    assert "error: --source 'nonsense': expected NAME=PATH" in out
    assert _field_error(check_out, ".").field == "out"
    out = one_line_error(runner.invoke(app, ["build", "-o", "."]))
    assert "error: --out '.': give the output folder a name, e.g. --out corpus" in out
