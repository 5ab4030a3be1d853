"""``owl-data push``: the hub-ready export of a corpus uploaded with ``huggingface_hub``.

The corpus is exported (:func:`owl_data.export.hf.export_hf`) into a temporary folder, the
dataset repository is created if missing (``HfApi.create_repo(..., exist_ok=True)``), the
branch ``revision`` too, and the folder is uploaded in one commit (``HfApi.upload_folder``).

Everything that can fail before or during the upload (no token, offline mode, an unreachable
hub, a refused request) raises :class:`PushError` with one line that says what to do. The
checks that need no network run first, then the repository is created, and only then is the
corpus exported, so an unreachable hub fails in milliseconds, not after a long export.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, HTTPError

from owl_data.corpus import writer as corpus_mod
from owl_data.errors import FieldError
from owl_data.export.hf import export_hf

__all__ = ["PushError", "PushSettingError", "PushReport", "push_corpus"]

_REPO = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_TRUE = {"1", "on", "yes", "true"}


class PushError(RuntimeError):
    """The corpus could not be pushed; the message is one line saying why and what to do."""


class PushSettingError(FieldError, PushError):
    """A push setting that is invalid (``field``: ``repo``); also a ValueError, as every FieldError."""


@dataclass(frozen=True)
class PushReport:
    """What was pushed: the repository URL, revision, commit and rows per task."""

    repo: str
    url: str
    revision: str
    commit: str | None
    rows: dict[str, dict[str, int]]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def push_corpus(corpus: Path, repo: str, private: bool = False, revision: str | None = None, *,
                token: str | None = None, endpoint: str | None = None) -> PushReport:
    """Export ``corpus`` for the Hub and upload it to the dataset repository ``repo``.

    Args:
        corpus: the corpus folder.
        repo: ``ORG/NAME`` of a dataset repository (created when missing).
        private: create the repository private (an existing one keeps its visibility).
        revision: branch to commit to (created from the default branch when missing);
            None: the default branch.
        token: Hub token; None: ``HF_TOKEN`` or the token saved by ``hf auth login``.
        endpoint: Hub URL; None: ``HF_ENDPOINT`` or https://huggingface.co.

    Raises:
        FileNotFoundError: ``corpus`` is not a corpus.
        PushError: a malformed repo id, no token, offline mode, an unreachable hub, or a
            request the hub refused.
    """
    corpus = Path(corpus)
    corpus_mod.read_manifest(corpus)
    if not _REPO.fullmatch(repo or ""):
        raise PushSettingError("repo", f"repo {repo!r}: expected ORG/NAME, e.g. my-lab/owl-vl-corpus")
    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE:
        raise PushError("HF_HUB_OFFLINE is set: unset it to push to the Hugging Face Hub")
    token = token or get_token()
    if not token:
        raise PushError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (a token with write access)")
    endpoint = endpoint or constants.ENDPOINT
    api = HfApi(endpoint=endpoint, token=token)

    def hub(call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except HfHubHTTPError as exc:
            status = exc.response.status_code if getattr(exc, "response", None) is not None else None
            hint = {401: "the token is invalid", 403: "the token cannot write to this repository",
                    404: "no such repository or branch"}.get(status, "the hub refused the request")
            raise PushError(f"push to {repo} at {endpoint} failed: {hint} ({_one_line(exc)})") from None
        except (HTTPError, OSError) as exc:  # transport errors (refused, DNS, timeout), offline mode
            raise PushError(f"cannot reach the Hugging Face Hub at {endpoint}: {_one_line(exc)}") from None

    url = hub(api.create_repo, repo, repo_type="dataset", private=private, exist_ok=True)
    if revision:
        hub(api.create_branch, repo, branch=revision, repo_type="dataset", exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="owl-push-") as tmp:
        folder = Path(tmp) / "export"
        report = export_hf(corpus, folder)
        info = hub(api.upload_folder, repo_id=repo, folder_path=folder, repo_type="dataset", revision=revision,
                   commit_message=f"owl-data push of corpus {corpus.name}")
    return PushReport(repo=repo, url=str(url), revision=revision or "main",
                      commit=getattr(info, "oid", None), rows=report.rows)
