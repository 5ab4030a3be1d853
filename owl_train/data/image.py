"""Images for the vision tower: Qwen2-VL's smart resize and patch layout, without torchvision.

:func:`preprocess_image` reproduces transformers' ``Qwen2VLImageProcessorPil``
(``models/qwen2_vl/image_processing_pil_qwen2_vl.py``, the backend transformers uses when
torchvision is absent) value for value: RGB conversion compositing transparency onto white,
PIL bicubic resize of the 8-bit image to the smart-resize size, rescale by 1/255 in float64
then float32, normalisation by the OpenAI CLIP mean/std in float32, and the patch order
(merge groups row-major, each 2x2 group's patches row-major, each patch flattened as
(C, T, 14, 14) with the frame duplicated over the temporal patch of 2).

:func:`preprocess_crop` makes the foveal crop of variant (e) (Describe Anything's focal prompt):
a square around the point cut from the *original-resolution* image (:func:`foveal_box`), resized
to a fixed small size and laid out as patches the same way.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from owl_train.data.config import FACTOR, MERGE_SIZE, PATCH_SIZE, TEMPORAL_PATCH_SIZE, DataConfig

__all__ = ["smart_resize", "preprocess_image", "preprocess_crop", "foveal_box", "resized_size", "PATCH_DIM",
           "CLIP_MEAN", "CLIP_STD", "MAX_ASPECT"]

PATCH_DIM = 3 * TEMPORAL_PATCH_SIZE * PATCH_SIZE * PATCH_SIZE  # 1176 values per pixel_values row
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # transformers image_utils.OPENAI_CLIP_MEAN
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)  # transformers image_utils.OPENAI_CLIP_STD
MAX_ASPECT = 200  # Qwen2-VL refuses longer/shorter side ratios above this


def smart_resize(height: int, width: int, factor: int = FACTOR, min_pixels: int = 56 * 56,
                 max_pixels: int = 28 * 28 * 1280) -> tuple[int, int]:
    """(height, width) -> the resized (height, width): multiples of ``factor``, area within
    [min_pixels, max_pixels], aspect kept as nearly as possible, no side below ``factor``.

    Equal to transformers' ``models/qwen2_vl`` ``smart_resize`` except where that one breaks its
    own budget: when a thin image's short side is held at ``factor`` (or rounded up to it), the
    long side is shrunk so the area stays within ``max_pixels`` (20x2000 with max 15680 gives
    28x560, where transformers gives 28x1232 = 34496 pixels; 13x1968 gives 28x560, not 28x700).
    31x639 with max 15680 gives 28x560 in both.

    Raises:
        ValueError: a side below 1 pixel, an aspect ratio over 200 (Qwen2-VL's limit), or a
            budget smaller than one ``factor`` x ``factor`` block.
    """
    if height < 1 or width < 1:
        raise ValueError(f"image of {width}x{height} pixels: both sides must be at least 1")
    if max_pixels < factor * factor:
        raise ValueError(f"max_pixels={max_pixels} is below one {factor}x{factor} block; raise it")
    aspect = max(height, width) / min(height, width)
    if aspect > MAX_ASPECT:
        raise ValueError(f"image of {width}x{height} pixels has aspect ratio {aspect:.1f} > {MAX_ASPECT} "
                         f"(Qwen2-VL's limit): crop or pad it before training")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    # transformers stops here; a short side held at (or rounded up to) factor can leave the
    # area over budget: shrink the long side, then, if needed, the short one
    for _ in range(2):
        if h_bar * w_bar > max_pixels:
            if h_bar <= w_bar:
                w_bar = max(factor, max_pixels // (h_bar * factor) * factor)
            else:
                h_bar = max(factor, max_pixels // (w_bar * factor) * factor)
    return h_bar, w_bar


def resized_size(width: int, height: int, cfg: DataConfig) -> tuple[int, int]:
    """(W, H) of an image of ``width`` x ``height`` after smart resize under ``cfg``: the frame
    of ``box_format="pixel"`` coordinates."""
    h, w = smart_resize(height, width, FACTOR, cfg.min_pixels, cfg.max_pixels)
    return w, h


def _to_rgb(image: Image.Image) -> Image.Image:
    """transformers ``image_transforms.convert_to_rgb``: transparency composited onto white."""
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _patches(arr: np.ndarray) -> tuple[Tensor, Tensor]:
    """A resized (H, W, 3) uint8 array (sides multiples of 28) -> (pixel_values (N, 1176), grid (1, 3))."""
    h, w = arr.shape[:2]
    x = (arr.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.array(CLIP_MEAN, dtype=np.float32)) / np.array(CLIP_STD, dtype=np.float32)  # (H, W, 3)
    gh, gw, m, p = h // PATCH_SIZE, w // PATCH_SIZE, MERGE_SIZE, PATCH_SIZE
    x = x.transpose(2, 0, 1).reshape(3, gh // m, m, p, gw // m, m, p)  # (C, gh/m, m, p, gw/m, m, p)
    x = x.transpose(1, 4, 2, 5, 0, 3, 6)  # (gh/m, gw/m, m, m, C, p, p)
    x = np.broadcast_to(x[:, :, :, :, :, None], (*x.shape[:5], TEMPORAL_PATCH_SIZE, p, p))  # (..., C, T, p, p)
    pixel_values = torch.from_numpy(np.ascontiguousarray(x).reshape(gh * gw, PATCH_DIM))  # (N, 1176)
    grid = torch.tensor([[1, gh, gw]], dtype=torch.long)  # (1, 3)
    return pixel_values, grid


def preprocess_image(image: Image.Image, cfg: DataConfig) -> tuple[Tensor, Tensor]:
    """One PIL image -> (pixel_values (N, 1176) float32, image_grid_thw (1, 3) int64).

    N = T * H * W patches with (T, H, W) = (1, H_r / 14, W_r / 14) for the resized H_r x W_r;
    the LLM sees N / 4 merged tokens. The image is used as stored (no EXIF transpose: the
    corpus stores upright images).

    Raises:
        ValueError: from :func:`smart_resize` (aspect ratio over 200, empty image).
    """
    rgb = _to_rgb(image)
    h, w = smart_resize(rgb.height, rgb.width, FACTOR, cfg.min_pixels, cfg.max_pixels)
    return _patches(np.asarray(rgb.resize((w, h), resample=Image.Resampling.BICUBIC)))  # (H, W, 3) uint8


def foveal_box(width: int, height: int, point: tuple[float, float], fraction: float) -> tuple[int, int, int, int]:
    """The foveal crop square (left, top, right, bottom) in pixels of a ``width`` x ``height``
    image: side round(fraction · min(width, height)) (at least 1), centred on the point
    (x, y) in [0, 1] (x·width, y·height) and shifted to lie inside the image."""
    side = max(1, math.floor(fraction * min(width, height) + 0.5))
    left = min(max(math.floor(point[0] * width - side / 2 + 0.5), 0), width - side)
    top = min(max(math.floor(point[1] * height - side / 2 + 0.5), 0), height - side)
    return left, top, left + side, top + side


def preprocess_crop(image: Image.Image, point: tuple[float, float], fraction: float,
                    pixels: int) -> tuple[Tensor, Tensor, Tensor]:
    """The foveal crop of ``image`` (its original resolution) around ``point`` (x, y) in [0, 1].

    The :func:`foveal_box` square is cut out first and then resized (PIL bicubic) to
    ``pixels`` x ``pixels``, so the crop depends on the pixels inside the square only.

    Returns:
        pixel_values (N, 1176) float32 with N = (pixels / 14)²; image_grid_thw (1, 3) int64 =
        (1, pixels / 14, pixels / 14); box (1, 4) float32 (x0, y0, x1, y1), the square
        normalised to [0, 1] of the image (the frame of the crop tokens' rotary positions).

    Raises:
        ValueError: ``pixels`` not a positive multiple of 28.
    """
    if pixels < FACTOR or pixels % FACTOR:
        raise ValueError(f"foveal crop size {pixels} px is invalid: use a multiple of {FACTOR}, e.g. 56")
    rgb = _to_rgb(image)
    l, t, r, b = foveal_box(rgb.width, rgb.height, point, fraction)
    arr = np.asarray(rgb.crop((l, t, r, b)).resize((pixels, pixels), resample=Image.Resampling.BICUBIC))
    pixel_values, grid = _patches(arr)
    box = torch.tensor([[l / rgb.width, t / rgb.height, r / rgb.width, b / rgb.height]], dtype=torch.float32)
    return pixel_values, grid, box  # (N, 1176), (1, 3), (1, 4)
