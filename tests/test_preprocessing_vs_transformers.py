"""Image preprocessing: ours (LLaVA-NeXT 79ef45a semantics) against transformers' native LlavaOnevision.

The reference is the PIL backend ``LlavaOnevisionImageProcessorPil`` (no torchvision here), the processor's token
count ``LlavaOnevisionProcessor._get_number_of_features`` and the model's ``unpad_image``. Where the two agree the
tests pin exact equality; where they differ each test pins both sides, so a change on either side shows up.
Every difference is listed in ``docs/differences.md``.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from transformers.image_processing_utils import select_best_resolution as hf_select_best_resolution
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
    LlavaOnevisionImageProcessorPil,
)
from transformers.models.llava_onevision.modeling_llava_onevision import unpad_image as hf_unpad_image
from transformers.models.llava_onevision.processing_llava_onevision import LlavaOnevisionProcessor

from llava.mm_utils import process_images
from llava.model.anyres import anyres_token_count, parse_grid_pinpoints, select_best_resolution, unpad_slices
from llava.processing.image_processor import SigLipImageProcessor

CROP, TOKENS_PER_SIDE, MAX_CROPS = 384, 27, 9
PINPOINTS = "(1x1),...,(6x6)"
OUR_PINS = parse_grid_pinpoints(PINPOINTS, CROP)  # (width, height), width-major
HF_PINS = [tuple(p) for p in LlavaOnevisionImageProcessorPil.image_grid_pinpoints]  # (height, width), height-major
ANYRES = SimpleNamespace(image_aspect_ratio="anyres_max_9", image_grid_pinpoints=PINPOINTS)
PAD = SimpleNamespace(image_aspect_ratio="pad")


def make_image(width: int, height: int, seed: int) -> Image.Image:
    """Deterministic noise with a few solid shapes (so both high and low frequencies go through the resize)."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        box = [x0, y0, x0 + int(rng.integers(1, width)), y0 + int(rng.integers(1, height))]
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    return image


@pytest.fixture(scope="module")
def hf_half():
    """transformers' processor with LLaVA-OneVision's SigLIP normalisation (mean = std = 0.5)."""
    return LlavaOnevisionImageProcessorPil(image_mean=[0.5] * 3, image_std=[0.5] * 3)


def hf_token_count(height: int, width: int) -> int:
    """``LlavaOnevisionProcessor``'s count for one image of (height, width); no tokenizer needed for it."""
    processor = LlavaOnevisionProcessor.__new__(LlavaOnevisionProcessor)
    processor.image_processor = LlavaOnevisionImageProcessorPil()
    processor.num_image_tokens = TOKENS_PER_SIDE**2
    processor.vision_aspect_ratio = "anyres_max_9"
    return processor._get_number_of_features(height, width, CROP, CROP)


def siglip(level: float) -> float:
    """Pixel value of a uint8 level after our normalisation."""
    return (level / 255 - 0.5) / 0.5


# --- a. pixel values --------------------------------------------------------------------------------------------

# (width, height): tall, wide, large (6x6 grid, anyres_max shrink), small, 4:3, and one with an odd vertical
# leftover. 300x1100 and 2000x2200 have odd horizontal leftovers (69, 209 px).
PIXEL_SIZES = [(300, 1100), (1500, 400), (2000, 2200), (200, 150), (800, 600), (1025, 577)]


