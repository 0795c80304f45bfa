"""The image transforms of the ManagerTower / METER / ALBEF pipelines (``MT:src/transforms/transform.py``), on PIL,
numpy and torch only (no torchvision).

Every transform takes a PIL image of any mode and returns a ``(3, S, S)`` float32 tensor normalised with CLIP's
mean and std. Other modes go through ``vlcommon.images.convert_to_rgb`` first, the conversion LLaVA uses too: L,
RGBA and P as PIL's ``convert("RGB")`` does (alpha dropped), 16-bit and float grey scaled to 8 bit, not clipped.

- ``clip`` (pre-training, train and eval; the ``clip_pure`` recipe): the shorter side to S (bicubic), centre crop.
- ``albef`` (fine-tuning eval): resize to (S, S) bicubic; no crop, so the aspect ratio is not kept.
- ``albef_randaug_wc`` (SNLI-VE, NLVR2 and Flickr30K training): RandomResizedCrop(S, scale 0.5-1), horizontal flip
  with p=0.5, then ALBEF's RandomAugment(2, 7) over the ten base ops plus Solarize, Color, Contrast and Posterize
  ("wc": with colour changes).
- ``albef_randaug_wohf`` (VQA training): the same crop, **no flip** ("wohf": without horizontal flip), RandomAugment
  over the ten base ops. Those keep AutoContrast, Brightness, Sharpness and Equalize: the original drops only the
  flip here (its comment: "remove horizontal flip for vqa") and only wc adds the four colour ops above.

A flip never swaps "left" and "right" in the text: the original does not, so neither does anything downstream.

Randomness comes only from the numpy ``Generator`` given to :func:`build_transform`, so an augmented pass can be
replayed for an exact resume. The transform keeps drawing from that one generator, call after call: a DataLoader
worker must build its transform with its own seeded generator (forked workers that share one copy of a generator
produce the same augmentations), and a pipeline that must not depend on call order can build one transform per
sample, e.g. with ``numpy.random.default_rng((seed, epoch, index))``; building costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from vlcommon.enums import StrEnum
from vlcommon.images import convert_to_rgb


class TransformKind(StrEnum):
    CLIP = "clip"
    ALBEF = "albef"
    ALBEF_RANDAUG_WC = "albef_randaug_wc"
    ALBEF_RANDAUG_WOHF = "albef_randaug_wohf"


# The one home for which eval transform goes with each training transform (MT:src/config.py named configs).
TRAIN_EVAL: dict[TransformKind, TransformKind] = {
    TransformKind.CLIP: TransformKind.CLIP,
    TransformKind.ALBEF_RANDAUG_WC: TransformKind.ALBEF,
    TransformKind.ALBEF_RANDAUG_WOHF: TransformKind.ALBEF,
}

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_MEAN = np.array(CLIP_MEAN, dtype=np.float32)
_STD = np.array(CLIP_STD, dtype=np.float32)

# torchvision's RandomResizedCrop arguments as the original passes them (scale given, ratio left at its default).
_CROP_SCALE = (0.5, 1.0)
_CROP_LOG_RATIO = (math.log(3 / 4), math.log(4 / 3))
_CROP_TRIES = 10

# ALBEF's RandomAugment (dataset/randaugment.py): N ops, level M out of MAX_LEVEL, each op applied with p=0.5.
_NUM_OPS = 2
_LEVEL_FRACTION = 7 / 10
_OP_PROBABILITY = 0.5
# ALBEF's translate_const: an absolute shift in pixels (7 px at level 7), whatever the image size.
_TRANSLATE_CONST_PX = 10
_FILL = (128, 128, 128)
_ENHANCE_FACTOR = _LEVEL_FRACTION * 1.8 + 0.1
_SHEAR = _LEVEL_FRACTION * 0.3
_TRANSLATE_PX = _LEVEL_FRACTION * _TRANSLATE_CONST_PX
_ROTATE_DEGREES = _LEVEL_FRACTION * 30
_SOLARIZE_THRESHOLD = int(_LEVEL_FRACTION * 256)
_POSTERIZE_BITS = int(_LEVEL_FRACTION * 4)
# ALBEF writes its grey weights in cv2's B, G, R order but applies them to PIL's R, G, B arrays; Color and
# Contrast keep that quirk so that they blend towards the same grey as the original.
_ALBEF_GREY_WEIGHTS = np.array((0.114, 0.587, 0.299))

_BASE_OPS = (
    "Identity", "AutoContrast", "Brightness", "Sharpness", "Equalize",
    "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate",
)  # fmt: skip
# The op lists and their order as the original passes them: the order decides which op a drawn index names.
AUGMENT_OPS: dict[TransformKind, tuple[str, ...]] = {
    TransformKind.ALBEF_RANDAUG_WC: (*_BASE_OPS, "Solarize", "Color", "Contrast", "Posterize"),
    TransformKind.ALBEF_RANDAUG_WOHF: _BASE_OPS,
}
_FLIPS = {TransformKind.ALBEF_RANDAUG_WC: True, TransformKind.ALBEF_RANDAUG_WOHF: False}

Op = Callable[[Image.Image, np.random.Generator], Image.Image]


def _signed(magnitude: float, rng: np.random.Generator) -> float:
    """ALBEF gives every geometric magnitude a random sign, each way with probability 0.5."""
    return -magnitude if rng.random() > 0.5 else magnitude


def _affine(image: Image.Image, inverse: tuple[float, ...]) -> Image.Image:
    """PIL takes the output-to-input map; bilinear and the grey fill match ALBEF's cv2.warpAffine calls."""
    return image.transform(
        image.size, Image.Transform.AFFINE, inverse, resample=Image.Resampling.BILINEAR, fillcolor=_FILL
    )


