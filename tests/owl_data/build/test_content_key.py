"""Content keys of resumable build chunks (owl_data.build.content_key): the canonical form, by hand."""

from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np

from owl_data.build.content_key import code_versions, records_key
from owl_data.conventions.taxonomy import TAXONOMY_FILE


@dataclasses.dataclass
class _Rec:
    a: int
    b: str


def test_the_key_of_no_records_is_the_hash_of_the_context():
    assert records_key([], context="ctx") == "0230c6b1d833c51cc426492022677b74c60d82891931221a42db9e7bb06205e9"


def test_ints_in_hex_and_strings_by_utf8_length():
    # sha256(b"ctx" + b"i1f;" + b"s2:hi"): 31 is 0x1f, "hi" is 2 bytes
    assert records_key([31, "hi"], context="ctx") == \
        "23747e3cb952153659b9bf832c3627e0839c8aff8cb6f3392f89e749650e59e6"


def test_mappings_by_sorted_key_sequences_in_order():
    assert records_key([{"b": 1, "a": 2}], context="") == records_key([{"a": 2, "b": 1}], context="")
    assert records_key([[1, 2]], context="") != records_key([[2, 1]], context="")
    assert records_key([(1, 2)], context="") == records_key([[1, 2]], context="")  # both sequences
    assert records_key([1], context="") != records_key([1.0], context="") != records_key([True], context="")


def test_every_dataclass_field_and_the_context_count():
    base = records_key([_Rec(1, "x")], context="spec")
    assert base == records_key([_Rec(1, "x")], context="spec")
    assert base != records_key([_Rec(2, "x")], context="spec")
    assert base != records_key([_Rec(1, "y")], context="spec")
    assert base != records_key([_Rec(1, "x")], context="spec2")


def test_arrays_by_shape_dtype_and_bytes():
    a = np.arange(6, dtype=np.uint8)
    assert records_key([a], context="") == records_key([a.copy()], context="")
    assert records_key([a], context="") != records_key([a.reshape(2, 3)], context="")  # same bytes, other shape
    assert records_key([a], context="") != records_key([a.astype(np.int8)], context="")
    assert records_key([a.reshape(2, 3).T], context="") == records_key([np.ascontiguousarray(a.reshape(2, 3).T)],
                                                                       context="")


def test_a_path_by_its_name_only(tmp_path):
    # contents are checked by sha256 per chunk (chunks.chunk_reusable), not by stamps in the key
    p = tmp_path / "img.png"
    p.write_bytes(b"12345")
    os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    k = records_key([p], context="")
    # sha256(b"path" + b"<len>:" + the path's text)
    import hashlib
    assert k == hashlib.sha256(f"path{len(str(p))}:{p}".encode()).hexdigest()
    os.utime(p, ns=(2_000_000_000, 2_000_000_000))
    p.write_bytes(b"54321")
    assert records_key([p], context="") == k
    assert records_key([p.with_name("other.png")], context="") != k


def test_code_versions_name_the_code_rows_depend_on():
    assert set(code_versions()) == {"owl_data", "generators", "annotated", "prompt_pools", "taxonomy"}
    assert code_versions()["taxonomy"] == hashlib.sha256(TAXONOMY_FILE.read_bytes()).hexdigest()[:16]
