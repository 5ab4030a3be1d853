"""Resume reads checkpoint files weights-only: a crafted pickle is refused before it runs, and a
damaged file is one error naming it (owl_train.stages.checkpoint_files)."""

from __future__ import annotations

import json
import os
import random
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from owl_train.cli.app import app
from owl_train.model.checkpoint import CheckpointError
from owl_train.stages import run_stage1
from owl_train.stages.checkpoint_files import check_pickles, file_hashes, load_pt, load_rng
from _stage_helpers import stage1_config

runner = CliRunner()


class _Payload:
    """Unpickling it calls ``fn(*args)``: opening a file for writing, or a shell command."""

    def __init__(self, fn, *args) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.fixture
def run_copy(stage1_run, tmp_path):
    _, s1 = stage1_run
    out = tmp_path / "run"
    shutil.copytree(s1, out)
    return out, sorted((out / "checkpoints").glob("step-*"))[-1]


def _cli_resume(world, out):
    return runner.invoke(app, ["stage1", "--model", str(world["tiny"]), "--corpus", str(world["corpus"]),
                               "--mix", str(world["mix"]), "--out", str(out), "--resume", "latest",
                               "--set", "progress=false", "--set", "tensorboard=false"])


def _rehash(ck):
    state = json.loads((ck / "state.json").read_text())
    state["files"] = file_hashes(ck, list(state["files"]))
    (ck / "state.json").write_text(json.dumps(state))


def test_a_crafted_pickle_is_refused_and_never_runs(world, run_copy, tmp_path):
    out, ck = run_copy
    for i, make in enumerate((lambda m: _Payload(open, str(m), "w"),
                              lambda m: _Payload(os.system, f"touch {m}"))):
        marker = tmp_path / f"pwned{i}"
        torch.save({"base_lrs": [0.01], "x": make(marker)}, ck / "scheduler.pt")
        _rehash(ck)  # an attacker rewrites state.json too: the weights-only load is what refuses it
        res = _cli_resume(world, out)
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        line = " ".join(res.output.split())
        assert f"checkpoint file {ck / 'scheduler.pt'} is refused: it is not weights-only" in line
        assert ("it names io.open" if i == 0 else "it names posix.system") in line
        assert not marker.exists()
    marker = tmp_path / "pwned-opt"
    torch.save(_Payload(open, str(marker), "w"), ck / "optimizer.pt")
    _rehash(ck)
    with pytest.raises(CheckpointError, match="optimizer.pt is refused"):
        run_stage1(stage1_config(world, out, resume="latest"))
    assert not marker.exists()


def test_deepspeed_files_are_opened_weights_only_first(tmp_path):
    pytest.importorskip("deepspeed")
    from owl_train.stages.checkpoint_files import deepspeed_allow

    marker = tmp_path / "pwned"
    torch.save({"module": {"w": torch.ones(2)}, "x": _Payload(open, str(marker), "w")},
               tmp_path / "mp_rank_00_model_states.pt")
    with pytest.raises(CheckpointError, match="mp_rank_00_model_states.pt is refused"):
        check_pickles(tmp_path, deepspeed_allow())
    assert not marker.exists()
    torch.save({"module": {"w": torch.ones(2)}}, tmp_path / "mp_rank_00_model_states.pt")
    check_pickles(tmp_path, deepspeed_allow())


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _flip(old: bytes, new: bytes):
    return lambda data: data.replace(old, new, 1)


DAMAGE = [
    ("trainable.safetensors", _truncate, "is damaged"),
    ("trainable.safetensors", lambda d: b"", "is damaged"),
    ("trainable.safetensors", _flip(b'"dtype":"F32"', b'"dtype":"I32"'), "is int32"),
    ("trainable.safetensors", _flip(b'"dtype":"F32"', b'"dtype":"F64"'), "is damaged"),
    ("trainable.safetensors", _flip(b'"dtype":"F32"', b'"dtype":"Q32"'), "is damaged"),
    ("optimizer.pt", _truncate, "is damaged"),
    ("optimizer.pt", lambda d: b"", "is damaged"),
    ("scheduler.pt", _truncate, "is damaged"),
    ("rng.pt", lambda d: d[:-40], "is damaged"),
    ("state.json", _truncate, "is unreadable"),
    ("state.json", lambda d: b"[]", "not a JSON object"),
    ("state.json", lambda d: d.replace(b'"step"', b'"stop"', 1), "field step is missing"),
]