def _grey_blend(image: Image.Image, factor: float, *, per_pixel: bool) -> Image.Image:
    """ALBEF's Color (blend with each pixel's grey) and Contrast (blend with the image's mean grey)."""
    pixels = np.asarray(image, dtype=np.float64)
    grey = pixels @ _ALBEF_GREY_WEIGHTS
    anchor = grey[..., None] if per_pixel else grey.mean()
    blended = anchor + factor * (pixels - anchor)
    # Truncation after the clip, as ALBEF's astype(np.uint8).
    return Image.fromarray(blended.clip(0, 255).astype(np.uint8), mode="RGB")


_OPS: dict[str, Op] = {
    "Identity": lambda image, rng: image,
    "AutoContrast": lambda image, rng: ImageOps.autocontrast(image),
    "Equalize": lambda image, rng: ImageOps.equalize(image),
    "Brightness": lambda image, rng: ImageEnhance.Brightness(image).enhance(_ENHANCE_FACTOR),
    "Sharpness": lambda image, rng: ImageEnhance.Sharpness(image).enhance(_ENHANCE_FACTOR),
    "Solarize": lambda image, rng: ImageOps.solarize(image, _SOLARIZE_THRESHOLD),
    "Posterize": lambda image, rng: ImageOps.posterize(image, _POSTERIZE_BITS),
    "Color": lambda image, rng: _grey_blend(image, _ENHANCE_FACTOR, per_pixel=True),
    "Contrast": lambda image, rng: _grey_blend(image, _ENHANCE_FACTOR, per_pixel=False),
    "ShearX": lambda image, rng: _affine(image, (1, _signed(_SHEAR, rng), 0, 0, 1, 0)),
    "ShearY": lambda image, rng: _affine(image, (1, 0, 0, _signed(_SHEAR, rng), 1, 0)),
    "TranslateX": lambda image, rng: _affine(image, (1, 0, _signed(_TRANSLATE_PX, rng), 0, 1, 0)),
    "TranslateY": lambda image, rng: _affine(image, (1, 0, 0, 0, 1, _signed(_TRANSLATE_PX, rng))),
    "Rotate": lambda image, rng: image.rotate(
        _signed(_ROTATE_DEGREES, rng), resample=Image.Resampling.BILINEAR, fillcolor=_FILL
    ),
}


