"""The Two-Tower image transforms against independent PIL + numpy computations, and the augmentation's
reproducibility, flips and op lists (MT:src/transforms/transform.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from managertower.data import transforms
from managertower.data.transforms import AUGMENT_OPS, TRAIN_EVAL, TransformKind, build_transform

MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
STD = np.array([0.26862954, 0.26130258, 0.27577711])
AUGMENTING = (TransformKind.ALBEF_RANDAUG_WC, TransformKind.ALBEF_RANDAUG_WOHF)
WC_ONLY_OPS = ("Solarize", "Color", "Contrast", "Posterize")


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def _ramp(width: int = 80, height: int = 48) -> Image.Image:
    """Red rises from left to right; green and blue stay 0, so no op except a flip can turn the ramp around."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[..., 0] = np.linspace(0, 255, width).astype(np.uint8)
    return Image.fromarray(pixels)


def _normalised(image: Image.Image) -> np.ndarray:
    pixels = np.asarray(image, dtype=np.float64) / 255.0
    return ((pixels - MEAN) / STD).transpose(2, 0, 1)


def _is_mirrored(tensor: torch.Tensor) -> bool:
    """The ramp came out brighter on the left than on the right."""
    half = tensor.shape[-1] // 2
    return bool(tensor[0, :, :half].mean() > tensor[0, :, half:].mean())


@pytest.mark.parametrize(("width", "height"), [(40, 25), (23, 50)])
def test_clip_is_shorter_side_resize_then_center_crop(width, height):
    size = 16
    image = _noise(width, height)
    # torchvision's Resize truncates the longer side; CenterCrop rounds the offset (4.5 -> 4 for 40 x 25).
    resized_size = (size, int(size * height / width)) if width <= height else (int(size * width / height), size)
    resized = image.resize(resized_size, Image.BICUBIC)
    left = round((resized_size[0] - size) / 2.0)
    top = round((resized_size[1] - size) / 2.0)
    expected = _normalised(resized.crop((left, top, left + size, top + size)))
    out = build_transform("clip", size)(image)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)


def test_albef_is_square_resize():
    image = _noise(40, 25)
    expected = _normalised(image.resize((16, 16), Image.BICUBIC))
    np.testing.assert_allclose(build_transform(TransformKind.ALBEF, 16)(image).numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("kind", list(TransformKind))
@pytest.mark.parametrize(("width", "height"), [(40, 25), (7, 5), (200, 9)])
def test_every_kind_gives_a_float32_square(kind, width, height):
    # (7, 5) is upsampled; (200, 9) is too thin for any random crop, so the crop falls back to the clamped centre.
    out = build_transform(kind, 24, generator=np.random.default_rng(0))(_noise(width, height))
    assert out.shape == (3, 24, 24) and out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("kind", AUGMENTING)
def test_generator_seed_decides_the_augmentation(kind):
    image = _noise(60, 45)
    first, again, other = (build_transform(kind, 32, generator=np.random.default_rng(s))(image) for s in (0, 0, 1))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_eval_kinds_ignore_the_generator():
    image = _noise(40, 25)
    for kind in (TransformKind.CLIP, TransformKind.ALBEF):
        first = build_transform(kind, 16, generator=np.random.default_rng(0))(image)
        assert torch.equal(first, build_transform(kind, 16, generator=np.random.default_rng(1))(image))


def test_only_wc_flips(monkeypatch):
    # With every op an identity, the crop alone keeps the ramp's direction: a mirrored output can only be a flip.
    _identity_ops(monkeypatch)
    ramp = _ramp()
    mirrored = {
        kind: sum(_is_mirrored(build_transform(kind, 64, generator=np.random.default_rng(s))(ramp)) for s in range(40))
        for kind in AUGMENTING
    }
    assert mirrored[TransformKind.ALBEF_RANDAUG_WOHF] == 0
    assert 8 <= mirrored[TransformKind.ALBEF_RANDAUG_WC] <= 32


def _identity_ops(monkeypatch):
    monkeypatch.setattr(transforms, "_OPS", dict.fromkeys(transforms._OPS, lambda image, rng: image))


def test_random_crop_keeps_half_to_all_of_the_area_at_torchvision_ratios(monkeypatch):
    _identity_ops(monkeypatch)
    # Red is the source column and green the source row, so the output's edges tell where the crop was.
    columns, rows = np.meshgrid(np.arange(200), np.arange(200))
    coordinates = Image.fromarray(np.stack([columns, rows, np.zeros_like(rows)], axis=-1).astype(np.uint8))
    areas = []
    for seed in range(40):
        out = build_transform(TransformKind.ALBEF_RANDAUG_WOHF, 50, generator=np.random.default_rng(seed))
        pixels = out(coordinates).numpy() * STD[:, None, None] + MEAN[:, None, None]
        # The first and last output pixel centres lie half an output pixel inside the crop: 49 of its 50 steps.
        width = (pixels[0, 25, -1] - pixels[0, 25, 0]) * 255 * 50 / 49
        height = (pixels[1, -1, 25] - pixels[1, 0, 25]) * 255 * 50 / 49
        assert 3 / 4 - 0.05 <= width / height <= 4 / 3 + 0.05
        areas.append(width * height / 200**2)
    assert 0.47 <= min(areas) < 0.6 and 0.85 < max(areas) <= 1.03


def test_too_thin_image_falls_back_to_the_clamped_centre_crop(monkeypatch):
    _identity_ops(monkeypatch)
    image = _noise(200, 9)
    # No crop of half the area fits 9 rows at ratio <= 4/3: the full height, width round(9 * 4/3) = 12, centred.
    expected = _normalised(image.crop((94, 0, 106, 9)).resize((24, 24), Image.BICUBIC))
    out = build_transform(TransformKind.ALBEF_RANDAUG_WOHF, 24, generator=np.random.default_rng(0))(image)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)


