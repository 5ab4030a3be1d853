"""Readers of public annotation formats, one module per format.

Every reader has the same signature (a name -> function registry, as in
mosaicml/streaming)::

    read(spec: str, options: SourceOptions) -> Iterator[Scene | Reject]

``spec`` is what follows ``NAME=`` on the command line (``cityscapes=DIR``,
``coco=IMAGES_DIR:ANNOTATIONS.json``, ``drivelm=DIR``), with options after ``?``
parsed by one parser (:func:`owl_data.sources._common.split_options`): each reader's own,
and ``frame=upright|raw|auto`` that every reader takes and puts on its
:class:`~owl_data.records.ImageRef` (:func:`owl_data.ingest.frame.annotation_frame`).
Readers yield records in a
deterministic order, never decode images themselves (the builder does), and report every
item they cannot use as a :class:`~owl_data.records.Reject`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Iterator

from owl_data.ingest.files import DEFAULT_MAX_FILE_BYTES
from owl_data.records import Record

__all__ = ["SourceOptions", "SOURCES", "get_reader", "SourceError"]


class SourceError(ValueError):
    """A source spec that cannot be read at all (missing folder, unparsable file)."""


@dataclass(frozen=True)
class SourceOptions:
    """Options every reader accepts.

    Attributes:
        name: the name the source is registered under (stored as ``source`` in rows).
        synthetic: the data was drawn by the project (embedded default), not real.
        max_image_pixels: header width * height limit of the build; a reader that decodes
            pixels itself (Cityscapes' label maps) rejects a bigger frame (``too_large``)
            from its header, before decoding anything.
        max_file_bytes: size limit of an image file the reader opens itself (Cityscapes'
            frames and label maps: ``file_too_large``), checked before reading.
    """

    name: str
    synthetic: bool = False
    max_image_pixels: int = 64_000_000
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES


# name -> "module:function" (imported lazily so a missing optional dependency only
# affects the source that needs it)
SOURCES: dict[str, str] = {
    "cityscapes": "owl_data.sources.cityscapes:read",
    "coco": "owl_data.sources.coco:read",
    "drivelm": "owl_data.sources.drivelm:read",
    "vqav2": "owl_data.sources.vqav2:read",
    "gqa": "owl_data.sources.gqa:read",
    "llava": "owl_data.sources.llava:read",
    "sharegpt": "owl_data.sources.sharegpt:read",
    "coco_captions": "owl_data.sources.coco_captions:read",
    "flickr30k": "owl_data.sources.flickr30k:read",
    "refcoco": "owl_data.sources.refcoco:read",
    "visual_genome": "owl_data.sources.visual_genome:read",
    "pointingqa": "owl_data.sources.pointingqa:read",
    "llava_caps_boxes": "owl_data.sources.llava_caps_boxes:read",
}


def get_reader(name: str) -> Callable[[str, SourceOptions], Iterator[Record]]:
    """Return the reader registered under ``name``.

    Raises:
        SourceError: unknown name (the message lists the known ones).
    """
    if name not in SOURCES:
        raise SourceError(f"unknown source {name!r}; known sources: {', '.join(sorted(SOURCES))}")
    module, func = SOURCES[name].split(":")
    return getattr(importlib.import_module(module), func)
