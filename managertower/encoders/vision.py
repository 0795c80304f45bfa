"""The visual expert: CLIP ViT as transformers' ``BridgeTowerVisionModel`` builds it (OpenAI's module names, QuickGELU,
fused in-projection), where every layer's output goes through the one shared ``ln_post``."""

from __future__ import annotations

import torch
from torch import nn
from transformers import BridgeTowerVisionConfig
from transformers.models.bridgetower.modeling_bridgetower import BridgeTowerVisionModel

from managertower.config import VisionEncoderConfig


def clip_config(cfg: VisionEncoderConfig) -> BridgeTowerVisionConfig:
    return BridgeTowerVisionConfig(
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.layers,
        patch_size=cfg.patch_size,
        image_size=cfg.image_size,
        layer_norm_eps=cfg.layer_norm_eps,
        share_layernorm=True,
    )


class VisionEncoder(nn.Module):
    def __init__(self, cfg: VisionEncoderConfig) -> None:
        super().__init__()
        self.model = BridgeTowerVisionModel(clip_config(cfg))

    def forward(self, pixel_values: torch.Tensor, layers: tuple[int, ...]) -> torch.Tensor:
        """(B, 3, S, S) -> (B, len(layers), 1 + (S/P)^2, D): the 1-based ``layers``, each through ``ln_post``."""
        stacked = self.model(pixel_values)  # (depth, B, L, D)
        return stacked[[k - 1 for k in layers]].transpose(0, 1)
