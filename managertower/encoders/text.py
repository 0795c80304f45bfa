"""The textual expert: transformers' ``RobertaModel`` (BridgeTower's text model has the same module names)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import RobertaConfig, RobertaModel

from managertower.config import TextEncoderConfig
from managertower.cross import additive_mask


def roberta_config(cfg: TextEncoderConfig, attention: str) -> RobertaConfig:
    config = RobertaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_positions,
        type_vocab_size=1,
        layer_norm_eps=cfg.layer_norm_eps,
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.dropout,
        pad_token_id=cfg.pad_token_id,
    )
    config._attn_implementation = attention
    return config


class TextEncoder(nn.Module):
    def __init__(self, cfg: TextEncoderConfig, *, attention: str) -> None:
        super().__init__()
        self.model = RobertaModel(roberta_config(cfg, attention), add_pooling_layer=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, layers: tuple[int, ...]) -> torch.Tensor:
        """(B, L) ids and padding mask (1 = token) -> (B, len(layers), L, D): the outputs of the 1-based ``layers``.

        Position ids come from the padding, as RoBERTa builds them when none are given (the original's behaviour).
        The additive 4D mask is built here (transformers uses a ready 4D mask as it is): the same values transformers
        would build, without its data-dependent shortcut for unpadded batches, so the encoder also runs on the meta
        device (``managertower.budget``)."""
        mask = additive_mask(attention_mask, self.model.dtype)
        out = self.model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
        return torch.stack([out.hidden_states[k] for k in layers], dim=1)  # hidden_states[0]: the embeddings
