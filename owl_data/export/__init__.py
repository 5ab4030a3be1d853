"""Exports of a corpus for other tools, and reading them back.

- :func:`export_hf`: a Hugging Face hub-ready folder (dataset card with one config per task,
  Parquet with images embedded as the ``datasets`` ``Image`` feature);
- :func:`export_llava` / :func:`read_llava_export`: LLaVA instruction JSON plus an images
  folder, geometry rendered as text in a convention of :mod:`owl_data.conventions.coords`;
- :func:`export_sharegpt` / :func:`read_sharegpt_export`: the ShareGPT "messages" + "images"
  layout (LLaMA-Factory), likewise;
- :func:`import_export`: an LLaVA or ShareGPT export back into a corpus;
- :func:`push_corpus`: the hub-ready folder uploaded with ``huggingface_hub``.

Every export folder holds ``owl_export.json`` (format, coordinate convention, the corpus's
fingerprint and sources, files and row counts, rows skipped and why).
"""

from __future__ import annotations

from owl_data.conventions.coords import CONVENTIONS, DEFAULT_CONVENTION, CoordError, Convention
from owl_data.export.chat import ExportReport
from owl_data.export.hf import export_hf
from owl_data.export.importer import import_export
from owl_data.export.llava import export_llava, read_llava_export
from owl_data.export.push import PushError, push_corpus
from owl_data.export.rows import ExportError, ExportSettingError
from owl_data.export.sharegpt import export_sharegpt, read_sharegpt_export

__all__ = [
    "CONVENTIONS",
    "DEFAULT_CONVENTION",
    "Convention",
    "CoordError",
    "ExportError",
    "ExportSettingError",
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


def export_corpus(corpus, out, fmt: str, coords: str | None = None, *, overwrite: bool = False) -> "ExportReport":
    """Export ``corpus`` to ``out`` in ``fmt`` (``hf`` | ``llava`` | ``sharegpt``).

    ``coords`` names the text convention of ``llava``/``sharegpt`` (default ``qwen``); the
    ``hf`` export keeps geometry as data and refuses it.

    Raises:
        ExportSettingError: an unknown format (field ``format``), ``coords`` with ``hf``.
        ExportError: an ``out`` that exists and is not an earlier export, or is an export of
            another format and not ``overwrite``.
    """
    if fmt not in FORMATS:
        raise ExportSettingError("format", f"format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "hf":
        if coords is not None:
            raise ExportSettingError("coords", "coords applies to llava and sharegpt; the hf export keeps points "
                                     "and boxes as data")
        return export_hf(corpus, out, overwrite=overwrite)
    fn = export_llava if fmt == "llava" else export_sharegpt
    return fn(corpus, out, coords=coords or DEFAULT_CONVENTION, overwrite=overwrite)
