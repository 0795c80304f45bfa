"""Normalise the ``images`` argument LLaVA-NeXT callers pass, validate it, and encode it into packed tokens.

Accepted forms (all from LLaVA-NeXT and lmms-eval):

* a list of per-image tensors ``(P, 3, S, S)`` or ``(3, S, S)`` -- the training collator, anyres inference;
* a 5-D tensor ``(N, P, 3, S, S)`` -- ``process_images`` stacked equal-shaped anyres images;
* a 4-D tensor ``(N, 3, S, S)`` -- ``process_images`` stacked ``pad``/``square`` images. LLaVA-NeXT encodes these
  *without* packing (729 tokens, no ``image_newline``), unlike a list of the same tensors (730 tokens). lmms-eval's
  stock wrapper relies on it for multi-image prompts, so the quirk is kept (see ``docs/differences.md``).

``modalities`` gives one entry per image: ``"image"``, or ``"text"`` for the dummy image a text-only training
sample carries so that every rank runs the vision tower (ZeRO-3 needs identical module calls on all ranks).
Dummy images are encoded, kept in the graph with zero gradient, and never placed in the sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llava.model.anyres import Size
from llava.model.config import MultimodalSpec
from llava.model.image_layout import PackedImage, pack_flat, pack_image

MODALITIES = ("image", "text")


@dataclass(frozen=True, slots=True)
class ImageBatch:
    crops: list[torch.Tensor]  # per image: (P, 3, S, S)
    sizes: list[Size | None]  # per image: original (width, height)
    modalities: list[str]
    unpacked: bool  # came as a 4-D tensor: tokens are used without packing

    @classmethod
    def from_inputs(cls, images, image_sizes=None, modalities=None) -> ImageBatch:
        unpacked = False
        if images is None:
            crops = []
        elif isinstance(images, torch.Tensor) and images.dim() == 4:
            crops, unpacked = list(images.unsqueeze(1)), True
        elif isinstance(images, torch.Tensor) and images.dim() == 5:
            crops = list(images)
        elif isinstance(images, (list, tuple)):
            crops = [_as_crops(item, i) for i, item in enumerate(images)]
        else:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be a list of (P, 3, H, W) tensors or a 4-D/5-D tensor, got {shape}")
        return cls(
            crops=crops,
            sizes=_sizes(image_sizes, len(crops)),
            modalities=_modalities(modalities, len(crops)),
            unpacked=unpacked,
        )

    @property
    def placed(self) -> list[int]:
        """Indices of the images that fill placeholders, in order."""
        return [i for i, m in enumerate(self.modalities) if m == "image"]

    @property
    def dummies(self) -> list[int]:
        """Indices of the text-only samples' dummy images."""
        return [i for i, m in enumerate(self.modalities) if m != "image"]

    def check_placeholders(self, per_sample: list[int]) -> None:
        if sum(per_sample) != len(self.placed):
            dummies = f" (+{len(self.dummies)} text-only dummies)" if self.dummies else ""
            raise ValueError(
                f"the batch has {sum(per_sample)} <image> placeholders (per sample: {per_sample}) but "
                f"{len(self.placed)} images{dummies}"
            )


def _as_crops(item, index: int) -> torch.Tensor:
    if not isinstance(item, torch.Tensor) or item.dim() not in (3, 4):
        shape = tuple(item.shape) if isinstance(item, torch.Tensor) else type(item).__name__
        raise ValueError(f"images[{index}] must be a (3, H, W) or (P, 3, H, W) tensor, got {shape}")
    return item.unsqueeze(0) if item.dim() == 3 else item


def _sizes(image_sizes, count: int) -> list[Size | None]:
    if image_sizes is None:
        return [None] * count
    sizes = image_sizes.tolist() if isinstance(image_sizes, torch.Tensor) else list(image_sizes)
    if len(sizes) != count:
        raise ValueError(f"got {len(sizes)} image_sizes for {count} images")
    return [None if s is None else (int(s[0]), int(s[1])) for s in sizes]


def _modalities(modalities, count: int) -> list[str]:
    if modalities is None:
        modalities = ["image"]
    if isinstance(modalities, str):
        modalities = [modalities]
    modalities = list(modalities)
    # LLaVA-NeXT silently truncates the batch to len(modalities); a single entry is broadcast instead.
    if len(modalities) == 1 and count != 1:
        modalities = modalities * count
    if count and len(modalities) != count:
        raise ValueError(f"got {len(modalities)} modalities for {count} images")
    for modality in set(modalities):
        if modality == "video":
            raise ValueError("video inputs are not supported by this package (single- and multi-image only)")
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    return modalities[:count]


@dataclass(frozen=True, slots=True)
class EncodedImages:
    tokens: torch.Tensor  # (N, D): packed tokens of the placed images in order, then the dummies'
    lengths: list[int]  # packed length of each placed image
    kinds: torch.Tensor  # (N,) int8 packing kinds
    experts: torch.Tensor | None  # (E, N, D): the manager's projected expert layers, packed the same way


def encode_images(model, batch: ImageBatch, spec: MultimodalSpec) -> EncodedImages:
    """Run the tower once over every crop of the batch, project, and pack each image.

    With managers, the requested vision layers come from the same tower pass, go through the projector in one
    batched call together with the main features, and through the same packing (zeros at newline positions).
    """
    dim = model.config.hidden_size
    weight = model.embed_tokens.weight
    expert_layers = spec.manager.expert_layers if spec.manager.enabled else ()
    if not batch.crops:
        empty = weight.new_zeros(0, dim)
        experts = weight.new_zeros(len(expert_layers), 0, dim) if expert_layers else None
        return EncodedImages(empty, [], torch.zeros(0, dtype=torch.int8, device=weight.device), experts)
    counts = [c.shape[0] for c in batch.crops]
    main, stack = _project(model, torch.cat(batch.crops), expert_layers)  # (sum P, T, D), (E, sum P, T, D)
    main, stack = main.split(counts), (stack.split(counts, dim=1) if stack is not None else None)
    flat = batch.unpacked or spec.merge_type == "flat"

    def pack(features: torch.Tensor, index: int, newline: torch.Tensor | None) -> PackedImage:
        return pack_flat(features) if flat else pack_image(features, batch.sizes[index], spec, newline)

    order = batch.placed + batch.dummies
    packed = [pack(main[i], i, model.image_newline) for i in order]
    packed_experts = [pack(stack[i], i, None).features for i in order] if stack is not None else None
    return EncodedImages(
        tokens=torch.cat([p.features for p in packed]),
        lengths=[packed[k].features.shape[0] for k in range(len(batch.placed))],
        kinds=torch.cat([p.kinds for p in packed]),
        experts=torch.cat(packed_experts, dim=1) if packed_experts is not None else None,
    )


def _project(model, pixels: torch.Tensor, expert_layers: tuple[int, ...]):
    """Main features and expert stack through the projector, sharing the last layer when it is an expert."""
    output = model.vision_tower(pixels, hidden_state_indices=expert_layers)
    if output.layers is None:
        return model.mm_projector(output.features), None
    last = model.vision_tower.num_layers
    if last in expert_layers:
        stack = model.mm_projector(output.layers)  # (E, P, T, D), one batched call
        return stack[expert_layers.index(last)], stack
    projected = model.mm_projector(torch.cat([output.layers, output.features[None]]))
    return projected[-1], projected[:-1]
