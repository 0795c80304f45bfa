"""Anyres geometry shared by preprocessing and feature packing (LLaVA-NeXT semantics).

Sizes follow PIL: ``(width, height)``. Grid pinpoints are ``(width, height)`` pairs in pixels, in LLaVA-NeXT's
order (width-major), which matters for tie-breaking in :func:`select_best_resolution`.

The aspect-ratio modes understood by this package:

* ``square``       squash to the crop size (stage-1 default),
* ``pad``          pad to a square with the mean colour, then resize (one crop, 730 tokens),
* ``anyres``       base crop + grid crops, spatial unpad,
* ``anyres_max_N`` like ``anyres``, and the unpadded grid is bilinearly shrunk when it holds more than
  ``1.1**2 * N`` crops' worth of tokens (LLaVA-OneVision uses N = 9).
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass

import torch
from PIL import Image

from vlcommon.enums import StrEnum

Size = tuple[int, int]  # (width, height)

_PINPOINT_RANGE = re.compile(r"\((\d+)x(\d+)\)")
_ANYRES_MAX = re.compile(r"^anyres_max_(\d+)$")
# Interpolation threshold of LLaVA-NeXT: shrink only when the area ratio exceeds 1.1**2.
ANYRES_MAX_TOLERANCE = 1.1


class AspectRatio(StrEnum):
    SQUARE = "square"  # resize to the crop size, aspect ratio lost
    PAD = "pad"  # pad to a square with the mean colour, then resize
    ANYRES = "anyres"  # base image + the best grid of crops
    ANYRES_MAX = "anyres_max"  # anyres_max_N: anyres, grid features shrunk to at most N crops' worth


@dataclass(frozen=True, kw_only=True, slots=True)
class AspectRatioMode:
    """A validated ``image_aspect_ratio`` value."""

    name: AspectRatio
    max_num_crops: int | None = None  # only for anyres_max

    def __str__(self) -> str:
        """LLaVA-NeXT's spelling, as ``image_aspect_ratio`` holds it (``anyres_max_9``)."""
        if self.name is AspectRatio.ANYRES_MAX:
            return f"{self.name.value}_{self.max_num_crops}"
        return self.name.value

    @property
    def is_anyres(self) -> bool:
        return self.name in (AspectRatio.ANYRES, AspectRatio.ANYRES_MAX)

    @classmethod
    def parse(cls, value: str | None) -> AspectRatioMode:
        """Parse ``image_aspect_ratio``; ``None`` means the LLaVA-NeXT default, ``square``."""
        if value is None or value == "square":
            return cls(name=AspectRatio.SQUARE)
        if value in ("pad", "anyres"):
            return cls(name=AspectRatio(value))
        match = _ANYRES_MAX.match(value) if isinstance(value, str) else None
        if match and int(match.group(1)) > 0:
            return cls(name=AspectRatio.ANYRES_MAX, max_num_crops=int(match.group(1)))
        raise ValueError(
            f"image_aspect_ratio={value!r} is not supported; expected one of 'square', 'pad', 'anyres', "
            "'anyres_max_N' (N > 0)"
        )


def parse_grid_pinpoints(pinpoints, crop_size: int) -> tuple[Size, ...]:
    """Expand ``image_grid_pinpoints`` into a tuple of ``(width, height)`` pixel sizes.

    Accepts LLaVA-NeXT's range string ``"(1x1),...,(6x6)"`` (only the first and last ``(AxB)`` matter: every
    ``(i, j)`` with ``i`` in A0..A1 outer and ``j`` in B0..B1 inner, times ``crop_size``), a list of pairs, or the
    string form of such a list.
    """
    original = pinpoints
    if isinstance(pinpoints, str) and "x" in pinpoints:
        matches = _PINPOINT_RANGE.findall(pinpoints)
        if not matches:
            raise ValueError(f"image_grid_pinpoints={original!r}: no '(AxB)' ranges found")
        (w0, h0), (w1, h1) = (tuple(map(int, m)) for m in (matches[0], matches[-1]))
        if min(w0, h0) < 1 or w1 < w0 or h1 < h0:
            raise ValueError(f"image_grid_pinpoints={original!r}: range must go from small to large, >= 1")
        return tuple((i * crop_size, j * crop_size) for i in range(w0, w1 + 1) for j in range(h0, h1 + 1))
    if isinstance(pinpoints, str):
        try:
            pinpoints = ast.literal_eval(pinpoints)
        except (ValueError, SyntaxError) as err:
            raise ValueError(f"image_grid_pinpoints={original!r} cannot be parsed") from err
    if not isinstance(pinpoints, (list, tuple)) or not pinpoints:
        raise ValueError(f"image_grid_pinpoints={original!r} must be a non-empty list of (width, height) pairs")
    result = []
    for pair in pinpoints:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(v, int) and v > 0 for v in pair)):
            raise ValueError(f"image_grid_pinpoints={original!r}: entry {pair!r} is not a (width, height) pair")
        if pair[0] % crop_size or pair[1] % crop_size:
            raise ValueError(
                f"image_grid_pinpoints={original!r}: entry {tuple(pair)} is not a multiple of the crop size {crop_size}"
            )
        result.append((int(pair[0]), int(pair[1])))
    return tuple(result)


