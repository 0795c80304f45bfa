"""What a manager returns: its output and, for the analyses of paper Figs. 4, 7 and 23-25, how it was made."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from managertower.managers.aggregate import weighted_sum


@dataclass(frozen=True, slots=True)
class ManagerOutput:
    hidden: torch.Tensor  # (B, L, D): the input of the cross-modal layer
    weights: torch.Tensor  # (B or 1, N, L or 1, D or 1): the normalised weights on the unimodal experts
    unimodal: torch.Tensor  # (B, L, D): the aggregated unimodal part
    cross: torch.Tensor | None  # (B, L, D): the aggregated cross-modal part (None in layer 1)

    @classmethod
    def of(cls, weights, reps, cross_weights=None, cross_reps=None) -> ManagerOutput:
        unimodal = weighted_sum(weights, reps)
        cross = None if cross_reps is None else weighted_sum(cross_weights, cross_reps)
        return cls(unimodal if cross is None else unimodal + cross, weights, unimodal, cross)
