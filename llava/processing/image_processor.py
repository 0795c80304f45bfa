"""SigLIP image processor with LLaVA-NeXT's behaviour, written for speed.

LLaVA-NeXT's ``SigLipImageProcessor``: convert to RGB (``vlcommon.images.convert_to_rgb``: high-bit grey images
are scaled, not clipped), squash-resize to ``size`` with PIL bicubic (no aspect preservation, no centre crop),
multiply by ``1/255``, normalise with mean = std = 0.5, channels first.

Instead of per-pixel float arithmetic this implementation maps uint8 pixels through a 256-entry lookup table per
channel, computed with the same float64-rescale-then-float32-normalise steps as transformers' ``rescale`` and
``normalize``, so values are bit-identical to the reference pipeline and the conversion is a single gather.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from transformers import BatchFeature

# The one RGB conversion of both stacks lives in vlcommon; these names stay importable from here.
from vlcommon.images import HIGH_BIT_MODES, convert_to_rgb, to_8bit

if TYPE_CHECKING:
    from llava.model.config import LlavaQwenConfig

__all__ = [
    "HIGH_BIT_MODES",
    "SIGLIP_MEAN",
    "SIGLIP_STD",
    "SigLipImageProcessor",
    "convert_to_rgb",
    "image_processor_for",
    "to_8bit",
]

SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)


class SigLipImageProcessor:
    """Callable like transformers' image processors: ``preprocess(images, return_tensors="pt")``."""

    model_input_names = ["pixel_values"]  # noqa: RUF012 (transformers' processor attribute)

    def __init__(
        self,
        *,
        image_mean: Sequence[float] = SIGLIP_MEAN,
        image_std: Sequence[float] = SIGLIP_STD,
        size: tuple[int, int] = (384, 384),
        resample: Image.Resampling = Image.Resampling.BICUBIC,
        rescale_factor: float = 1 / 255,
    ) -> None:
        self.image_mean = tuple(float(m) for m in image_mean)
        self.image_std = tuple(float(s) for s in image_std)
        self.size = tuple(size)
        self.crop_size = {"height": self.size[0], "width": self.size[1]}
        self.resample = resample
        self.rescale_factor = rescale_factor
        self._lut = self._build_lut()

    def _build_lut(self) -> np.ndarray:
        # (3, 256) float32: value of each uint8 level per channel after rescale + normalise.
        levels = (np.arange(256, dtype=np.float64) * self.rescale_factor).astype(np.float32)
        mean = np.asarray(self.image_mean, dtype=np.float32)[:, None]
        std = np.asarray(self.image_std, dtype=np.float32)[:, None]
        return ((levels[None, :] - mean) / std).astype(np.float32)

    @property
    def background_color(self) -> tuple[int, int, int]:
        """Mean colour used by ``pad`` mode, as LLaVA-NeXT computes it (``int(m * 255)``)."""
        return tuple(int(m * 255) for m in self.image_mean)

    def to_tensor(self, image: Image.Image, out: torch.Tensor | None = None) -> torch.Tensor:
        """Resize one image to ``size`` and normalise it: ``(3, H, W)`` float32, written into ``out`` when given
        (a slot of a preallocated crop batch: no copy by a later ``torch.stack``)."""
        image = convert_to_rgb(image)
        height, width = self.size
        if image.size != (width, height):
            image = image.resize((width, height), self.resample)
        return self.normalise_into(np.asarray(image, dtype=np.uint8), out)

    def normalise_into(self, pixels: np.ndarray, out: torch.Tensor | None = None) -> torch.Tensor:
        """Normalise ``(H, W, 3)`` uint8 RGB pixels (a strided view is fine) into ``(3, H, W)`` float32."""
        height, width, _ = pixels.shape
        if out is None:
            out = torch.empty((3, height, width), dtype=torch.float32)
        target = out.numpy()
        # Gather per channel: lut[c][pixels[..., c]] -> (3, H, W)
        for channel in range(3):
            np.take(self._lut[channel], pixels[..., channel], out=target[channel])
        return out

    def preprocess(self, images, return_tensors: str | None = "pt", **kwargs) -> BatchFeature:
        if isinstance(images, Image.Image):
            images = [images]
        unsupported = set(kwargs) - {"do_resize", "do_rescale", "do_normalize", "data_format"}
        if unsupported:
            raise ValueError(f"SigLipImageProcessor.preprocess: unsupported arguments {sorted(unsupported)}")
        pixel_values = [self.to_tensor(_as_pil(image)) for image in images]
        if return_tensors == "pt":
            return BatchFeature({"pixel_values": torch.stack(pixel_values)})
        if return_tensors is None:
            return BatchFeature({"pixel_values": [p.numpy() for p in pixel_values]})
        raise ValueError(f"return_tensors={return_tensors!r} is not supported; use 'pt' or None")

    __call__ = preprocess

    def __repr__(self) -> str:
        return f"SigLipImageProcessor(size={self.size}, mean={self.image_mean}, std={self.image_std})"


def image_processor_for(config: LlavaQwenConfig) -> SigLipImageProcessor:
    """SigLIP preprocessing at the tower's input resolution."""
    side = config.vision_config.image_size
    return SigLipImageProcessor(size=(side, side))


def _as_pil(image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = np.transpose(array, (1, 2, 0))  # CHW -> HWC, as video frames may come channels-first
    if array.dtype != np.uint8:
        raise ValueError(f"expected uint8 image arrays, got {array.dtype}")
    return Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array)
