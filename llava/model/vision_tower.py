"""SigLIP vision tower (transformers' ``SiglipVisionModel``) returning pre-``post_layernorm`` features.

LLaVA-OneVision feeds the LLM with the output of SigLIP layer 26 *before* ``post_layernorm``; the checkpoint's
tower already has only 26 layers, so the features are simply the last layer's output. The tower also hands over
any other requested layers (the manager's experts) from the same pass.

Hidden-state indices follow transformers: ``0`` is the patch embeddings, ``k`` the output of encoder layer ``k``
(1-based), ``num_hidden_layers`` the features LLaVA uses.

Shapes: N crops, T = (image_size // patch_size) ** 2 tokens per crop, C = vision hidden size, E selected layers.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from transformers import SiglipVisionConfig, SiglipVisionModel


class VisionOutput(NamedTuple):
    # A NamedTuple: DeepSpeed ZeRO-3's module hooks walk outputs that are tuples, dicts or plain objects.
    features: torch.Tensor  # (N, T, C): last layer, before post_layernorm
    layers: torch.Tensor | None  # (E, N, T, C): the requested hidden states, in request order


class _SiglipCheckpointLayout(nn.Module):
    """Holds SigLIP as ``.vision_model`` so our parameter names equal LLaVA-NeXT's
    (``model.vision_tower.vision_tower.vision_model.*``) and released checkpoints load without renaming."""

    def __init__(self, config: SiglipVisionConfig) -> None:
        super().__init__()
        self.vision_model = SiglipVisionModel(config)


class SigLipVisionTower(nn.Module):
    def __init__(self, config: SiglipVisionConfig) -> None:
        super().__init__()
        if config.vision_use_head:
            raise ValueError("the LLaVA vision tower has no pooling head: set vision_config.vision_use_head=False")
        self.config = config
        self.vision_tower = _SiglipCheckpointLayout(config)

    @property
    def num_layers(self) -> int:
        return self.config.num_hidden_layers

    @property
    def tokens_per_side(self) -> int:
        return self.config.image_size // self.config.patch_size

    def unused_parameters(self) -> list[nn.Parameter]:
        """Weights the checkpoint carries but :meth:`forward` never runs: SigLIP's ``post_layernorm`` (LLaVA reads
        pre-norm features). Kept so checkpoints round-trip to LLaVA-NeXT and transformers; never trainable, since
        DDP stops at the second step when a trainable parameter gets no gradient."""
        return list(self.vision_tower.vision_model.post_layernorm.parameters())

    def forward(self, pixel_values: torch.Tensor, *, hidden_state_indices: tuple[int, ...] = ()) -> VisionOutput:
        """Encode ``(N, 3, S, S)`` crops; see the module docstring for ``hidden_state_indices``."""
        model = self.vision_tower.vision_model
        weight = model.embeddings.patch_embedding.weight
        hidden = model.embeddings(pixel_values.to(device=weight.device, dtype=weight.dtype))
        wanted = {index: slot for slot, index in enumerate(hidden_state_indices)}
        collected: list[torch.Tensor | None] = [None] * len(hidden_state_indices)
        if 0 in wanted:
            collected[wanted[0]] = hidden
        # Running the layers ourselves stops at the last one LLaVA needs and skips post_layernorm entirely.
        for depth, layer in enumerate(model.encoder.layers, start=1):
            hidden = layer(hidden, None)
            if depth in wanted:
                collected[wanted[depth]] = hidden
        layers = torch.stack(collected) if collected else None
        return VisionOutput(features=hidden, layers=layers)
