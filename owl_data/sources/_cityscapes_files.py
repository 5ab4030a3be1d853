"""Cityscapes' files as the reader opens them: PNG headers, label maps and the polygons'
stated size, each within the build's limits, a fault being one :class:`FrameError` (the
frame's reject reason and detail). Used by :mod:`owl_data.sources.cityscapes`.
"""

from __future__ import annotations

import io
import json
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from owl_data.errors import RejectError, exc_text
from owl_data.ingest.files import FileProblem, open_regular, read_recorded, read_regular
from owl_data.ingest.frame import annotation_frame
from owl_data.ingest.geometry import GeometryError
from owl_data.ingest.images import exif_orientation
from owl_data.ingest.numbers import pixel_int

__all__ = ["FrameError", "open_header", "check_frame", "check_map_header", "read_map", "check_polygon_size"]

# what Pillow raises on a damaged file (TypeError/struct errors come from broken TIFF-like
# headers; struct.error subclasses Exception only)
_PIL_ERRORS = (OSError, ValueError, SyntaxError, TypeError, EOFError, struct.error)


class FrameError(RejectError):
    """A frame that cannot be used; ``reason`` is the reject reason (always with a detail)."""


def open_header(path: Path, rel: str, reason: str, limits: tuple[int, int]) -> tuple[tuple[int, int], int]:
    """((W, H), EXIF orientation) from a PNG header (no pixel decoded); ``too_large`` over ``max_pixels``.

    ``limits`` is (max_pixels, max_bytes); the file is opened by
    :func:`~owl_data.ingest.files.open_regular` (``not_a_regular_file``, ``file_too_large``).
    """
    max_pixels, max_bytes = limits
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open_regular(path, max_bytes=max_bytes, what=reason.removeprefix("unreadable_")) as f, \
                    Image.open(f) as im:
                size, orientation = im.size, exif_orientation(im)
    except FileProblem:  # a ValueError too: keeps its own reason
        raise
    except Image.DecompressionBombError as exc:
        raise FrameError("too_large", f"{rel}: {exc}") from None
    except _PIL_ERRORS as exc:
        raise FrameError(reason, f"{rel}: {exc_text(exc)}") from None
    if size[0] * size[1] > max_pixels:
        raise FrameError("too_large", f"{rel} is {size[0]}x{size[1]} = {size[0] * size[1]} pixels > limit {max_pixels}")
    return size, orientation


def check_frame(rel: str, header: tuple[int, int], image: tuple[int, int], orientation: int, frame: str) -> None:
    """``size_mismatch`` unless a map of size ``header`` fits the image (raw (W, H) ``image``,
    EXIF ``orientation``) in the frame the ``?frame=`` option takes
    (:func:`owl_data.ingest.frame.annotation_frame`)."""
    try:
        annotation_frame(header, image, orientation, frame)
    except GeometryError as exc:
        turned = "" if orientation == 1 else f" (EXIF orientation {orientation}, ?frame={frame}: {exc.detail})"
        raise FrameError("size_mismatch", f"{rel} is {header[0]}x{header[1]}, image is "
                                           f"{image[0]}x{image[1]}{turned}") from None


def check_map_header(path: Path, rel: str, size: tuple[int, int], limits: tuple[int, int]) -> None:
    """A map's header: readable, within the limits, of the size ``size`` (the instanceIds
    map's; nothing decoded)."""
    header = open_header(path, rel, "unreadable_annotation", limits)[0]
    if header != size:
        raise FrameError("size_mismatch", f"{rel} is {header[0]}x{header[1]}, image is {size[0]}x{size[1]}")


def read_map(path: Path, rel: str, size: tuple[int, int], limits: tuple[int, int]) -> np.ndarray:
    """Decode a single-channel annotation PNG as a (H, W) array, dtype kept (uint16 stays).

    The file is read once (its sha256 noted); the header in those bytes is checked (size
    equal to the image's, within ``max_pixels``) before any pixel is decoded.
    """
    data, _ = read_recorded(path, max_bytes=limits[1], what="annotation")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                header = im.size
                if header[0] * header[1] > limits[0]:
                    raise FrameError("too_large", f"{rel} is {header[0]}x{header[1]} pixels > limit {limits[0]}")
                if header != size:
                    raise FrameError("size_mismatch", f"{rel} is {header[0]}x{header[1]}, image is {size[0]}x{size[1]}")
                arr = np.array(im)
    except FrameError:
        raise
    except Image.DecompressionBombError as exc:
        raise FrameError("too_large", f"{rel}: {exc}") from None
    except _PIL_ERRORS as exc:
        raise FrameError("unreadable_annotation", f"{rel}: {exc_text(exc)}") from None
    if arr.ndim != 2:
        raise FrameError("unreadable_annotation", f"{rel}: expected one channel, got shape {arr.shape}")
    if (arr.shape[1], arr.shape[0]) != size:
        raise FrameError("size_mismatch", f"{rel} is {arr.shape[1]}x{arr.shape[0]}, image is {size[0]}x{size[1]}")
    return arr


def check_polygon_size(path: Path, rel: str, size: tuple[int, int]) -> None:
    try:
        data = json.loads(read_regular(path, what="annotation").decode("utf-8"))
        declared = (pixel_int(data["imgWidth"], "imgWidth"), pixel_int(data["imgHeight"], "imgHeight"))
    except FileProblem:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:  # ValueError: JSON, NumberError
        raise FrameError("unreadable_annotation", f"{rel}: {exc_text(exc)}") from None
    except RecursionError:
        raise FrameError("unreadable_annotation", f"{rel}: JSON nested too deeply") from None
    if declared != size:
        raise FrameError("size_mismatch", f"{rel} states {declared[0]}x{declared[1]}, image is {size[0]}x{size[1]}")
