"""LLaVA-NeXT's ``llava.mm_utils`` API: image processing for every aspect-ratio mode, prompt tokenisation with
image placeholders, and small generation helpers.

``process_images`` returns what LLaVA-NeXT returns, because downstream code (lmms-eval's stock wrapper) depends on
the container type: a stacked tensor when every image gives the same shape (``(N, 3, H, W)`` for square/pad,
``(N, 1+P, 3, H, W)`` for anyres), otherwise a list of per-image tensors.
"""

from __future__ import annotations

import torch
from PIL import Image
from transformers import StoppingCriteria

from llava.constants import IMAGE_TOKEN_INDEX
from llava.model.anyres import (
    AspectRatioMode,
    divide_to_patches,
    expand2square,
    get_anyres_image_grid_shape,
    parse_grid_pinpoints,
    resize_and_pad_image,
    select_best_resolution,
    unpad_image,
)
from llava.processing.crop_batch import anyres_crop_batch
from vlcommon.images import convert_to_rgb, to_8bit

__all__ = [
    "KeywordsStoppingCriteria",
    "divide_to_patches",
    "expand2square",
    "get_anyres_image_grid_shape",
    "get_model_name_from_path",
    "process_anyres_image",
    "process_images",
    "resize_and_pad_image",
    "select_best_resolution",
    "tokenizer_image_token",
    "unpad_image",
]


def _crop_size(image_processor) -> int:
    """The square crop side of ``image_processor``: ours holds ``(H, W)``; transformers' hold a dict (4.x) or a
    ``SizeDict`` (5.x), keyed ``height``/``width`` or ``shortest_edge``."""
    size = image_processor.size
    if isinstance(size, (tuple, list)):
        height, width = size
    else:
        get = size.get  # dict and SizeDict both answer .get(key) (None when unset)
        height, width = get("height") or get("shortest_edge"), get("width") or get("shortest_edge")
    if height is None or height != width:
        raise ValueError(f"image processor size {size!r}: LLaVA-OV crops are square (height == width)")
    return int(height)


def process_anyres_image(image: Image.Image, image_processor, grid_pinpoints) -> torch.Tensor:
    """Base crop (squashed, as upstream does) followed by the grid crops: ``(1 + P, 3, S, S)``."""
    crop = _crop_size(image_processor)
    candidates = parse_grid_pinpoints(grid_pinpoints, crop)
    best = select_best_resolution(image.size, candidates)
    if hasattr(image_processor, "normalise_into"):
        return anyres_crop_batch(image, image_processor, best, crop)
    padded = resize_and_pad_image(image, best)
    crops = divide_to_patches(padded, crop)
    # The base image is squashed without padding: LLaVA-NeXT keeps this "bug" for consistency with training.
    base = image.resize((crop, crop), Image.Resampling.BICUBIC)
    return torch.stack([_pixel_values(image_processor, c) for c in [base, *crops]])


def _pixel_values(image_processor, image: Image.Image) -> torch.Tensor:
    """One ``(3, S, S)`` tensor; any transformers-style processor works, ours skips the batching overhead."""
    if hasattr(image_processor, "to_tensor"):
        return image_processor.to_tensor(image)
    return image_processor.preprocess(image, return_tensors="pt")["pixel_values"][0]


def process_images(images: list[Image.Image], image_processor, model_cfg, *, image_aspect_ratio: str | None = None):
    """Preprocess PIL images according to ``model_cfg.image_aspect_ratio`` (see module docstring), or to
    ``image_aspect_ratio`` when given (a per-call mode, e.g. ``pad`` for the images of a multi-image sample)."""
    requested = image_aspect_ratio or getattr(model_cfg, "image_aspect_ratio", None)
    mode = AspectRatioMode.parse(requested)
    # High-bit grey is scaled before any resize (anyres resizes the image as it comes), or it would turn white.
    # Other modes keep LLaVA-NeXT's order: e.g. RGBA is resized with premultiplied alpha before it loses alpha.
    images = [to_8bit(image) for image in images]
    if mode.is_anyres:
        pinpoints = getattr(model_cfg, "image_grid_pinpoints", None)
        if pinpoints is None:
            raise ValueError(f"image_aspect_ratio={requested!r} needs image_grid_pinpoints")
        processed = [process_anyres_image(image, image_processor, pinpoints) for image in images]
    elif mode.name == "pad":
        background = tuple(int(m * 255) for m in image_processor.image_mean)
        processed = [
            _pixel_values(image_processor, expand2square(convert_to_rgb(image), background)) for image in images
        ]
    else:
        return image_processor.preprocess([convert_to_rgb(image) for image in images], return_tensors="pt")[
            "pixel_values"
        ]
    if len(processed) == 1:
        return processed[0][None]  # a view: one image needs no stacking copy
    if all(p.shape == processed[0].shape for p in processed):
        return torch.stack(processed, dim=0)
    return processed


def tokenizer_image_token(prompt: str, tokenizer, image_token_index: int = IMAGE_TOKEN_INDEX, return_tensors=None):
    """Tokenise each text chunk between ``<image>`` markers on its own and join them with ``image_token_index``."""
    chunks = [tokenizer(chunk).input_ids for chunk in prompt.split("<image>")]
    input_ids: list[int] = []
    bos = getattr(tokenizer, "bos_token_id", None)
    offset = 0
    if chunks and chunks[0] and bos is not None and chunks[0][0] == bos:
        offset = 1
        input_ids.append(chunks[0][0])
    for index, chunk in enumerate(chunks):
        if index > 0:
            input_ids.append(image_token_index)
        input_ids.extend(chunk[offset:])
    if return_tensors is None:
        return input_ids
    if return_tensors == "pt":
        return torch.tensor(input_ids, dtype=torch.long)
    raise ValueError(f"Unsupported tensor type: {return_tensors}")


def get_model_name_from_path(model_path: str) -> str:
    parts = model_path.strip("/").split("/")
    if parts[-1].startswith("checkpoint-") and len(parts) > 1:
        return parts[-2] + "_" + parts[-1]
    return parts[-1]


class KeywordsStoppingCriteria(StoppingCriteria):
    """Stop when the generated text ends with one of ``keywords`` (by ids, or by decoded text of the last tokens)."""

    def __init__(self, keywords: list[str], tokenizer, input_ids: torch.Tensor) -> None:
        self.keywords = keywords
        self.tokenizer = tokenizer
        self.keyword_ids = []
        bos = getattr(tokenizer, "bos_token_id", None)
        for keyword in keywords:
            ids = tokenizer(keyword).input_ids
            if len(ids) > 1 and bos is not None and ids[0] == bos:
                ids = ids[1:]
            self.keyword_ids.append(torch.tensor(ids, dtype=torch.long))
        self.start_len = input_ids.shape[1]

    def _matches(self, output_ids: torch.Tensor) -> bool:
        for ids in self.keyword_ids:
            if output_ids.shape[0] >= ids.shape[0] and torch.equal(output_ids[-ids.shape[0] :].cpu(), ids):
                return True
        new_tokens = output_ids[max(0, output_ids.shape[0] - min(3, max(1, output_ids.shape[0] - self.start_len))) :]
        text = self.tokenizer.decode(new_tokens, skip_special_tokens=True)
        return any(keyword in text for keyword in self.keywords)

    def __call__(self, input_ids: torch.Tensor, scores=None, **kwargs) -> torch.BoolTensor:
        # Unlike upstream (batch size 1 only), evaluate every row.
        done = [self._matches(row) for row in input_ids]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
