"""Content keys of resumable build chunks: a canonical hash of the records a chunk holds.

A chunk of finished scenes is reused on resume only when it was built from the same
records by the same code and from the same file contents: the key covers every field of
every :class:`~owl_data.records.Scene`, :class:`~owl_data.records.DeferredScene` and
:class:`~owl_data.records.Reject` (image references, instances, masks, QA, text rows, a
deferred frame's paths and header facts), the code versions (``owl_data.__version__`` and
the generators', prompt pools' and category taxonomy's versions) and the build's spec hash.
File contents are not in the key: paths are hashed as names only (no size or mtime stamp,
which a replaced file can keep); instead each chunk stores the sha256 of every file its
scenes read, and a chunk is reused only when each still has it
(:func:`owl_data.build.chunks.chunk_reusable`).
Changing an annotation, an image or the code therefore recomputes the chunks that depend
on it, never serves stale rows. (Megatron's index cache, keyed by a hash of a canonical
description, is the model.)

Canonical form: dataclasses by class name and fields in order, mappings by sorted key,
sequences in order, numpy arrays by shape, dtype and sha256 of their C-ordered bytes,
integers in hex (no size limit), floats by ``repr``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Iterable

import numpy as np

__all__ = ["code_versions", "records_key"]


def code_versions() -> dict[str, str]:
    """Versions of the code a chunk's rows depend on."""
    import owl_data
    from owl_data.conventions.taxonomy import default_taxonomy
    from owl_data.generators import GENERATOR_VERSION
    from owl_data.generators.annotated import GENERATOR as ANNOTATED_VERSION
    from owl_data.generators.prompts import POOL_VERSION

    return {"owl_data": owl_data.__version__, "generators": GENERATOR_VERSION,
            "annotated": ANNOTATED_VERSION, "prompt_pools": POOL_VERSION,
            "taxonomy": default_taxonomy().version}


def _feed(h: "hashlib._Hash", v: Any) -> None:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        h.update(f"<{type(v).__name__}".encode())
        for f in dataclasses.fields(v):
            h.update(f"|{f.name}=".encode())
            _feed(h, getattr(v, f.name))
        h.update(b">")
    elif isinstance(v, np.ndarray):
        a = np.ascontiguousarray(v)
        h.update(f"nd{a.shape}{a.dtype.str}".encode())
        h.update(hashlib.sha256(a.tobytes()).digest())
    elif isinstance(v, Path):  # the name only: contents are checked by sha256 (chunks.inputs)
        h.update(f"path{len(str(v))}:{v}".encode())
    elif isinstance(v, dict):
        h.update(f"{{{len(v)}".encode())
        for k in sorted(v, key=repr):
            _feed(h, k)
            _feed(h, v[k])
        h.update(b"}")
    elif isinstance(v, (list, tuple)):
        h.update(f"[{len(v)}".encode())
        for x in v:
            _feed(h, x)
        h.update(b"]")
    elif isinstance(v, bool) or v is None:
        h.update(repr(v).encode())
    elif isinstance(v, int):
        h.update(f"i{v:x};".encode())
    elif isinstance(v, float):
        h.update(f"f{v!r};".encode())
    elif isinstance(v, str):
        b = v.encode("utf-8", "surrogatepass")
        h.update(f"s{len(b)}:".encode() + b)
    elif isinstance(v, bytes):
        h.update(f"b{len(v)}:".encode() + v)
    else:
        h.update(f"?{type(v).__name__}:{v!r}".encode())


def records_key(records: Iterable[Any], *, context: str) -> str:
    """Hex sha256 over ``context`` (spec hash, code versions) and the records in order."""
    h = hashlib.sha256(context.encode())
    for r in records:
        _feed(h, r)
    return h.hexdigest()