def select_best_resolution(original_size: Size, candidates: tuple[Size, ...]) -> Size:
    """The candidate that keeps the most effective pixels; ties go to the least waste, then to the first."""
    width, height = original_size
    best, best_effective, best_wasted = None, -1, math.inf
    for cand_w, cand_h in candidates:
        scale = min(cand_w / width, cand_h / height)
        down_w, down_h = int(width * scale), int(height * scale)
        effective = min(down_w * down_h, width * height)
        wasted = cand_w * cand_h - effective
        if effective > best_effective or (effective == best_effective and wasted < best_wasted):
            best, best_effective, best_wasted = (cand_w, cand_h), effective, wasted
    assert best is not None, "candidates must not be empty"
    return best


def get_anyres_image_grid_shape(image_size: Size, pinpoints: tuple[Size, ...], crop_size: int) -> Size:
    """Number of grid crops ``(columns, rows)`` for an image of ``(width, height)``."""
    width, height = select_best_resolution(image_size, pinpoints)
    return width // crop_size, height // crop_size


def resize_and_pad_image(image: Image.Image, target: Size) -> Image.Image:
    """Aspect-preserving resize into ``target`` (w, h), centred on a black canvas."""
    width, height = image.size
    target_w, target_h = target
    scale_w, scale_h = target_w / width, target_h / height
    if scale_w < scale_h:
        new_w, new_h = target_w, min(math.ceil(height * scale_w), target_h)
    else:
        new_w, new_h = min(math.ceil(width * scale_h), target_w), target_h
    # Pillow's default filter for RGB is bicubic, which is what LLaVA-NeXT relies on.
    resized = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (target_w, target_h), (0, 0, 0))
    canvas.paste(resized, ((target_w - new_w) // 2, (target_h - new_h) // 2))
    return canvas


def divide_to_patches(image: Image.Image, patch_size: int) -> list[Image.Image]:
    """Row-major crops (top to bottom, left to right)."""
    width, height = image.size
    return [
        image.crop((left, top, left + patch_size, top + patch_size))
        for top in range(0, height, patch_size)
        for left in range(0, width, patch_size)
    ]


def expand2square(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Pad the shorter side so the image becomes square, image centred (LLaVA ``pad`` mode)."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), background)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def unpad_slices(current: tuple[int, int], original_size: Size) -> tuple[slice, slice]:
    """Row and column slices of a ``(rows, cols)`` feature map that drop the padding of the grid canvas.

    Integer arithmetic as in LLaVA-NeXT (``int(H * scale)``); transformers rounds to 7 decimals first, which
    keeps one more row or column for some sizes (see ``docs/differences.md``).
    """
    rows, cols = current
    width, height = original_size
    if width / height > cols / rows:
        new_rows = int(height * (cols / width))
        pad = (rows - new_rows) // 2
        return slice(pad, rows - pad), slice(0, cols)
    new_cols = int(width * (rows / height))
    pad = (cols - new_cols) // 2
    return slice(0, rows), slice(pad, cols - pad)


def unpad_image(tensor: torch.Tensor, original_size: Size) -> torch.Tensor:
    """Unpad a ``(..., C, H, W)`` feature map given the original image size ``(width, height)``."""
    rows, cols = unpad_slices(tuple(tensor.shape[-2:]), original_size)
    return tensor[..., rows, cols]


def anyres_max_target(rows: int, cols: int, max_num_crops: int, tokens_per_side: int) -> tuple[int, int] | None:
    """Target ``(rows, cols)`` of the bilinear shrink of ``anyres_max_N``, or ``None`` when no shrink happens."""
    times = math.sqrt(rows * cols / (max_num_crops * tokens_per_side**2))
    if times > ANYRES_MAX_TOLERANCE:
        return int(rows // times), int(cols // times)
    return None


def anyres_token_count(
    image_size: Size, pinpoints: tuple[Size, ...], crop_size: int, tokens_per_side: int, max_num_crops: int | None
) -> int:
    """Tokens one anyres image becomes: base crop, then each unpadded grid row followed by a newline."""
    grid_w, grid_h = get_anyres_image_grid_shape(image_size, pinpoints, crop_size)
    rows_slice, cols_slice = unpad_slices((grid_h * tokens_per_side, grid_w * tokens_per_side), image_size)
    rows = len(range(*rows_slice.indices(grid_h * tokens_per_side)))
    cols = len(range(*cols_slice.indices(grid_w * tokens_per_side)))
    if max_num_crops is not None and (target := anyres_max_target(rows, cols, max_num_crops, tokens_per_side)):
        rows, cols = target
    return tokens_per_side**2 + rows * (cols + 1)
