"""Annotation files that are FIFOs (or folders) named like the real thing: one clear error or a
reject naming the file, never a read that blocks forever."""

from __future__ import annotations

import os

import pytest

from owl_data.sources import SourceError
from owl_data.sources._common import load_json, load_jsonl, read_text_file
from owl_data.sources.refcoco import MAX_PICKLE_BYTES, load_refs
from tests.helpers import fails_after


@pytest.fixture(autouse=True)
def no_hang():
    """Fail instead of blocking the suite when the test runs past 10 s."""
    with fails_after(10, "reading a file"):
        yield


@pytest.fixture
def fifo(tmp_path):
    p = tmp_path / "questions.json"
    os.mkfifo(p)
    return p


def test_json_and_jsonl_fifo_is_one_error(fifo):
    with pytest.raises(SourceError) as err:
        load_json(fifo, "vqav2")
    assert str(err.value) == f"vqav2: cannot read {fifo} is a FIFO, not a regular file"
    with pytest.raises(SourceError) as err:
        load_jsonl(fifo, "llava_caps_boxes")
    assert str(err.value) == f"llava_caps_boxes: cannot read {fifo} is a FIFO, not a regular file"


def test_text_fifo_rejects_its_items(fifo):
    assert read_text_file(fifo) == ("not_a_regular_file", f"{fifo} is a FIFO, not a regular file")


def test_missing_json_keeps_its_message(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        load_json(tmp_path / "none.json", "gqa")


def test_refs_pickle_fifo_and_size_limit(fifo):
    with pytest.raises(SourceError) as err:
        load_refs(fifo)
    assert str(err.value) == f"refcoco: cannot read {fifo} is a FIFO, not a regular file"
    big = fifo.parent / "refs(unc).p"
    with open(big, "wb") as f:
        f.truncate(MAX_PICKLE_BYTES + 1)  # sparse: nothing is written or read
    with pytest.raises(SourceError) as err:
        load_refs(big)
    assert "over the limit of" in str(err.value) and "is it the right file?" in str(err.value)
