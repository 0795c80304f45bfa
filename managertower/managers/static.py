"""Static managers: SAM (paper Eq. 4) and SAUM (Eq. 5), learned weights shared by every token and sample."""

from __future__ import annotations

import torch
from torch import nn

from managertower.config import ManagerKind, TwoTowerManagerConfig, WeightShape
from managertower.managers.aggregate import Temperature, exploration_noise
from managertower.managers.output import ManagerOutput


class StaticManager(nn.Module):
    """The manager of cross-modal layer ``layer`` (1-based) for one modality.

    SAM aggregates the N unimodal experts and *all* previous cross-modal outputs of its modality; SAUM the N experts
    and only the previous output. Every input has its own LayerNorm. The unimodal weights are softmax-normalised
    with a learned temperature. SAUM's weight on the previous output (init 1) is not normalised; SAM's cross-modal
    weights are either one softmax with the unimodal ones (``sam_average_init``: 1/(N+l-1) each, the paper's first
    try) or a softmax of their own with a temperature of its own (1/N and 1/(l-1), the paper's better split).
    """

    def __init__(self, cfg: TwoTowerManagerConfig, *, layer: int, hidden: int, eps: float) -> None:
        super().__init__()
        assert layer >= 1
        kind = ManagerKind.SAUM if cfg.type is ManagerKind.AAUM else cfg.type  # AAUM's layer 1 is a SAUM
        self.kind, self.cfg = kind, cfg
        self.previous = 0 if layer == 1 else (layer - 1 if kind is ManagerKind.SAM else 1)
        self.shared_softmax = kind is ManagerKind.SAM and cfg.sam_average_init and self.previous > 0
        n, width = cfg.experts, hidden if cfg.weights is WeightShape.CHANNEL else 1
        self.norms = nn.ModuleList(nn.LayerNorm(hidden, eps=eps) for _ in range(n + self.previous))
        first = 1 / (n + self.previous) if self.shared_softmax else 1 / n
        self.scores = nn.Parameter(torch.full((n, width), first))  # (N, D or 1)
        self.temperature = Temperature(cfg.temperature)
        split = kind is ManagerKind.SAM and not self.shared_softmax
        # SAM's own softmax over a single previous output (layer 2) is the constant 1: no parameters for it.
        self.constant_cross = split and self.previous == 1
        self.split_softmax = split and self.previous > 1
        if self.previous and not self.constant_cross:
            value = first if self.shared_softmax else 1.0 / self.previous
            self.cross_scores = nn.Parameter(torch.full((self.previous, width), value))  # (P, D or 1)
        if self.split_softmax:
            self.cross_temperature = Temperature(cfg.temperature)

    def forward(self, unimodal: torch.Tensor, previous: list[torch.Tensor], **_unused) -> ManagerOutput:
        """``unimodal``: (B, N, L, D) projected experts; ``previous``: this modality's cross-modal outputs so far,
        each (B, L, D), oldest first (SAM uses all, SAUM the last)."""
        reps = torch.stack([norm(unimodal[:, i]) for i, norm in enumerate(self.norms[: self.cfg.experts])], dim=1)
        scores = self.scores[None, :, None, :]  # (1, N, 1, D or 1)
        if self.training and self.cfg.noise and self.cfg.static_noise:
            noise = exploration_noise(scores.expand(len(reps), -1, reps.shape[2], -1), experts=self.cfg.experts,
                                      per_channel=self.cfg.noise_per_channel, width=reps.shape[-1])  # fmt: skip
            scores = scores + noise
        if not self.previous:
            weights = self.temperature(scores, dim=1)
            return ManagerOutput.of(weights, reps)
        inputs = previous[-self.previous :]
        assert len(inputs) == self.previous, (len(previous), self.previous)
        cross = torch.stack([norm(x) for norm, x in zip(self.norms[self.cfg.experts :], inputs, strict=True)], dim=1)
        if self.constant_cross:
            return ManagerOutput.of(self.temperature(scores, dim=1), reps, torch.ones_like(cross[:1, :, :1, :1]), cross)
        cross_scores = self.cross_scores[None, :, None, :]  # (1, P, 1, D or 1)
        if self.shared_softmax:
            b, _, length, width = (max(a, c) for a, c in zip(scores.shape, cross_scores.shape))  # noise: B and L
            both = torch.cat([scores.expand(b, -1, length, width), cross_scores.expand(b, -1, length, width)], dim=1)
            joint = self.temperature(both, dim=1)
            weights, cross_weights = joint[:, : self.cfg.experts], joint[:, self.cfg.experts :]
        else:
            weights = self.temperature(scores, dim=1)
            cross_weights = self.cross_temperature(cross_scores, dim=1) if self.split_softmax else cross_scores
        return ManagerOutput.of(weights, reps, cross_weights, cross)
