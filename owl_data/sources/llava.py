"""Reader for LLaVA instruction JSON (``llava=FILE_OR_DIR``).

Format (haotian-liu/LLaVA, ``docs/Data.md``; ``llava_instruct_150k.json``,
``llava_v1_5_mix665k.json``): a JSON list ``[{id, image, conversations: [{from: human |
gpt, value}]}]``; ``<image>`` in a human turn marks the image; ``image`` is relative to the
image folder the training script is given.

Spec: ``FILE.json`` or ``DIR`` (every ``*.json`` at its top, sorted), with options
``?images=DIR`` (the folder ``image`` paths are relative to; default the JSON's folder),
``task=vqa|caption`` (default ``vqa``) and ``split=NAME`` (default: by image).

Conversations are written as given (system turns kept; ``<image>`` left where it stands,
prepended to the first user turn only when no turn carries it); ``answers`` = the
assistant turns. Items: conversations, keyed ``<file>:<index>``. Reject reasons (stage
``read``): ``malformed_conversation``, ``no_image`` (text-only entries), ``multi_image``,
``missing_image``, ``path_outside_source``.
"""

from __future__ import annotations

from typing import Iterator

from owl_data.records import Record
from owl_data.sources import SourceOptions
from owl_data.sources._chat import read_chats

__all__ = ["read"]


def read(spec: str, options: SourceOptions) -> Iterator[Record]:
    """Read LLaVA instruction files; one Scene per conversation (see the module doc).

    Raises:
        SourceError: missing path, no ``*.json``, a file that is not a JSON list, a bad option.
    """
    return read_chats("llava", spec, options.name, (".json",))
