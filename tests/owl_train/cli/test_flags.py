"""owl_train.cli.app.FLAGS / flag_message: library errors name fields, the CLI shows its flags."""

from __future__ import annotations

import pytest

from owl_data.errors import FieldError
from owl_train.cli.app import FLAGS, STAGE2_FLAGS, flag_message
from owl_train.stages.config import MissingPathError, TrainConfig, parse_overrides
from owl_train.stages.engine import _ds_config


def test_leading_field_and_backquoted_fields_become_flags():
    e = FieldError("out", "out runs/a already holds a run: resume with `resume` latest or choose a new `out`")
    assert flag_message(e) == "--out runs/a already holds a run: resume with --resume latest or choose a new --out"
    assert flag_message(FieldError("max_steps", "max_steps 3: too many")) == "--max-steps 3: too many"


def test_only_a_whole_leading_field_is_rewritten():
    assert flag_message(FieldError("out", "output folder missing")) == "output folder missing"
    assert flag_message(FieldError("lr", "lr 0: use a positive rate")) == "lr 0: use a positive rate"  # no flag
    assert flag_message(ValueError("`nope` stays")) == "`nope` stays"


def test_stage2_names_the_init_model_init():
    e = FieldError("model", "train config field model='' is invalid: give the initial model folder (`model`)")
    assert flag_message(e).endswith("(--model)") and flag_message(e, STAGE2_FLAGS).endswith("(--init)")


def test_set_items_read_as_before():
    with pytest.raises(FieldError) as exc:
        parse_overrides(["lr"])
    assert exc.value.field == "sets" and "--" not in str(exc.value)
    assert flag_message(exc.value) == "--set 'lr' is invalid: use key=value, e.g. --set lr=1e-4"


def test_missing_deepspeed_json_is_a_field_and_file_error(tmp_path):
    with pytest.raises(MissingPathError) as exc:
        _ds_config(TrainConfig(deepspeed=str(tmp_path / "no.json")), 1, False)
    assert isinstance(exc.value, FileNotFoundError) and exc.value.field == "deepspeed"
    assert flag_message(exc.value) == f"--deepspeed {tmp_path / 'no.json'}: no such file (e.g. pipelines/zero2.json)"


def test_every_flag_is_an_option_of_the_stage_commands():
    from typer.main import get_command

    from owl_train.cli.app import app

    cmd = get_command(app)
    for stage, flags in (("stage1", FLAGS), ("stage2", STAGE2_FLAGS)):
        opts = {o for p in cmd.commands[stage].params for o in p.opts}
        assert set(flags.values()) <= opts, set(flags.values()) - opts
