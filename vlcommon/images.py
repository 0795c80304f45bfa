"""The one image decoder and RGB conversion of both stacks (LLaVA's processors and datasets, ManagerTower's
converters, datasets and transforms), so that an image reads the same whichever model trains on it.

* :func:`decode_image`: bytes -> a fully decoded PIL image, or :class:`~vlcommon.ledger.BadSample` naming what is
  wrong. It decodes every pixel (``load``): ``Image.verify`` reads only the headers and passes a truncated JPEG.
* :func:`read_image` (a file: the same, ``missing_image`` when absent) and :func:`image_size` (its header alone: what a
  packed row's plan reads).
* :func:`to_8bit`: a high-bit-depth grey image (16-bit PNG, 32-bit int or float TIFF) scaled to 8-bit ``L``;
  PIL's ``convert("RGB")`` clips those modes at 255 instead, so a 16-bit PNG comes out almost all white.
* :func:`convert_to_rgb`: :func:`to_8bit`, then a plain ``convert("RGB")`` (alpha dropped, as the transformers
  version LLaVA-NeXT pins does; docs/differences.md, row 9).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from vlcommon.ledger import BadSample

# PIL modes wider than 8 bits a channel: 16-bit PNGs open as I;16*, some TIFFs as I (32-bit int) or F (float).
HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def to_8bit(image: Image.Image) -> Image.Image:
    """A high-bit-depth grey image scaled to 8-bit ``L``; any other image as it is.

    Integers use the 16-bit range (``v / 257``) unless they already fit in 8 bits; floats in [0, 1] are scaled by
    255, larger ones read like integers.
    """
    if image.mode not in HIGH_BIT_MODES:
        return image
    values = np.asarray(image, dtype=np.float64)  # (H, W)
    peak = float(values.max()) if values.size else 0.0
    if image.mode == "F" and peak <= 1.0:
        scale = 255.0
    elif peak <= 255:
        scale = 1.0
    else:
        scale = 255.0 / (65535.0 if peak <= 65535 else peak)
    return Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8), mode="L")


def convert_to_rgb(image: Image.Image) -> Image.Image:
    """``image`` in RGB: high-bit grey scaled to 8 bit first (:func:`to_8bit`), then a plain ``convert("RGB")``."""
    return image if image.mode == "RGB" else to_8bit(image).convert("RGB")


@contextmanager
def _whole_files_only() -> Iterator[None]:
    """PIL's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is one flag for the whole process, and lmms-eval sets it on import:
    a truncated file would then decode with its missing rows black, and train as if it were sound. Decoding here
    always sees the truncation. (Decoders run one at a time per process: DataLoader workers are processes, and
    the crop batch's threads get an image already loaded.)"""
    saved, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved


def decode_image(data: bytes | None, *, field: str = "image", source: str = "") -> Image.Image:
    """``data`` decoded in full, in its own mode. :class:`BadSample` (kind ``missing_image``, ``corrupt_image`` or
    ``empty_image``) names ``field`` and ``source`` (a file, when there is one) in its message."""
    where = f" {source}" if source else ""
    if not data:
        raise BadSample("missing_image", f"{field}: no image bytes{where}")
    try:
        with _whole_files_only():
            image = Image.open(io.BytesIO(data))
            image.load()
    except Exception as error:  # PIL raises several types for broken files (OSError, SyntaxError, ValueError...)
        raise BadSample("corrupt_image", f"{field}: cannot decode{where}: {error}") from error
    if image.width < 1 or image.height < 1:
        raise BadSample("empty_image", f"{field}: decodes to an empty {image.width}x{image.height} image{where}")
    return image


def read_image(path: Path, *, field: str = "image") -> Image.Image:
    """The file at ``path`` decoded in full (:func:`decode_image`); ``missing_image`` when there is no such file."""
    if not path.is_file():
        raise BadSample("missing_image", f"{field}: file not found: {path}")
    data = path.read_bytes()
    if not data:  # the file is there: broken, not missing
        raise BadSample("corrupt_image", f"{field}: cannot decode {path}: the file is empty")
    return decode_image(data, field=field, source=str(path))


def image_size(path: Path, *, field: str = "image") -> tuple[int, int]:
    """``(width, height)`` from the file's header alone (no pixel decoded), with :func:`read_image`'s kinds."""
    if not path.is_file():
        raise BadSample("missing_image", f"{field}: file not found: {path}")
    try:
        with Image.open(path) as image:
            size = image.size
    except Exception as error:  # as decode_image: PIL's errors for a broken header come in several types
        raise BadSample("corrupt_image", f"{field}: cannot decode {path}: {error}") from error
    if size[0] < 1 or size[1] < 1:
        raise BadSample("empty_image", f"{field}: {path} is an empty {size[0]}x{size[1]} image")
    return size


__all__ = ["HIGH_BIT_MODES", "convert_to_rgb", "decode_image", "image_size", "read_image", "to_8bit"]
