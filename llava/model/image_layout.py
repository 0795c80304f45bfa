"""Turn one image's projected crop features into the token sequence the LLM sees (LLaVA-NeXT ``spatial_unpad``).

Single crop (``square``/``pad`` images, multi-image samples): its T tokens, then one ``image_newline`` (T + 1).
Anyres (base + grid crops): the base crop's T tokens (no newline), then the grid crops assembled into one feature
map, unpadded, shrunk for ``anyres_max_N`` when too large, each row followed by an ``image_newline``.

Every function accepts extra leading dimensions (``...``), so the manager's stack of expert layers goes through
exactly the same layout as the main features and stays aligned token for token. Shapes: P grid crops,
t = tokens per side, T = t * t, D = LLM hidden size, L = packed length.

"Pack" here means laying out one image's tokens; packing several samples into one training row is another thing,
``llava.data.packing``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llava.model.anyres import Size, anyres_max_target, anyres_token_count, get_anyres_image_grid_shape, unpad_slices
from llava.model.config import MultimodalSpec

# Token kinds recorded for every packed position (used to target base or grid tokens).
BASE, GRID, NEWLINE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class PackedImage:
    features: torch.Tensor  # (..., L, D)
    kinds: torch.Tensor  # (L,) int8: BASE, GRID or NEWLINE


def packed_length(spec: MultimodalSpec, num_crops: int, image_size: Size | None) -> int:
    """Tokens an image of ``num_crops`` crops becomes, without running the model (the data pipeline truncates
    after image expansion with it); equals the length :func:`pack_image` / :func:`pack_flat` produce."""
    tokens = spec.tokens_per_side**2
    if spec.merge_type == "flat":
        return num_crops * tokens
    if num_crops == 1:
        return tokens + 1
    assert image_size is not None, "anyres images carry their size"
    return anyres_token_count(
        tuple(image_size), spec.grid_pinpoints, spec.crop_size, spec.tokens_per_side, spec.aspect_ratio.max_num_crops
    )


def pack_flat(features: torch.Tensor) -> PackedImage:
    """``(..., crops, T, D)`` -> all tokens in order, no newline (``flat`` merge, and 4-D image batches)."""
    packed = features.flatten(-3, -2)
    kinds = torch.full((packed.shape[-2],), BASE, dtype=torch.int8, device=packed.device)
    return PackedImage(packed, kinds)


def pack_image(
    features: torch.Tensor, image_size: Size | None, spec: MultimodalSpec, newline: torch.Tensor | None
) -> PackedImage:
    """Pack ``(..., 1 + P, T, D)`` features of one image; ``newline`` is ``(D,)`` or ``None`` for zeros."""
    num_crops, tokens, dim = features.shape[-3:]
    if num_crops == 1:
        return _pack_single(features[..., 0, :, :], newline)
    if not spec.aspect_ratio.is_anyres:
        raise ValueError(
            f"an image has {num_crops} crops but image_aspect_ratio is {str(spec.aspect_ratio.name)!r}; only anyres "
            "modes produce several crops per image"
        )
    if image_size is None:
        raise ValueError("anyres images need their original (width, height) in image_sizes")
    grid_w, grid_h = get_anyres_image_grid_shape(tuple(image_size), spec.grid_pinpoints, spec.crop_size)
    if num_crops != 1 + grid_w * grid_h:
        raise ValueError(
            f"image of size {tuple(image_size)} has {num_crops} crops, but the pinpoints give a {grid_w}x{grid_h} grid "
            f"(expected {1 + grid_w * grid_h} crops); were the images processed with another configuration?"
        )
    side = spec.tokens_per_side
    lead = features.shape[:-3]
    base = features[..., 0, :, :]  # (..., T, D)
    grid = features[..., 1:, :, :].reshape(*lead, grid_h, grid_w, side, side, dim)
    # (..., gh, gw, t, t, D) -> (..., D, gh * t, gw * t): crop rows top to bottom, columns left to right.
    grid = grid.movedim(-1, -5).transpose(-3, -2).reshape(*lead, dim, grid_h * side, grid_w * side)
    rows, cols = unpad_slices((grid_h * side, grid_w * side), tuple(image_size))
    grid = grid[..., rows, cols]
    if spec.aspect_ratio.max_num_crops is not None:
        target = anyres_max_target(grid.shape[-2], grid.shape[-1], spec.aspect_ratio.max_num_crops, side)
        if target is not None:
            flat = grid.reshape(-1, dim, *grid.shape[-2:])
            grid = F.interpolate(flat, size=target, mode="bilinear").reshape(*lead, dim, *target)
    height, width = grid.shape[-2:]
    column = _newline_column(newline, grid, lead, dim, height)
    grid = torch.cat([grid, column], dim=-1)  # (..., D, h, w + 1)
    grid_tokens = grid.flatten(-2).transpose(-1, -2)  # (..., h * (w + 1), D)
    kinds = torch.full((tokens + height * (width + 1),), GRID, dtype=torch.int8, device=features.device)
    kinds[:tokens] = BASE
    kinds[tokens + width :: width + 1] = NEWLINE
    return PackedImage(torch.cat([base, grid_tokens], dim=-2), kinds)


def _pack_single(crop: torch.Tensor, newline: torch.Tensor | None) -> PackedImage:
    tokens = crop.shape[-2]
    row = newline if newline is not None else crop.new_zeros(crop.shape[-1])
    row = row.to(crop.dtype).expand(*crop.shape[:-2], 1, crop.shape[-1])
    kinds = torch.full((tokens + 1,), BASE, dtype=torch.int8, device=crop.device)
    kinds[-1] = NEWLINE
    return PackedImage(torch.cat([crop, row], dim=-2), kinds)


def _newline_column(newline, grid, lead, dim, height) -> torch.Tensor:
    if newline is None:
        return grid.new_zeros(*lead, dim, height, 1)
    return newline.to(grid.dtype)[:, None, None].expand(*lead, dim, height, 1)
