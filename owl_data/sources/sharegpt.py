"""Reader for multimodal ShareGPT files (``sharegpt=FILE_OR_DIR``).

Formats (LLaMA-Factory ``data/README.md``, "ShareGPT format" with images): a JSON list or
JSONL of ``{messages: [{role: user|assistant|system, content}], images: [paths]}`` (the
``conversations``/``from``/``value`` spelling with ``human``/``gpt`` is read too), and the
content-parts layout where ``content`` is ``[{type: text|image_url, value}]`` and each image
part stands where its ``<image>`` goes. Image paths are relative to the file's folder.

Spec: ``FILE`` or ``DIR`` (every ``*.json``/``*.jsonl`` at its top, sorted), with options
``?images=DIR`` (folder image paths are relative to), ``task=vqa|caption`` (default ``vqa``)
and ``split=NAME``.

Turns are written as given, system turns kept; ``answers`` = the assistant turns. Items:
conversations, keyed ``<file>:<index>``. Reject reasons (stage ``read``):
``malformed_conversation``, ``no_image``, ``multi_image`` (several images in one row, until
multi-image rows are supported), ``missing_image``, ``path_outside_source``.
"""

from __future__ import annotations

from typing import Iterator

from owl_data.records import Record
from owl_data.sources import SourceOptions
from owl_data.sources._chat import read_chats

__all__ = ["read"]


def read(spec: str, options: SourceOptions) -> Iterator[Record]:
    """Read ShareGPT files; one Scene per conversation (see the module doc).

    Raises:
        SourceError: missing path, no file, a JSON file that is not a list, a bad option.
    """
    return read_chats("sharegpt", spec, options.name, (".json", ".jsonl"))
