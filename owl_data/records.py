"""The records that flow from sources to the corpus writer.

A source reads a public format and yields, per image, one :class:`Scene` (the image
reference plus everything the source knows about it, geometry still in the annotation
file's pixel frame) or a :class:`Reject` for an item it could not use. The builder decodes
the image, turns every geometry into the stored upright frame (:mod:`owl_data.ingest.geometry`),
samples points (:mod:`owl_data.ingest.points`), generates text (:mod:`owl_data.generators`) and
writes rows (:mod:`owl_data.corpus.writer`).

Accounting (DESIGN.md): every item a source reads ends as *kept* or *rejected*; a Scene
lists the item keys it covers in ``items`` and the builder rejects the ones it cannot use.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Union

import numpy as np

from owl_data.errors import without_addresses

__all__ = [
    "ImageRef",
    "Polygons",
    "RLE",
    "MaskArray",
    "Box",
    "Geometry",
    "Instance",
    "SourceQA",
    "TextRow",
    "Scene",
    "Reject",
    "DeferredScene",
    "expand_deferred",
    "iter_expanded",
    "Record",
    "SPLIT_NAME",
]

# A split names a corpus folder (``<task>/<split>/``): letters, digits, ``_ . -``, no path.
SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class ImageRef:
    """Where an image file was found.

    Attributes:
        source: source name (``cityscapes``, ``coco``, ``drivelm``...).
        path: absolute path of the file, already checked to lie inside the source root.
        source_path: POSIX path relative to the source root (stored in ``image_refs``).
        group: what must not straddle splits (city, drive log, scene).
        split: the source's own split (``train``/``val``/``test``), or None to split by group.
        declared_size: (W, H) in pixels that the annotation file states for the image, or
            None when it states none.
        frame: the source's ``?frame=`` option, ``upright`` (default), ``raw`` or ``auto``:
            which frame of an EXIF-oriented image the annotations are in
            (:func:`owl_data.ingest.frame.annotation_frame`).
    """

    source: str
    path: Path
    source_path: str
    group: str
    split: str | None = None
    declared_size: tuple[int, int] | None = None
    frame: str = "upright"


@dataclass(frozen=True)
class Polygons:
    """COCO-style polygons ``[[x1, y1, x2, y2, ...], ...]`` in pixels of the declared frame."""

    polygons: list[list[float]]


@dataclass(frozen=True)
class RLE:
    """COCO run-length encoding ``{size: [h, w], counts: str | list[int]}``."""

    rle: dict


@dataclass(frozen=True)
class MaskArray:
    """A boolean (h, w) mask in the pixel grid of the annotation frame (the raw grid before
    EXIF, or the upright one: :attr:`ImageRef.frame`), like every other geometry.

    Attributes:
        mask: bool array of shape (h, w); may be a crop of that grid.
        offset: (x0, y0) in that grid's pixels: the crop's top-left is column x0, row y0; any
            crop inside the frame, (0, 0) included. ``None`` (the default) marks a full-frame
            mask, whose shape must be the frame's (H, W).
    """

    mask: np.ndarray
    offset: tuple[int, int] | None = None


@dataclass(frozen=True)
class Box:
    """An xyxy box in pixels of the declared frame (continuous coordinates)."""

    x1: float
    y1: float
    x2: float
    y2: float


Geometry = Union[Polygons, RLE, MaskArray, Box]


@dataclass
class Instance:
    """One annotated object (or one stuff region) of a scene.

    Attributes:
        instance: the source's own identifier as a string (Cityscapes instanceIds value or
            ``class:component``, COCO annotation id, DriveLM tag).
        category: class name in the source's vocabulary (``car``, ``person``...) as the
            reader gives it; the build replaces it with the unified name
            (:mod:`owl_data.conventions.taxonomy`) and keeps this one in ``source_category``.
        kind: ``thing`` (countable object) or ``stuff`` (road, sky...).
        geometry: the region in the declared frame; None if the source gives none.
        item: accounting key when this instance is an item of the source, else None.
        point: an annotated point (x, y) in pixels of the declared frame (DriveLM tags).
        attributes: source attributes (``status``, ``visual_description``...).
        crowd: a region of several objects (COCO ``iscrowd``): context, never a target.
        source_category: the source's own name once the build has unified ``category``; None
            before (readers leave it unset).
    """

    instance: str
    category: str
    kind: Literal["thing", "stuff"] = "thing"
    geometry: Geometry | None = None
    item: str | None = None
    point: tuple[float, float] | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    crowd: bool = False
    source_category: str | None = None


@dataclass
class SourceQA:
    """A question/answer pair the source gives about one of its instances (DriveLM QA).

    ``question`` and ``answer`` already have the target's tag replaced by ``<point>``
    (question) and other tags by short phrases; ``target`` is the ``Instance.instance``
    whose point the row carries.
    """

    item: str
    question: str
    answer: str
    target: str
    family: str = "qa"


@dataclass
class TextRow:
    """A task row the source gives directly (VQA, caption, referring expression, point QA).

    The builder (:mod:`owl_data.build.rows`) resolves its geometry in the stored upright
    frame, fills prompts from the versioned pools (:mod:`owl_data.generators.prompts`) and
    writes it to the ``task`` table. Placeholders: ``question`` and ``turns`` never need
    ``<image>`` added by the source unless they carry it already (chat formats keep theirs).

    Attributes:
        task: ``vqa`` | ``caption`` | ``grounding`` | ``point_vqa``.
        item: accounting key (kept when at least one row is written from it).
        key: distinguishes several rows of one item (part of the row id).
        turns: a whole conversation ``[(role, content)]`` (roles ``system``/``user``/
            ``assistant``), written as given except that ``<image>`` is prepended to the
            first user turn when no turn carries it (chat sources: LLaVA, ShareGPT).
        question: user text without ``<image>`` (vqa, point_vqa; caption: None draws a
            prompt from the caption pool).
        answer: the assistant turn (VQA: the majority answer; caption: the caption).
        answers: every reference answer (``vqa.answers``); None -> ``[answer]``.
        expression: grounding: the referring expression; None -> built from ``category``
            with a relation word when the scene has several boxes of that category.
        category: grounding: class name for generated expressions; point_vqa: target category
            (unified by the build as :attr:`Instance.category` is).
        box: xyxy box (grounding: the referred region; point_vqa: the target's box).
        instance: grounding without ``box``: use the region of this scene Instance;
            point_vqa: ``target.instance`` (default: the item key).
        point: point_vqa: (x, y).
        coords: frame of ``box``/``point``: ``pixels`` of the declared frame (as
            :class:`Box`), or ``normalised`` to [0, 1] of the declared frame.
        system: a system turn placed first (kept as given).
        kind, generator: point_vqa ``kind`` and ``generator`` fields.
        description: point_vqa: the target's visual description (DriveLM ``Visual_description``),
            read only to unify ``category`` by the kind it names; "" when none.
        source_category: the source's own name once the build has unified ``category``; None before.
    """

    task: Literal["vqa", "caption", "grounding", "point_vqa"]
    item: str
    key: str = ""
    turns: list[tuple[str, str]] | None = None
    question: str | None = None
    answer: str | None = None
    answers: list[str] | None = None
    expression: str | None = None
    category: str | None = None
    box: Box | None = None
    instance: str | None = None
    point: tuple[float, float] | None = None
    coords: Literal["pixels", "normalised"] = "pixels"
    system: str | None = None
    kind: Literal["description", "reasoning"] = "reasoning"
    generator: str | None = None
    description: str = ""
    source_category: str | None = None


@dataclass
class Scene:
    """Everything one source knows about one image.

    Attributes:
        ref: the image reference.
        instances: objects and stuff regions (targets and context).
        semantic: optional (H, W) uint8 Cityscapes label-id map in the annotation frame
            (:attr:`ImageRef.frame`; its size is the frame's),
            used for stuff context (road, sidewalk) by the generators.
        items: accounting keys of all items this scene covers (instances' and QAs' items
            included); each ends kept or rejected.
        qa: source-given QA rows about instances.
        sample_points: whether to sample points in instance masks (False for sources that
            annotate points themselves, e.g. DriveLM).
        grounding_from_attributes: emit grounding rows (``visual_description`` -> box).
        rows: task rows the source gives directly (their items need not be listed in
            ``items``: the builder adds them).
    """

    ref: ImageRef
    instances: list[Instance] = field(default_factory=list)
    semantic: np.ndarray | None = None
    items: list[str] = field(default_factory=list)
    qa: list[SourceQA] = field(default_factory=list)
    sample_points: bool = True
    grounding_from_attributes: bool = False
    rows: list[TextRow] = field(default_factory=list)


@dataclass(frozen=True)
class Reject:
    """An input item that was not used: where, which, at what stage and why.

    Every reject row of a corpus is made from one, so ``detail`` is freed of object addresses
    here (:func:`~owl_data.errors.without_addresses`): the same inputs give the same rows.
    """

    source: str
    item: str
    stage: str
    reason: str
    detail: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.detail, str):
            object.__setattr__(self, "detail", without_addresses(self.detail))


@dataclass(frozen=True)
class DeferredScene:
    """A scene whose files are read and decoded where it is processed (a build worker), not by the reader.

    A reader yields one instead of a :class:`Scene` when building the Scene means decoding
    large files (Cityscapes' label maps): what travels to a worker is then this small
    record (paths and header facts, well under 1 MB pickled), and the worker calls
    ``loader(*args)``, which returns the Scenes and Rejects of the frame.

    Attributes:
        source: the source name.
        loader: ``"module:function"``, importable in the worker; called as ``loader(*args)``.
        args: picklable positional arguments (paths, header facts, names); part of the
            chunk's resume key, so everything the outcome depends on besides the bytes of the
            files the loader reads must be in them.
        item: the accounting key rejected (``processing_error``) when the loader cannot run
            at all (it raises or its process dies every time); a Cityscapes frame's ``source_path``.
        pixels: width * height of the frame from its header (0 when unknown): what the build's
            chunks are sized by (``BuildConfig.chunk_pixels``).
    """

    source: str
    loader: str
    args: tuple[Any, ...]
    item: str
    pixels: int = 0


def expand_deferred(record: DeferredScene) -> list["Scene | Reject"]:
    """The Scenes and Rejects ``record.loader(*record.args)`` returns, in its order.

    Raises:
        ValueError: ``loader`` is not ``module:function``.
        ImportError, AttributeError: the loader cannot be imported; else what the loader raises.
    """
    module, sep, func = record.loader.partition(":")
    if not sep or not module or not func:
        raise ValueError(f"deferred loader {record.loader!r}: expected module:function")
    return list(getattr(importlib.import_module(module), func)(*record.args))


def iter_expanded(records: "Iterator[Record]") -> "Iterator[Scene | Reject]":
    """``records`` with every :class:`DeferredScene` expanded in place (in this process)."""
    for r in records:
        if isinstance(r, DeferredScene):
            yield from expand_deferred(r)
        else:
            yield r


Record = Union[Scene, Reject, DeferredScene]
