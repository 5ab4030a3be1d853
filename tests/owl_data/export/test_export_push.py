"""Push: everything up to the upload, and one clear line when the hub cannot be used. No real network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import owl_data.export.push as push
from owl_data.export import PushError, push_corpus

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def no_hub_env(monkeypatch, tmp_path):
    """No token anywhere: HF_TOKEN unset, a fresh HF_HOME (no saved token)."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(push.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(push, "get_token", lambda: os.environ.get("HF_TOKEN"))


def test_no_token_is_one_clear_error(syn_corpus, no_hub_env):
    with pytest.raises(PushError, match="no Hugging Face token: set HF_TOKEN"):
        push_corpus(syn_corpus, "org/name")


def test_unreachable_hub_is_one_clear_error(syn_corpus, no_hub_env):
    with pytest.raises(PushError, match="cannot reach the Hugging Face Hub at http://127.0.0.1:9") as e:
        push_corpus(syn_corpus, "org/name", token="hf_fake", endpoint="http://127.0.0.1:9")
    assert "\n" not in str(e.value)


def test_offline_mode_is_one_clear_error(syn_corpus, no_hub_env, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PushError, match="HF_HUB_OFFLINE"):
        push_corpus(syn_corpus, "org/name", token="hf_fake", endpoint="http://127.0.0.1:9")


def test_bad_repo_and_not_a_corpus(syn_corpus, tmp_path, no_hub_env):
    with pytest.raises(PushError, match="ORG/NAME"):
        push_corpus(syn_corpus, "just-a-name", token="hf_fake")
    with pytest.raises(FileNotFoundError):
        push_corpus(tmp_path, "org/name", token="hf_fake")


class _FakeApi:
    """Records the calls push makes; checks the folder it would upload."""

    calls: list = []

    def __init__(self, endpoint=None, token=None):
        self.endpoint, self.token = endpoint, token

    def create_repo(self, repo_id, **kw):
        _FakeApi.calls.append(("create_repo", repo_id, kw))
        return f"{self.endpoint}/datasets/{repo_id}"

    def create_branch(self, repo_id, **kw):
        _FakeApi.calls.append(("create_branch", repo_id, kw))

    def upload_folder(self, **kw):
        folder = Path(kw["folder_path"])
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        _FakeApi.calls.append(("upload_folder", kw["repo_id"], {**kw, "files": files}))

        class Info:
            oid = "abc123"
        return Info()


def test_everything_up_to_the_upload(syn_corpus, no_hub_env, monkeypatch):
    _FakeApi.calls = []
    monkeypatch.setattr(push, "HfApi", _FakeApi)
    rep = push_corpus(syn_corpus, "org/owl", private=True, revision="v1", token="hf_fake",
                      endpoint="http://hub.invalid")
    names = [c[0] for c in _FakeApi.calls]
    assert names == ["create_repo", "create_branch", "upload_folder"]
    assert _FakeApi.calls[0][2] == {"repo_type": "dataset", "private": True, "exist_ok": True}
    up = _FakeApi.calls[2][2]
    assert up["repo_type"] == "dataset" and up["revision"] == "v1"
    assert "README.md" in up["files"] and "owl_export.json" in up["files"]
    assert any(f.startswith("point_vqa/train/part-") for f in up["files"])
    assert not Path(up["folder_path"]).exists()  # the temporary export is cleaned up
    assert rep.commit == "abc123" and rep.revision == "v1" and set(rep.rows) == {"point_vqa"}


def _cli(args: list[str], env_extra: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE")}
    env.update({"HF_HOME": str(tmp_path / "hf_home"), "COLUMNS": "200", **env_extra})
    return subprocess.run([sys.executable, "-c", "from owl_data.cli.app import app; app()", *args],
                          env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.mark.parametrize("env_extra, expect", [
    ({}, "no Hugging Face token"),
    ({"HF_TOKEN": "hf_fake", "HF_ENDPOINT": "http://127.0.0.1:9"}, "cannot reach the Hugging Face Hub"),
    ({"HF_TOKEN": "hf_fake", "HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set"),
])
def test_cli_push_fails_in_one_line(syn_corpus, tmp_path, env_extra, expect):
    done = _cli(["push", str(syn_corpus), "--repo", "org/name"], env_extra, tmp_path)
    assert done.returncode == 2
    err = done.stderr.strip()
    assert expect in err and "Traceback" not in err and len(err.splitlines()) == 1, err