def _resume_error(world, out) -> str:
    with pytest.raises(CheckpointError) as exc:
        run_stage1(stage1_config(world, out, resume="latest"))
    return str(exc.value)


def test_a_damaged_checkpoint_is_one_error_naming_the_file(world, run_copy):
    out, ck = run_copy
    state = json.loads((ck / "state.json").read_text())
    assert set(state["files"]) == {"trainable.safetensors", "optimizer.pt", "scheduler.pt", "rng.pt"}
    for hashed in (True, False):  # the recorded sha256 catches any change; without it each reader's own check
        (ck / "state.json").write_text(json.dumps(state if hashed else {k: v for k, v in state.items()
                                                                       if k != "files"}))
        for name, damage, words in DAMAGE:
            good = (ck / name).read_bytes()
            (ck / name).write_bytes(damage(good))
            msg = _resume_error(world, out)
            words = "its sha256 is not the one state.json records" if hashed and name != "state.json" else words
            assert f"checkpoint file {ck / name}" in msg and words in msg and "\n" not in msg, (name, msg)
            (ck / name).write_bytes(good)
    (ck / "state.json").write_text(json.dumps(state))
    b = bytearray((ck / "optimizer.pt").read_bytes())
    b[len(b) // 2] ^= 0xFF  # inside tensor data: torch would load it
    (ck / "optimizer.pt").write_bytes(bytes(b))
    assert "optimizer.pt is damaged: its sha256" in _resume_error(world, out)
    (ck / "optimizer.pt").write_bytes((ck / "optimizer.pt").read_bytes()[:100])
    res = _cli_resume(world, out)
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert f"checkpoint file {ck / 'optimizer.pt'} is damaged" in " ".join(res.output.split())


def test_rng_state_is_plain_and_an_old_numpy_state_still_loads(tmp_path):
    from owl_train.stages.checkpoint_files import capture_rng

    np.random.seed(7)
    random.seed(7)
    torch.manual_seed(7)
    torch.save(capture_rng(), tmp_path / "rng.pt")
    state = load_pt(tmp_path / "rng.pt")  # no allow-list needed: plain lists and tensors
    assert isinstance(state["numpy"][1], list) and len(state["numpy"][1]) == 624
    want = (np.random.rand(3), random.random(), torch.rand(3))
    np.random.seed(1)
    random.seed(1)
    torch.manual_seed(1)
    load_rng(tmp_path / "rng.pt")
    got = (np.random.rand(3), random.random(), torch.rand(3))
    assert np.array_equal(want[0], got[0]) and want[1] == got[1] and torch.equal(want[2], got[2])
    np.random.seed(3)
    old = {**state, "numpy": np.random.get_state()}  # the layout written before: an ndarray key
    torch.save(old, tmp_path / "old.pt")
    want_np = np.random.rand(4)
    np.random.seed(0)
    load_rng(tmp_path / "old.pt")
    assert np.array_equal(np.random.rand(4), want_np)


def test_a_damaged_model_folder_is_one_line(world, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(world["tiny"], bad)
    good = (bad / "model.safetensors").read_bytes()
    for damage, words in ((_truncate, "is damaged"), (lambda d: b"", "is damaged"),
                          (_flip(b'"dtype":"F32"', b'"dtype":"I32"'), "is not a float type")):
        (bad / "model.safetensors").write_bytes(damage(good))
        res = runner.invoke(app, ["eval", "--model", str(bad), str(world["corpus"]), "--tasks", "vqa", "--limit", "1"])
        line = " ".join(res.output.split())
        assert res.exit_code == 2 and "Traceback" not in res.output and words in line, res.output
        if words == "is damaged":
            assert f"weights file {bad / 'model.safetensors'} is damaged" in line
