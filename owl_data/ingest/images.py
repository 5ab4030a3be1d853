"""Image ingest: header checks, decoding, EXIF orientation, colour modes, hashing.

An image that needs no change (upright, 8-bit RGB, a common format) is stored byte for byte
as found; one that must change (EXIF-rotated, CMYK, 16-bit, palette, grayscale, alpha) is
decoded once, made upright RGB and re-encoded without loss (PNG) unless configured
otherwise. The stored image's ``image_id`` is the sha256 of the stored bytes.

Conventions:
    - EXIF orientation (tag 0x0112, EXIF 2.32) is applied exactly once, here, with the same
      array transform the annotations get (:func:`owl_data.ingest.orientation.transform_mask`); a
      broken EXIF block is ignored (orientation 1), never a reason to reject.
    - 16-bit samples are scaled to 8 bits (``round(v * 255 / 65535)``), never clipped. A
      16-bit RGB PNG (48-bit), which Pillow decodes as mode ``RGB`` by keeping each
      sample's high byte (``v >> 8``, at most 1 below the rounded scale), is detected from
      its raw mode and re-encoded too: it is never stored byte for byte as if 8-bit.
    - Alpha is dropped (RGBA -> RGB, no compositing); palette and grayscale images are
      expanded to RGB; CMYK is converted by Pillow.
    - Width x height is read from the header before any decoding; images over
      ``max_pixels`` are rejected (``too_large``), which defuses decompression bombs; a file
      over ``max_bytes`` is rejected (``file_too_large``) from its size, before it is read.
    - Every pixel is decoded (``LOAD_TRUNCATED_IMAGES`` off) before the image is stored; pixel
      data that does not decode is ``unreadable_image``, never stored as blank pixels.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from owl_data.errors import RejectError, exc_text
from owl_data.ingest.files import DEFAULT_MAX_FILE_BYTES, FileProblem, read_recorded
from owl_data.ingest.orientation import transform_mask

__all__ = ["ImageError", "DecodedImage", "load_image", "read_header", "exif_orientation", "STORE_AS_IS_FORMATS"]

STORE_AS_IS_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
_EXIF_ORIENTATION = 0x0112
# what Pillow raises on damaged files; TypeError comes from corrupt TIFF headers (a float
# where a count is expected) during ``load``
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, TypeError, EOFError, struct.error, UnidentifiedImageError)


class ImageError(RejectError):
    """An image that cannot be ingested; ``reason`` is the reject reason."""


@dataclass
class DecodedImage:
    """An ingested image.

    Attributes:
        data: the bytes to store (the file's own bytes when unchanged).
        format: lower-case format of ``data`` (``jpeg``, ``png``, ``webp``).
        width, height: size of the stored upright image in pixels.
        raw_size: (W, H) of the file's pixel grid before EXIF orientation.
        orientation: the EXIF orientation found (1 when absent or unreadable).
        pixels: (H, W, 3) uint8 RGB of the stored upright image.
        image_id: hex sha256 of ``data``.
        reencoded: True when ``data`` is not the file's own bytes.
        file_sha256: hex sha256 of the file's bytes (equal to ``image_id`` when stored as found);
            the file was hashed once, as it was read
            (:func:`~owl_data.ingest.files.read_recorded`).
    """

    data: bytes
    format: str
    width: int
    height: int
    raw_size: tuple[int, int]
    orientation: int
    pixels: np.ndarray
    image_id: str
    reencoded: bool
    file_sha256: str = ""


def exif_orientation(img: Image.Image) -> int:
    """The EXIF Orientation tag (0x0112) of an opened image: 1..8, or 1 when absent, out of
    range or unreadable (a broken EXIF block is never a reason to reject)."""
    try:
        value = img.getexif().get(_EXIF_ORIENTATION, 1)
    except (*_DECODE_ERRORS, KeyError, TypeError, IndexError, AttributeError):
        return 1  # a broken EXIF block is ignored, never a reason to reject
    try:
        value = int(value)
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def read_header(data: bytes, max_pixels: int) -> tuple[Image.Image, int, int]:
    """Open ``data`` lazily and check its header size.

    Returns:
        (lazy PIL image, width, height) of the raw pixel grid.

    Raises:
        ImageError: ``unreadable_image`` (not an image / corrupt header) or ``too_large``
            (width * height over ``max_pixels``).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageError("too_large", str(exc)) from None
    except _DECODE_ERRORS as exc:
        raise ImageError("unreadable_image", exc_text(exc)) from None
    w, h = img.size
    if w <= 0 or h <= 0:
        raise ImageError("unreadable_image", f"header size {w}x{h}")
    if w * h > max_pixels:
        raise ImageError("too_large", f"{w}x{h} = {w * h} pixels > limit {max_pixels}")
    return img, w, h


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB from any Pillow mode; 16-bit scaled, alpha dropped."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(img).astype(np.float64)
        if mode == "I" and a.size and a.max() <= 255:  # 8-bit data stored as 32-bit ints
            a8 = np.clip(a, 0, 255)
        else:
            a8 = np.clip(a, 0, 65535) * (255.0 / 65535.0)
        g = np.rint(a8).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if mode == "F":
        a = np.asarray(img, dtype=np.float64)
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 1.0)
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        g = np.rint((a - lo) * scale).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def _deep_samples(img: Image.Image) -> bool:
    """True when the file holds more than 8 bits per sample though Pillow's mode says 8.

    Pillow opens a 16-bit RGB(A) PNG (48/64-bit) as mode ``RGB``/``RGBA`` and reduces it to
    8 bits while decoding; its tile's raw mode (``RGB;16B``) still says what the file holds.
    Must be called before anything that loads the image (``load()``, PNG ``getexif()``).
    """
    return any(";16" in str(getattr(t, "args", t[3] if len(t) > 3 else "")) for t in (img.tile or []))