@pytest.mark.parametrize("size", PIXEL_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_anyres_pixels_match_transformers(hf_half, size):
    # Both resize with PIL bicubic on uint8, pad with zeros at the same offsets, rescale in float64 and normalise
    # in float32: measured max abs diff 0.0 for every size, so the bound is exact equality.
    image = make_image(*size, seed=size[0] + size[1])
    ours = process_images([image], SigLipImageProcessor(), ANYRES)
    out = hf_half(image, return_tensors="pt")
    assert ours.shape == out["pixel_values"].shape  # (1, 1 + crops, 3, 384, 384)
    assert torch.equal(ours, out["pixel_values"])
    assert out["image_sizes"].tolist() == [[size[1], size[0]]]  # transformers reports (H, W); we use (W, H)


def test_odd_leftover_goes_to_bottom_in_both(hf_half):
    # 1025x577 -> 1152x768 canvas, resized 1152x649: 119 rows of padding, 59 on top and 60 at the bottom
    # (LLaVA-NeXT pastes at leftover // 2, transformers pads divmod(leftover, 2) -> same placement).
    image = make_image(1025, 577, seed=7)
    ours = process_images([image], SigLipImageProcessor(), ANYRES)[0]
    theirs = hf_half(image, return_tensors="pt")["pixel_values"][0]
    for crops in (ours, theirs):
        top, bottom = crops[1], crops[4]  # grid 3 wide x 2 high, base crop first
        assert (top[:, :59] == -1).all() and not (top[:, 59] == -1).all()
        assert (bottom[:, 324:] == -1).all() and not (bottom[:, 323] == -1).all()


def test_pad_mode_matches_transformers_multi_image(hf_half):
    # transformers uses "pad" only for samples with several images ([[a, b, c]]); then it matches LLaVA-NeXT's
    # expand2square + squash exactly (measured max abs diff 0.0), padding colour included.
    images = [make_image(301, 1100, 1), make_image(1500, 401, 2), make_image(500, 500, 3)]
    ours = process_images(images, SigLipImageProcessor(), PAD)
    out = hf_half([images], return_tensors="pt")
    assert out["batch_num_images"].tolist() == [3]
    assert out["pixel_values"].shape == (3, 1, 3, CROP, CROP)
    assert torch.equal(ours, out["pixel_values"][:, 0])
    assert torch.allclose(ours[0, :, 200, 5], torch.full((3,), siglip(127)))  # left padding column of 301x1100


# --- b. normalisation defaults ----------------------------------------------------------------------------------


def all_levels_image() -> tuple[Image.Image, np.ndarray]:
    """384x384 (no resize happens) containing every uint8 level in every channel."""
    levels = (np.arange(CROP * CROP) % 256).reshape(CROP, CROP)
    array = np.stack([levels, (levels + 85) % 256, (levels + 170) % 256], axis=-1).astype(np.uint8)
    return Image.fromarray(array), array


def test_our_default_normalisation_is_siglip_half():
    image, array = all_levels_image()
    ours = SigLipImageProcessor().to_tensor(image).double()
    expected = (torch.from_numpy(array).permute(2, 0, 1).double() / 255 - 0.5) / 0.5
    assert (ours - expected).abs().max() < 1e-7  # float32 rounding only


def test_transformers_default_normalisation_is_openai_clip(hf_half):
    image, array = all_levels_image()
    hf_default = LlavaOnevisionImageProcessorPil()
    assert tuple(hf_default.image_mean) == tuple(OPENAI_CLIP_MEAN)
    assert tuple(hf_default.image_std) == tuple(OPENAI_CLIP_STD)
    theirs = hf_default(image, return_tensors="pt")["pixel_values"][0, 0].double()
    mean, std = (torch.tensor(v, dtype=torch.float64)[:, None, None] for v in (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD))
    clip = (torch.from_numpy(array).permute(2, 0, 1).double() / 255 - mean) / std
    assert (theirs - clip).abs().max() < 1e-6
    ours = SigLipImageProcessor().to_tensor(image)
    assert (theirs - ours.double()).abs().max() > 0.1  # the defaults really differ
    assert torch.equal(hf_half(image, return_tensors="pt")["pixel_values"][0, 0], ours)  # with 0.5 they match


# --- c. image-token counts --------------------------------------------------------------------------------------

# (width, height) -> tokens with crop 384, 27 tokens per side, anyres_max_9. None of these hits the unpad rounding
# difference of section d, so both sides agree.
TOKEN_COUNTS = {
    (384, 384): 1485,
    (640, 480): 2929,
    (800, 600): 4725,
    (1024, 899): 6551,
    (1920, 1080): 7269,
    (2304, 2304): 7371,
    (4000, 3000): 7309,
    (300, 3000): 3645,
    (2000, 2200): 7281,
    (200, 150): 1317,
}


@pytest.mark.parametrize(("size", "count"), TOKEN_COUNTS.items(), ids=lambda v: str(v))
def test_token_count_matches_transformers(size, count):
    width, height = size
    assert anyres_token_count(size, OUR_PINS, CROP, TOKENS_PER_SIDE, MAX_CROPS) == count
    assert hf_token_count(height, width) == count


def test_token_count_uses_transformers_image_sizes(hf_half):
    # The processor feeds image_sizes (H, W) to the count; passing our (W, H) instead would give another grid.
    out = hf_half(make_image(640, 480, 0), return_tensors="pt")
    height, width = out["image_sizes"][0].tolist()
    assert hf_token_count(height, width) == 2929
    assert hf_token_count(width, height) != 2929


# --- d. unpad rounding ------------------------------------------------------------------------------------------

# Found by brute force over every (W, H) in 1..3000 with the grid select_best_resolution picks (190 sizes differ):
# H * (cols / W) lands a hair below an integer (369x820: 820 * (27/369) = 59.99999999999999). LLaVA-NeXT's
# int() gives 59, transformers' int(round(x, 7)) gives 60; the padding (rows - new) // 2 then changes by one.
# (width, height) -> (grid cols, grid rows), kept (rows, cols) LLaVA-NeXT, kept (rows, cols) transformers,
# token counts LLaVA-NeXT / transformers.
UNPAD_CASES = {
    (369, 820): ((1, 3), (59, 27), (61, 27), 2381, 2437),  # unpads rows
    (571, 1713): ((2, 5), (135, 44), (135, 46), 6804, 7074),  # unpads columns
}


def llava_next_kept(current: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """LLaVA-NeXT's unpad_image arithmetic, written out: int(original * scale), no rounding."""
    rows, cols = current
    width, height = size
    if width / height > cols / rows:
        return rows - 2 * ((rows - int(height * (cols / width))) // 2), cols
    return rows, cols - 2 * ((cols - int(width * (rows / height))) // 2)


@pytest.mark.parametrize("size", UNPAD_CASES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_unpad_rounding_differs(size):
    grid, ours_kept, hf_kept, ours_count, hf_count = UNPAD_CASES[size]
    width, height = size
    assert select_best_resolution(size, OUR_PINS) == (grid[0] * CROP, grid[1] * CROP)  # a real anyres grid
    current = (grid[1] * TOKENS_PER_SIDE, grid[0] * TOKENS_PER_SIDE)
    rows, cols = unpad_slices(current, size)
    assert (rows.stop - rows.start, cols.stop - cols.start) == ours_kept == llava_next_kept(current, size)
    assert tuple(hf_unpad_image(torch.zeros(1, *current), (height, width)).shape[1:]) == hf_kept
    assert anyres_token_count(size, OUR_PINS, CROP, TOKENS_PER_SIDE, MAX_CROPS) == ours_count
    assert hf_token_count(height, width) == hf_count


# --- e. select_best_resolution order ----------------------------------------------------------------------------


def first_best(candidates: np.ndarray, width: np.ndarray, height: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised select_best_resolution over (width, height) candidates: (index of the first best, tie flag).

    Same float64 arithmetic as both implementations: the key is effective * 1e8 - wasted (exact in float64,
    both below 2**53), argmax keeps the first maximum like the strict ``>`` / ``<`` comparisons do.
    """
    cand_w, cand_h = (candidates[:, i].astype(np.float64)[:, None, None] for i in (0, 1))
    scale = np.minimum(cand_w / width, cand_h / height)
    effective = np.minimum(np.floor(width * scale) * np.floor(height * scale), width * height)
    key = effective * 1e8 - (cand_w * cand_h - effective)
    return key.argmax(axis=0), (key == key.max(axis=0)).sum(axis=0) > 1


def test_pinpoint_orders_differ():
    # Same 36 grids, different iteration order: we go width-major over (W, H), transformers height-major over
    # (H, W). Our 2nd candidate is 384 wide x 768 high, theirs 384 high x 768 wide.
    hf_as_wh = [(w, h) for h, w in HF_PINS]
    assert sorted(hf_as_wh) == sorted(OUR_PINS) and hf_as_wh != list(OUR_PINS)
    assert OUR_PINS[1] == (384, 768) and hf_as_wh[1] == (768, 384)


def test_vectorised_selection_agrees_with_both_implementations():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 4001, (300, 2))
    index, _ = first_best(np.array(OUR_PINS), sizes[:, :1].astype(float)[None], sizes[:, 1:].astype(float)[None])
    for (w, h), i in zip(sizes.tolist(), index[:, 0].tolist()):
        hf_choice = hf_select_best_resolution((h, w), HF_PINS)[::-1]  # (H, W) in and out
        assert OUR_PINS[i] == select_best_resolution((w, h), OUR_PINS) == hf_choice


def test_no_selection_ties_so_order_never_matters():
    # Order only matters when two candidates tie on both effective and wasted pixels. A brute force over every
    # (W, H) in 1..4000 found none. (Partly explained: if two grids both hold the whole image, the grid of their
    # minimum width and height holds it too and wastes less, so they cannot both be best.) Here: every size up to
    # 1100 and a stride-13 sweep up to 4000, about 1.3 M sizes (~1 s).
    candidates = np.array(OUR_PINS)
    sweeps = [np.arange(1, 1101, dtype=np.float64), np.arange(1, 4001, 13, dtype=np.float64)]
    for axis in sweeps:
        for chunk in np.array_split(axis, max(1, len(axis) // 100)):
            _, ties = first_best(candidates, chunk[None, :, None], axis[None, None, :])
            assert not ties.any()


# --- f. other differences ---------------------------------------------------------------------------------------


def pad_levels(processor, images, mean, std, **kwargs) -> list[float]:
    """uint8 colour of the top-left (padding) pixel of transformers' multi-image (pad) output."""
    pixel = processor([images], return_tensors="pt", **kwargs)["pixel_values"][0, 0, :, 0, 0]
    return torch.round((pixel * torch.tensor(std) + torch.tensor(mean)) * 255).tolist()


def test_pad_colour(hf_half):
    # LLaVA-NeXT: int(m * 255) of the processor's mean -> 127 for SigLIP. transformers: the same formula, but on
    # self.image_mean (the instance default, OpenAI CLIP -> (122, 116, 104)), even when image_mean is overridden
    # in the call; only constructing with image_mean=0.5 gives 127.
    assert SigLipImageProcessor().background_color == (127, 127, 127)
    images = [make_image(200, 100, 1), make_image(200, 100, 2)]
    ours = process_images(images, SigLipImageProcessor(), PAD)[0, :, 0, 0]
    assert torch.allclose(ours, torch.full((3,), siglip(127)))
    half, clip = [0.5] * 3, (list(OPENAI_CLIP_MEAN), list(OPENAI_CLIP_STD))
    assert pad_levels(hf_half, images, half, half) == [127.0] * 3
    hf_default = LlavaOnevisionImageProcessorPil()
    assert pad_levels(hf_default, images, *clip) == [122.0, 116.0, 104.0]
    assert pad_levels(hf_default, images, half, half, image_mean=half, image_std=half) == [122.0, 116.0, 104.0]


def half_transparent(width: int = 500, height: int = 300) -> Image.Image:
    """RGBA noise whose left half is fully transparent (alpha 0 over random colours)."""
    array = np.random.default_rng(3).integers(0, 256, (height, width, 4), dtype=np.uint8)
    array[..., 3] = np.where(np.arange(width)[None, :] < width // 2, 0, 255)
    return Image.fromarray(array, "RGBA")


def composite_on_white(image: Image.Image) -> Image.Image:
    return Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image).convert("RGB")


def test_rgba_anyres_grid_crops(hf_half):
    # 500x300 -> 2x1 grid; canvas column 200 of crop 1 lies in the transparent half. LLaVA-NeXT (and we) resize
    # the RGBA image (Pillow resizes RGBA premultiplied, so alpha-0 pixels become black) and paste it on an RGB
    # canvas, dropping alpha: black. transformers composites on white before anything else: white.
    image = half_transparent()
    ours = process_images([image], SigLipImageProcessor(), ANYRES)[0]
    out = hf_half(image, return_tensors="pt")["pixel_values"][0]
    assert ours.shape == out.shape == (3, 3, CROP, CROP)
    assert (ours[1, :, 150:250, 150:250] == -1).all() and (out[1, :, 150:250, 150:250] == 1).all()
    # Opaque crop: identical away from the alpha edge (at its column 0), where bicubic blends across.
    assert torch.equal(ours[2][:, :, 8:], out[2][:, :, 8:])
    hf_of_composite = hf_half(composite_on_white(image), return_tensors="pt")["pixel_values"][0]
    assert torch.equal(out, hf_of_composite)


def test_rgba_anyres_base_crop_follows_llava_next_pin(hf_half):
    # LLaVA-NeXT pins transformers 1c39974a, whose image_transforms.convert_to_rgb is image.convert("RGB") (alpha
    # dropped). Its base crop is image.resize((384, 384)) in RGBA (premultiplied -> transparent = black), then
    # alpha is dropped. We do the same; transformers 5 composites on white before resizing.
    image = half_transparent()
    ours = process_images([image], SigLipImageProcessor(), ANYRES)[0, 0]
    reference = SigLipImageProcessor().to_tensor(image.resize((CROP, CROP), Image.Resampling.BICUBIC).convert("RGB"))
    assert torch.equal(ours, reference)
    theirs = hf_half(image, return_tensors="pt")["pixel_values"][0, 0]
    assert (theirs[:, :, :150] == 1).all(), "transformers: transparent = white"
    assert (ours[:, :, :150] == -1).all(), "LLaVA-NeXT: transparent = black"


def test_rgba_pad_mode(hf_half):
    # LLaVA-NeXT pad mode: expand2square on the original, processor drops alpha -> the colours under alpha 0
    # survive. We convert to RGB first (same pixels). transformers composites on white.
    image = half_transparent()
    ours = process_images([image, image], SigLipImageProcessor(), PAD)
    assert torch.equal(ours, process_images([image.convert("RGB")] * 2, SigLipImageProcessor(), PAD))
    theirs = hf_half([[image, image]], return_tensors="pt")["pixel_values"][:, 0]
    assert (ours - theirs).abs().max() > 1.0
    assert torch.equal(theirs, process_images([composite_on_white(image)] * 2, SigLipImageProcessor(), PAD))


def test_palette_image_is_resized_nearest_in_llava_next(hf_half):
    # LLaVA-NeXT resizes the PIL image in its own mode; Pillow forces NEAREST for mode "P", so palette images
    # (GIF, some PNG) are not bicubic-resized. transformers converts to RGB first (bicubic). Measured max diff 1.41.
    image = make_image(500, 300, 5).quantize(64)
    assert image.mode == "P"
    rgb = image.convert("RGB")
    assert (
        image.resize((384, 230), Image.Resampling.BICUBIC).convert("RGB").tobytes()
        == rgb.resize((384, 230), Image.Resampling.NEAREST).tobytes()
    )
    ours = process_images([image], SigLipImageProcessor(), ANYRES)
    theirs = hf_half(image, return_tensors="pt")["pixel_values"]
    assert (ours - theirs).abs().max() > 0.5
    assert torch.equal(theirs, process_images([rgb], SigLipImageProcessor(), ANYRES))


def test_multi_image_sample_mode(hf_half):
    # transformers switches a sample with several images to "pad" (one crop each, as LLaVA-NeXT's training data
    # loader does); LLaVA-NeXT's process_images applies the config's mode to every image.
    images = [make_image(640, 480, 1), make_image(300, 200, 2)]
    ours = process_images(images, SigLipImageProcessor(), ANYRES)
    assert [p.shape[0] for p in ours] == [5, 2]  # base + 2x2 grid, base + 1x1 grid
    theirs = hf_half([images], return_tensors="pt")["pixel_values"]
    assert theirs.shape == (2, 1, 3, CROP, CROP)


def test_batch_of_single_images_is_zero_padded_in_transformers(hf_half):
    # Different crop counts: LLaVA-NeXT returns a list of tensors; transformers zero-pads to the largest count.
    images = [make_image(640, 480, 1), make_image(300, 200, 2)]
    ours = process_images(images, SigLipImageProcessor(), ANYRES)
    assert isinstance(ours, list) and [p.shape[0] for p in ours] == [5, 2]
    theirs = hf_half(images, return_tensors="pt")["pixel_values"]
    assert theirs.shape == (2, 5, 3, CROP, CROP)
    assert torch.equal(theirs[1, :2], ours[1]) and (theirs[1, 2:] == 0).all()
