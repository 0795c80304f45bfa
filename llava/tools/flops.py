"""Multiply-adds of one sample through the model, counted on the meta device by ``vlcommon.flops.flop_counter``
(``torch.utils.flop_counter`` with the CPU attention kernels added; managertower's budget counts with it too).

The paper's Table IV uses fvcore, which counts one multiply-add as one "FLOP"; ``FlopCounterMode`` counts two.
Everything here is reported in multiply-adds (MACs = counted FLOPs / 2) so numbers compare with the paper directly.
Both count matrix products, convolutions and attention only; elementwise work (norms, activations, the managers'
weighted sums) is not counted by either and is reported separately by the budget tool.

The model's own ``forward`` cannot run on meta tensors: splicing images into the text reads token ids. The count
below runs the same modules in the same order instead -- ``encode_images`` (tower, projector, packing), the decoder
stack with the managers' injection, ``lm_head`` -- on an input whose layout (text tokens, then the packed image)
is fixed in advance. ``tests/test_budget.py`` checks that the sum equals the count of a real forward.

Training counts forward + backward as autograd differentiates the plain attention math. Fused attention kernels
(FlashAttention, SDPA on CPU) also recompute ``Q K^T`` in backward: one more (L x L x width) product per attention
layer, which a real CPU step counts on top (the test pins that difference exactly).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from llava.mm_utils import process_images
from llava.model.image_layout import pack_flat, pack_image
from llava.model.images import ImageBatch, encode_images
from llava.model.manager import TARGET_KINDS, VisualInjection
from llava.processing import image_processor_for
from vlcommon.flops import flop_counter


@dataclass(frozen=True, kw_only=True, slots=True)
class ForwardMacs:
    """Multiply-adds of one forward, by component, and of forward + backward (full fine-tuning)."""

    tower: int
    projector: int  # the main features and, with managers, every expert layer not shared with them
    llm: int  # decoder layers
    lm_head: int  # logits at every position, as a plain forward computes them
    train: int  # forward + backward, every parameter trainable
    crops: int
    visual_tokens: int  # packed image length in the LLM sequence
    manager_rows: int  # visual positions the managers write to (newlines excluded); 0 without managers
    sequence: int

    @property
    def total(self) -> int:
        return self.tower + self.projector + self.llm + self.lm_head


def crop_pixels(config, image_size: tuple[int, int]) -> torch.Tensor:
    """``(P, 3, S, S)`` crops the real preprocessing makes of a ``(width, height)`` image under ``config``."""
    pixels = process_images([Image.new("RGB", image_size)], image_processor_for(config), config)[0]
    return pixels if pixels.dim() == 4 else pixels[None]  # "pad" gives one (3, S, S) crop per image


def count_forward(model, image_size: tuple[int, int], text_tokens: int) -> ForwardMacs:
    """Count one sample (one image of ``image_size`` after ``text_tokens`` text tokens) on a meta-device model."""
    assert next(model.parameters()).device.type == "meta", "build the model under torch.device('meta')"
    config, inner = model.config, model.model
    pixels = crop_pixels(config, image_size).to("meta")
    batch = ImageBatch.from_inputs([pixels], [image_size], None)
    spec = model.mm_spec
    experts = spec.manager.expert_layers if spec.manager.enabled else ()
    with flop_counter() as tower_only:
        inner.vision_tower(pixels, hidden_state_indices=experts)
    with flop_counter() as counter:
        encoded = encode_images(inner, batch, spec)  # (N, D) tokens, (E, N, D) experts
        encode = counter.get_total_flops()
        text = inner.embed_tokens(torch.zeros(1, text_tokens, dtype=torch.long, device="meta"))
        embeds = torch.cat([text, encoded.tokens[None]], dim=1)  # (1, L, D): text, then the packed image
        injection = _meta_injection(encoded, pixels, image_size, spec)
        hidden = inner(
            inputs_embeds=embeds, attention_mask=_unpadded_masks(config), use_cache=False, visual_injection=injection
        ).last_hidden_state
        decoder = counter.get_total_flops() - encode
        logits = model.lm_head(hidden)  # (1, L, V)
        forward = counter.get_total_flops()
        logits.float().sum().backward()
        train = counter.get_total_flops()
    tower = tower_only.get_total_flops()
    return ForwardMacs(
        tower=tower // 2,
        projector=(encode - tower) // 2,
        llm=decoder // 2,
        lm_head=(forward - encode - decoder) // 2,
        train=train // 2,
        crops=pixels.shape[0],
        visual_tokens=encoded.tokens.shape[0],
        sequence=embeds.shape[1],
        manager_rows=injection.flat_index.shape[0] if injection is not None else 0,
    )


def _unpadded_masks(config) -> dict:
    # One unpadded sequence: every layer attends causally with no mask tensor, as create_causal_mask returns for SDPA.
    return {kind: None for kind in set(config.layer_types)}


def _meta_injection(encoded, pixels: torch.Tensor, image_size, spec) -> VisualInjection | None:
    """The managers' injection at the rows they write to. Which rows those are (base and grid tokens, not newlines)
    is data on the meta device, so it is read from the same packing run on a one-channel CPU stand-in."""
    if encoded.experts is None:
        return None
    stand_in = torch.zeros(pixels.shape[0], spec.tokens_per_side**2, 1)  # (P, T, 1)
    packed = pack_flat(stand_in) if spec.merge_type == "flat" else pack_image(stand_in, image_size, spec, None)
    targets = torch.zeros_like(packed.kinds, dtype=torch.bool)
    for kind in TARGET_KINDS[spec.manager.targets]:
        targets |= packed.kinds == kind
    rows = int(targets.sum())
    index = torch.empty(rows, dtype=torch.long, device="meta")
    return VisualInjection(
        positions=torch.zeros(1, 1, dtype=torch.bool, device="meta"),
        flat_index=index,
        experts=encoded.experts.index_select(1, index),
    )  # (E, rows, D)