def test_wohf_never_mirrors_with_its_real_ops():
    # Its colour ops are monotonic per channel and its geometric ops move at most a fraction of the image.
    transform = build_transform(TransformKind.ALBEF_RANDAUG_WOHF, 64, generator=np.random.default_rng(7))
    assert not any(_is_mirrored(transform(_ramp())) for _ in range(60))


def test_wc_only_ops_never_run_under_wohf(monkeypatch):
    calls = {kind: [] for kind in AUGMENTING}

    def recording(name, kind):
        return lambda image, rng: calls[kind].append(name) or image

    for kind in AUGMENTING:
        for name in WC_ONLY_OPS:
            monkeypatch.setitem(transforms._OPS, name, recording(name, kind))
        transform = build_transform(kind, 32, generator=np.random.default_rng(3))
        for _ in range(150):
            transform(_noise(40, 30))
    assert calls[TransformKind.ALBEF_RANDAUG_WOHF] == []
    assert set(calls[TransformKind.ALBEF_RANDAUG_WC]) == set(WC_ONLY_OPS)


def test_op_lists_are_the_originals():
    base = ("Identity", "AutoContrast", "Brightness", "Sharpness", "Equalize",
            "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")  # fmt: skip
    assert AUGMENT_OPS[TransformKind.ALBEF_RANDAUG_WOHF] == base
    assert AUGMENT_OPS[TransformKind.ALBEF_RANDAUG_WC] == (*base, *WC_ONLY_OPS)
    assert set(transforms._OPS) == set(AUGMENT_OPS[TransformKind.ALBEF_RANDAUG_WC])


@pytest.mark.parametrize("name", ["TranslateX", "TranslateY"])
def test_translate_shifts_seven_pixels_and_fills_grey(name):
    black = Image.new("RGB", (32, 32))
    moved = np.asarray(transforms._OPS[name](black, np.random.default_rng(0)))
    grey_lines = np.all(moved == 128, axis=(0, 2) if name == "TranslateX" else (1, 2))
    assert grey_lines.sum() == 7 and (grey_lines[:7].all() or grey_lines[-7:].all())


def test_geometric_ops_keep_a_grey_image_grey():
    grey = Image.new("RGB", (32, 32), (128, 128, 128))
    for name in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"):
        assert (np.asarray(transforms._OPS[name](grey, np.random.default_rng(0))) == 128).all()


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_other_modes_are_converted_to_rgb(mode):
    image = _noise(40, 25).convert(mode)
    for kind in TransformKind:
        out = build_transform(kind, 16, generator=np.random.default_rng(0))(image)
        expected = build_transform(kind, 16, generator=np.random.default_rng(0))(image.convert("RGB"))
        assert out.shape == (3, 16, 16) and torch.equal(out, expected)


def test_grayscale_gives_three_equal_channels():
    out = build_transform(TransformKind.ALBEF, 16)(_noise(40, 25).convert("L")).numpy()
    pixels = out * STD[:, None, None] + MEAN[:, None, None]
    np.testing.assert_allclose(pixels[0], pixels[1], atol=1e-5)
    np.testing.assert_allclose(pixels[1], pixels[2], atol=1e-5)


def test_train_eval_pairs():
    assert TRAIN_EVAL == {
        TransformKind.CLIP: TransformKind.CLIP,
        TransformKind.ALBEF_RANDAUG_WC: TransformKind.ALBEF,
        TransformKind.ALBEF_RANDAUG_WOHF: TransformKind.ALBEF,
    }


@pytest.mark.parametrize(("args", "field"), [(("albef_randaug", 16), "kind"), ((None, 16), "kind"),
                                             (("clip", 0), "image_size"), (("clip", 16.0), "image_size")])  # fmt: skip
def test_bad_arguments_name_the_argument(args, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        build_transform(*args)
