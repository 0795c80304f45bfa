"""Which tokens the analyses average over, per modality: the text's real tokens, every image token."""

from __future__ import annotations

import torch

from managertower.managers import ManagerOutput

MODALITIES = ("text", "image")  # the order of each layer's pair in ``ManagerTowerOutput.managers``


def valid_tokens(modality: str, output: ManagerOutput, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) float64 mask of 1 = averaged: the text's ``attention_mask`` (padding left out); for the image all of
    its tokens (the class token and every patch), as the image stream has no padding."""
    batch, length = output.unimodal.shape[:2]
    if modality == "text":
        assert attention_mask.shape == (batch, length), (attention_mask.shape, output.unimodal.shape)
        return attention_mask.to(torch.float64)
    assert modality == "image", modality
    return torch.ones(batch, length, dtype=torch.float64, device=output.unimodal.device)
