"""Exports of a corpus for other tools, and reading them back.

- :func:`export_hf`: a Hugging Face hub-ready folder (dataset card with one config per task,
  Parquet with images embedded as the ``datasets`` ``Image`` feature);
- :func:`export_llava` / :func:`read_llava_export`: LLaVA instruction JSON plus an images
  folder, geometry rendered as text in a convention of :mod:`owl_data.export.coords`;
- :func:`export_sharegpt` / :func:`read_sharegpt_export`: the ShareGPT "messages" + "images"
  layout (LLaMA-Factory), likewise;
- :func:`import_export`: an LLaVA or ShareGPT export back into a corpus;
- :func:`push_corpus`: the hub-ready folder uploaded with ``huggingface_hub``.

Every export folder holds ``owl_export.json`` (format, coordinate convention, the corpus's
fingerprint and sources, files and row counts, rows skipped and why).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import importlib
from typing import Any

from owl_data.export.coords import CONVENTIONS, DEFAULT_CONVENTION, CoordError, Convention
from owl_data.export.rows import ExportError

# heavier modules (datasets, huggingface_hub) load on first use, so that importing
# owl_data.export.coords (e.g. from the trainer) stays light
_LAZY = {
    "ExportReport": "chat",
    "export_hf": "hf",
    "import_export": "importer",
    "export_llava": "llava",
    "read_llava_export": "llava",
    "export_sharegpt": "sharegpt",
    "read_sharegpt_export": "sharegpt",
    "PushError": "push",
    "push_corpus": "push",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"owl_data.export.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CONVENTIONS",
    "DEFAULT_CONVENTION",
    "Convention",
    "CoordError",
    "ExportError",
    "ExportReport",
    "PushError",
    "FORMATS",
    "export_corpus",
    "export_hf",
    "export_llava",
    "export_sharegpt",
    "import_export",
    "push_corpus",
    "read_llava_export",
    "read_sharegpt_export",
]

FORMATS = ("hf", "llava", "sharegpt")

if TYPE_CHECKING:  # pragma: no cover
    from owl_data.export.chat import ExportReport


def export_corpus(corpus, out, fmt: str, coords: str | None = None) -> "ExportReport":
    """Export ``corpus`` to ``out`` in ``fmt`` (``hf`` | ``llava`` | ``sharegpt``).

    ``coords`` names the text convention of ``llava``/``sharegpt`` (default ``qwen``); the
    ``hf`` export keeps geometry as data and refuses it.

    Raises:
        ExportError: an unknown format, ``coords`` with ``hf``, or an ``out`` that exists and
            is not an earlier export.
    """
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "hf":
        if coords is not None:
            raise ExportError("--coords applies to llava and sharegpt; the hf export keeps points and boxes as data")
        return __getattr__("export_hf")(corpus, out)
    fn = __getattr__("export_llava" if fmt == "llava" else "export_sharegpt")
    return fn(corpus, out, coords=coords or DEFAULT_CONVENTION)
