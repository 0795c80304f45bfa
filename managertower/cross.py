"""The cross-modal encoder's layer: transformers' ``BridgeTowerBertCrossLayer`` (post-LN BERT: self-attention,
cross-attention to the other stream, FFN), always called with explicit additive masks.

The explicit masks matter: transformers builds the layer's self-attention with ``is_causal=True`` and its
``BridgeTowerModel`` passes no mask for the image stream. The eager kernel ignores ``is_causal``; SDPA would make
the image self-attention causal when the mask is absent. With a mask it never is.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import BridgeTowerTextConfig
from transformers.models.bridgetower.modeling_bridgetower import BridgeTowerBertCrossLayer

from managertower.config import CrossModalConfig


def cross_layer_config(cfg: CrossModalConfig, attention: str) -> BridgeTowerTextConfig:
    config = BridgeTowerTextConfig(
        hidden_size=cfg.hidden_size,
        num_attention_heads=cfg.heads,
        intermediate_size=cfg.intermediate_size,
        hidden_act="gelu",
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.dropout,
        layer_norm_eps=cfg.layer_norm_eps,
    )
    config._attn_implementation = attention
    return config


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, L) of 1 = token, 0 = padding -> (B, 1, 1, L): 0 where attended, the dtype's minimum where masked."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class CrossLayer(nn.Module):
    def __init__(self, cfg: CrossModalConfig, *, attention: str) -> None:
        super().__init__()
        self.layer = BridgeTowerBertCrossLayer(cross_layer_config(cfg, attention))

    def forward(self, hidden: torch.Tensor, other: torch.Tensor, mask: torch.Tensor, other_mask: torch.Tensor):
        """``hidden`` (B, L, D) attends to itself under ``mask`` and to ``other`` (B, Lo, D) under ``other_mask``
        (both additive, (B, 1, 1, L) and (B, 1, 1, Lo)) -> (B, L, D)."""
        return self.layer(hidden, other, attention_mask=mask, encoder_attention_mask=other_mask)[0]
