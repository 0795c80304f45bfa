"""The adaptive manager AAUM (paper Eq. 6-7 and Algorithm B-E): per-token weights over the unimodal experts,
generated from the previous cross-modal output (or the cross-modal fused query), for cross-modal layers 2..L_C."""

from __future__ import annotations

import torch
from torch import nn

from managertower.config import Generator, Query, TwoTowerManagerConfig, WeightShape
from managertower.managers.aggregate import Temperature, exploration_noise
from managertower.managers.output import ManagerOutput


class LayerAttention(nn.Module):
    """Single-head scaled dot-product *scores* with query and key projections, no value or output projection and no
    dropout (the original's ``LayerAttention``; the paper's simplified cross-attention)."""

    def __init__(self, query_width: int, key_width: int, hidden: int) -> None:
        super().__init__()
        self.q_proj = nn.Linear(query_width, hidden)
        self.k_proj = nn.Linear(key_width, hidden)
        self.scale = hidden**-0.5

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """(B, Lq, Q), (B, Lk, K) -> raw scores (B, Lq, Lk)."""
        return self.q_proj(query) @ self.k_proj(key).transpose(1, 2) * self.scale


class AdaptiveManager(nn.Module):
    def __init__(self, cfg: TwoTowerManagerConfig, *, hidden: int, eps: float) -> None:
        super().__init__()
        self.cfg, n = cfg, cfg.experts
        self.norms = nn.ModuleList(nn.LayerNorm(hidden, eps=eps) for _ in range(n))
        self.previous_norm = nn.LayerNorm(hidden, eps=eps)
        width = hidden if cfg.weights is WeightShape.CHANNEL else 1
        self.cross_weight = nn.Parameter(torch.ones(1, width))  # W_C, not normalised
        self.temperature = Temperature(cfg.temperature)
        query = hidden
        if cfg.query is Query.FUSED:
            self.other_norm = nn.LayerNorm(hidden, eps=eps)
            self.fusion_attention = LayerAttention(hidden, hidden, hidden)
            query = 2 * hidden  # [CA(C_own, C_other); C_own], as the original concatenates
        if cfg.generator is Generator.LINEAR:
            self.controller = nn.Linear(query, n)  # W_M
        elif cfg.generator is Generator.CROSS_ATTENTION:
            self.expert_attention = LayerAttention(query, hidden, hidden)
        else:
            self.controller = nn.Linear(query + hidden, hidden)

    def fused_query(self, own: torch.Tensor, other: torch.Tensor, other_mask: torch.Tensor | None) -> torch.Tensor:
        """(B, L, D) own and (B, Lo, D) other modality (both LN-ed) -> (B, L, 2D)."""
        scores = self.fusion_attention(own, other)  # (B, L, Lo)
        if other_mask is not None and self.cfg.mask_fused_query:
            scores = scores.masked_fill(~other_mask[:, None, :].bool(), torch.finfo(scores.dtype).min)
        return torch.cat([torch.softmax(scores, dim=-1) @ other, own], dim=-1)

    def forward(
        self,
        unimodal: torch.Tensor,
        previous: list[torch.Tensor],
        *,
        other: torch.Tensor | None = None,
        other_mask: torch.Tensor | None = None,
    ) -> ManagerOutput:
        """``unimodal``: (B, N, L, D); ``previous``: this modality's cross-modal outputs (the last is used);
        ``other``: the other modality's previous output (B, Lo, D), with its padding mask (B, Lo) of 1 = token."""
        n = self.cfg.experts
        reps = torch.stack([norm(unimodal[:, i]) for i, norm in enumerate(self.norms)], dim=1)  # (B, N, L, D)
        own = self.previous_norm(previous[-1])
        query = own
        if self.cfg.query is Query.FUSED:
            assert other is not None, "a fused query needs the other modality's previous output"
            query = self.fused_query(own, self.other_norm(other), other_mask)
        if self.cfg.generator is Generator.LINEAR:
            logits = self.controller(query).transpose(1, 2)[..., None]  # (B, N, L, 1)
        elif self.cfg.generator is Generator.CROSS_ATTENTION:
            logits = self.expert_attention(query, reps[:, :, 0]).transpose(1, 2)[..., None]  # keys: first tokens
        else:
            expanded = query[:, None].expand(-1, n, -1, -1)
            logits = self.controller(torch.cat([expanded, reps], dim=-1))  # (B, N, L, D)
        if self.training and self.cfg.noise:
            logits = logits + exploration_noise(logits, experts=n, per_channel=self.cfg.noise_per_channel,
                                                width=reps.shape[-1])  # fmt: skip
        weights = self.temperature(logits, dim=1)
        return ManagerOutput.of(weights, reps, self.cross_weight[None, :, None, :], own[:, None])
