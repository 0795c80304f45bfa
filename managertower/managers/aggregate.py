"""The aggregation rule every manager shares (paper Eq. 4-7): softmax-normalised weights over the unimodal
experts, plus freely learned weights on previous cross-modal outputs."""

from __future__ import annotations

import torch
from torch import nn


class Temperature(nn.Module):
    """A learned softmax temperature, initialised to ``value`` (no clamp, no log parameterisation: the original's)."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor([float(value)]))

    def forward(self, scores: torch.Tensor, dim: int) -> torch.Tensor:
        return torch.softmax(scores / self.value, dim=dim)


def exploration_noise(scores: torch.Tensor, *, experts: int, per_channel: bool, width: int) -> torch.Tensor:
    """eps ~ N(0, 1/N^2) for the unimodal scores (B, N, L, 1 or D): one draw per sample, expert and token, or per
    channel too (``per_channel``: the original code's [B, N, L, D] draws)."""
    shape = list(scores.shape)
    shape[-1] = width if per_channel else 1
    return torch.randn(shape, device=scores.device, dtype=scores.dtype) / experts


def weighted_sum(weights: torch.Tensor, reps: torch.Tensor) -> torch.Tensor:
    """``weights`` (B or 1, K, L or 1, D or 1) times ``reps`` (B, K, L, D), summed over the K inputs -> (B, L, D)."""
    return (weights * reps).sum(dim=1)