def load_image(
    path: Path,
    *,
    max_pixels: int = 64_000_000,
    max_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
    reencode_format: str = "png",
    jpeg_quality: int = 95,
) -> DecodedImage:
    """Read, check and decode one image file for storage.

    Args:
        path: the image file.
        max_pixels: header width * height limit (``too_large`` beyond it).
        max_bytes: file size limit, checked before reading (``file_too_large``); None: none.
        reencode_format: ``png`` (lossless, default) or ``jpeg`` for images that must change.
        jpeg_quality: quality when ``reencode_format`` is ``jpeg``.

    Raises:
        ImageError: ``missing_image``, ``unreadable_image`` (corrupt, truncated, pixel data
            that does not decode, not an image), ``too_large``, ``file_too_large``,
            ``not_a_regular_file`` (a FIFO, folder or device).
    """
    try:
        # stat before read (regular, small enough); hashed once, noted for the resume check
        data, file_sha = read_recorded(path, max_bytes=max_bytes, what="image")
    except FileProblem as exc:
        raise ImageError(exc.reason, exc.detail) from None
    img, w, h = read_header(data, max_pixels)
    fmt = (img.format or "").upper()
    deep = _deep_samples(img)  # before load(), which drops the tiles
    try:
        # every pixel decoded before anything else touches the image: getexif() on a PNG
        # loads it too, and a second load() after a failed one returns blank pixels
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        img.load()
        arr = _to_rgb_array(img)
    except _DECODE_ERRORS as exc:
        raise ImageError("unreadable_image", exc_text(exc)) from None
    orientation = exif_orientation(img)
    if arr.ndim != 3 or arr.shape[:2] != (h, w):
        raise ImageError("unreadable_image", f"decoded shape {arr.shape} for header {w}x{h}")
    as_is = fmt in STORE_AS_IS_FORMATS and img.mode == "RGB" and orientation == 1 and not deep
    if as_is:
        out, out_fmt, pixels = data, fmt.lower(), arr
    else:
        pixels = np.ascontiguousarray(transform_mask(arr, orientation))
        buf = io.BytesIO()
        if reencode_format == "png":
            Image.fromarray(pixels, "RGB").save(buf, format="PNG", compress_level=6)
        elif reencode_format == "jpeg":
            Image.fromarray(pixels, "RGB").save(buf, format="JPEG", quality=jpeg_quality)
        else:
            raise ValueError(f"reencode_format={reencode_format!r}: use 'png' or 'jpeg'")
        out, out_fmt = buf.getvalue(), reencode_format
    ph, pw = pixels.shape[:2]
    return DecodedImage(
        data=out,
        format="jpeg" if out_fmt == "jpg" else out_fmt,
        width=pw,
        height=ph,
        raw_size=(w, h),
        orientation=orientation,
        pixels=pixels,
        image_id=file_sha if as_is else hashlib.sha256(out).hexdigest(),
        reencoded=not as_is,
        file_sha256=file_sha,
    )
