"""NLVR2's two-image pairing (the original's ``compute_nlvr2`` and the token-type growth in ``mt_module.py``).

The checkpoint's token-type table has two rows (text 0, image 1). For NLVR2 it grows to three: rows 0 and 1 are
kept and row 2 starts as a copy of row 1. The same text then goes through two full forwards, image 0 with type 1
and image 1 with type 2 (added to every projected image layer), and the two ``cls_feats`` are concatenated.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from managertower.model import ManagerTowerModel


def grow_token_types(model: ManagerTowerModel, rows: int = 3) -> ManagerTowerModel:
    """In place: ``rows`` token types, the new ones copies of the image row (1). A no-op when already that size."""
    table = model.token_type_embeddings
    if table.num_embeddings == rows:
        return model
    if table.num_embeddings > rows:
        raise ValueError(f"grow_token_types: the table already has {table.num_embeddings} rows (> {rows})")
    grown = nn.Embedding(rows, table.embedding_dim, device=table.weight.device, dtype=table.weight.dtype)
    with torch.no_grad():
        grown.weight[: table.num_embeddings] = table.weight
        grown.weight[table.num_embeddings :] = table.weight[1]
    model.token_type_embeddings = grown
    model.config = dataclasses.replace(model.config, token_types=rows)
    return model


def nlvr2_features(
    model: ManagerTowerModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    pixel_values_0: torch.Tensor,
    pixel_values_1: torch.Tensor,
) -> torch.Tensor:
    """(B, Lt) text and two (B, 3, S, S) images -> (B, 4D): ``[cls_feats(text, image 0), cls_feats(text, image 1)]``."""
    if model.config.token_types < 3:
        raise ValueError("nlvr2_features needs a 3-row token-type table: call grow_token_types(model) first")
    first = model(input_ids, attention_mask, pixel_values_0, image_token_type=1).cls_feats
    second = model(input_ids, attention_mask, pixel_values_1, image_token_type=2).cls_feats
    return torch.cat([first, second], dim=-1)