def _random_augment(image: Image.Image, ops: Sequence[str], rng: np.random.Generator) -> Image.Image:
    """ALBEF's RandomAugment: draw N ops uniformly with replacement, then apply each with probability 0.5."""
    for index in rng.integers(0, len(ops), size=_NUM_OPS):
        if rng.random() > _OP_PROBABILITY:
            continue
        image = _OPS[ops[index]](image, rng)
    return image


def _crop_box(width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop.get_params: ten tries at a random area and log-uniform aspect ratio, then
    the centre crop clamped to the allowed ratios. Returns a PIL box (left, top, right, bottom)."""
    area = width * height
    for _ in range(_CROP_TRIES):
        target_area = area * rng.uniform(*_CROP_SCALE)
        ratio = math.exp(rng.uniform(*_CROP_LOG_RATIO))
        w = round(math.sqrt(target_area * ratio))
        h = round(math.sqrt(target_area / ratio))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, left + w, top + h
    min_ratio, max_ratio = (math.exp(bound) for bound in _CROP_LOG_RATIO)
    w, h = width, height
    if width / height < min_ratio:
        h = round(width / min_ratio)
    elif width / height > max_ratio:
        w = round(height * max_ratio)
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def _augmented(
    image: Image.Image, size: int, *, ops: Sequence[str], flip: bool, rng: np.random.Generator
) -> Image.Image:
    # Crop first and resize the crop alone: PIL's resize(box=...) would also read pixels outside the box.
    image = image.crop(_crop_box(*image.size, rng)).resize((size, size), Image.Resampling.BICUBIC)
    if flip and rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return _random_augment(image, ops, rng)


def _shorter_side_center_crop(image: Image.Image, size: int) -> Image.Image:
    """torchvision's Resize(size) then CenterCrop(size): the longer side is truncated, the crop offset rounded."""
    width, height = image.size
    if width <= height:
        new_width, new_height = size, int(size * height / width)
    else:
        new_width, new_height = int(size * width / height), size
    image = image.resize((new_width, new_height), Image.Resampling.BICUBIC)
    left, top = round((new_width - size) / 2), round((new_height - size) / 2)
    return image.crop((left, top, left + size, top + size))


def _square_resize(image: Image.Image, size: int) -> Image.Image:
    return image.resize((size, size), Image.Resampling.BICUBIC)


def _to_tensor(image: Image.Image) -> torch.Tensor:
    """ToTensor then Normalize: [0, 1] floats, CLIP mean and std, channels first."""
    pixels = (np.asarray(image, dtype=np.float32) / np.float32(255) - _MEAN) / _STD
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))


def build_transform(
    kind: TransformKind | str, image_size: int, *, generator: np.random.Generator | None = None
) -> Callable[[Image.Image], torch.Tensor]:
    """The transform ``kind`` at ``image_size`` (S): PIL image in, ``(3, S, S)`` float32 tensor out.

    ``generator`` feeds every random draw of the augmenting kinds (see the module docstring: one per worker, or
    one per sample); without one, a fresh unseeded generator is made, so the output is not reproducible.
    """
    try:
        kind = TransformKind(kind)
    except ValueError:
        choices = ", ".join(member.value for member in TransformKind)
        raise ValueError(f"kind: unknown transform {kind!r}; expected one of {choices}") from None
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size: expected an int >= 1, got {image_size!r}")
    if kind is TransformKind.CLIP:
        resize = partial(_shorter_side_center_crop, size=image_size)
    elif kind is TransformKind.ALBEF:
        resize = partial(_square_resize, size=image_size)
    else:
        rng = generator if generator is not None else np.random.default_rng()
        resize = partial(_augmented, size=image_size, ops=AUGMENT_OPS[kind], flip=_FLIPS[kind], rng=rng)

    def transform(image: Image.Image) -> torch.Tensor:
        return _to_tensor(resize(convert_to_rgb(image)))

    return transform


__all__ = ["AUGMENT_OPS", "CLIP_MEAN", "CLIP_STD", "TRAIN_EVAL", "TransformKind", "build_transform"]
