"""Turning lmms-eval requests into model inputs: visuals, image tensors, prompts and batches.

Batches only hold requests that the stock wrapper would encode the same way, so batching never changes what the
model sees:

* ``packed``: one image per request in an anyres mode (``process_images`` gives ``(P, 3, S, S)`` crops that are
  packed with ``image_newline``);
* ``unpacked``: several images per request (``pad`` per image, as the stock wrapper does) or a single image in a
  non-anyres mode; ``process_images`` stacks them into a 4-D tensor that LLaVA-NeXT encodes without packing;
* ``text``: no image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch
from PIL import Image

from llava.constants import IMAGE_TOKEN_INDEX
from llava.eval.prompts import build_prompt
from llava.mm_utils import process_images, tokenizer_image_token

KINDS = ("packed", "unpacked", "text")


@dataclass
class Prepared:
    """One request ready for the model: prompt ids and (optionally) its images."""

    index: int  # position in the caller's request list
    ids: torch.Tensor  # (T,) with IMAGE_TOKEN_INDEX at image positions
    images: torch.Tensor | None  # packed: (P, 3, S, S); unpacked: (N, 3, S, S); text: None
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (width, height) per image
    kind: str = "text"
    group: str = ""  # requests with equal group keys may share a batch


def load_visuals(doc_to_visual, doc, task: str, doc_id) -> list[Image.Image]:
    visuals = doc_to_visual(doc) if doc_to_visual is not None else []
    visuals = [] if visuals is None else list(visuals)
    for visual in visuals:
        if not isinstance(visual, Image.Image):
            raise ValueError(
                f"{task} doc {doc_id}: doc_to_visual returned {type(visual).__name__}; only images are supported "
                "(videos are not part of the LLaVA-OV image benchmarks)"
            )
    return visuals


def image_tensor(visuals: list[Image.Image], image_processor, config, dtype, device):
    """Preprocess like the stock wrapper: the model's aspect-ratio mode for one image, ``pad`` for several."""
    if not visuals:
        return None, "text"
    processed = process_images(
        visuals, image_processor, config, image_aspect_ratio=None if len(visuals) == 1 else "pad"
    )
    if isinstance(processed, torch.Tensor) and processed.dim() == 4:
        return processed.to(device=device, dtype=dtype), "unpacked"
    # One anyres image: a 5-D stack (1, P, 3, S, S) or a one-element list.
    crops = processed[0]
    return crops.to(device=device, dtype=dtype), "packed"


def prepare(
    index: int, context: str, visuals, tokenizer, image_processor, config, *, template, dtype, device, group: str = ""
) -> Prepared:
    images, kind = image_tensor(visuals, image_processor, config, dtype, device)
    prompt = build_prompt(context, len(visuals), template)
    ids = tokenizer_image_token(prompt, tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt")
    return Prepared(
        index=index, ids=ids, images=images, sizes=[v.size for v in visuals], kind=kind, group=f"{group}|{kind}"
    )


def gen_kwargs_key(gen_kwargs: dict) -> str:
    return json.dumps(gen_kwargs, sort_keys=True, default=str)


def batches(items: list[Prepared], batch_size: int) -> list[list[Prepared]]:
    """Group compatible requests, longest prompts first (so memory problems show up at once), then chunk."""
    groups: dict[str, list[Prepared]] = {}
    for item in items:
        groups.setdefault(item.group, []).append(item)
    out = []
    for members in groups.values():
        members.sort(key=lambda item: -item.ids.numel())
        out.extend(members[start : start + batch_size] for start in range(0, len(members), batch_size))
    return out


def collate(batch: list[Prepared], pad_token_id: int, device) -> dict:
    """Left-padded ids, an explicit attention mask and the batch's images in the form the stock wrapper uses."""
    longest = max(item.ids.numel() for item in batch)
    ids = torch.full((len(batch), longest), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(batch), longest), dtype=torch.long)
    for row, item in enumerate(batch):
        ids[row, longest - item.ids.numel() :] = item.ids
        mask[row, longest - item.ids.numel() :] = 1
    kind = batch[0].kind
    assert all(item.kind == kind for item in batch), "a batch mixes image kinds"
    inputs = {"inputs": ids.to(device), "attention_mask": mask.to(device)}
    if kind == "packed":
        inputs["images"] = [item.images for item in batch]
    elif kind == "unpacked":
        inputs["images"] = torch.cat([item.images for item in batch], dim=0)
    if kind != "text":
        inputs["image_sizes"] = [size for item in batch for size in item.sizes]
    return inputs
