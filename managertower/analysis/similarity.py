"""Similarity of consecutive managers' aggregated representations (paper Fig. 4).

A manager's output is the sum of an aggregated unimodal part (``ManagerOutput.unimodal``, the weighted experts) and
an aggregated cross-modal part (``ManagerOutput.cross``, the weighted previous cross-modal output(s)). For each
modality, each part and each pair of consecutive cross-modal layers (l, l+1), the similarity is

    mean over the valid tokens t of all samples b of  cos(part_l[b, t, :], part_{l+1}[b, t, :]),

the cosine over the D channels between the two managers' vectors at the same token of the same sample; valid
tokens are the text's real tokens (``attention_mask``) and every image token (class token and patches). The mean is
one over all tokens of the pass (sums and counts accumulated per batch), not a mean of batch or sample means.
Layer 1's manager has no cross-modal part, so the cross-modal pairs start at (2, 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import torch
import torch.nn.functional as F

from managertower.analysis.tokens import MODALITIES, valid_tokens
from managertower.managers import ManagerOutput

PARTS = ("unimodal", "cross")


@dataclass(frozen=True, slots=True)
class SimilarityRecord:
    modality: str  # "text" or "image"
    part: str  # "unimodal" or "cross"
    layer: int  # the pair's first cross-modal layer l (1-based)
    next_layer: int  # l + 1
    similarity: float  # the mean cosine similarity over the valid tokens
    tokens: int  # how many tokens the mean is over


def token_cosines(first: torch.Tensor, second: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """(B, L, D) parts of two managers and a (B, L) mask -> the sum of per-token cosines over masked tokens and
    their number (float64)."""
    cosines = F.cosine_similarity(first.to(torch.float64), second.to(torch.float64), dim=-1)  # (B, L)
    return (cosines * mask).sum().item(), mask.sum().item()


class SimilarityAccumulator:
    """Sums of cosines and token counts per (modality, part, l) over the batches of one pass."""

    def __init__(self) -> None:
        self.sums: dict[tuple[str, str, int], float] = {}
        self.counts: dict[tuple[str, str, int], float] = {}

    def update(self, managers: tuple[tuple[ManagerOutput, ManagerOutput], ...], attention_mask: torch.Tensor) -> None:
        """One batch: ``managers`` from ``forward(..., output_managers=True)``, its text ``attention_mask`` (B, Lt)."""
        for index, modality in enumerate(MODALITIES):
            outputs = [pair[index] for pair in managers]
            mask = valid_tokens(modality, outputs[0], attention_mask)
            for layer, (first, second) in enumerate(pairwise(outputs), start=1):
                for part in PARTS:
                    a, b = getattr(first, part), getattr(second, part)
                    if a is None or b is None:  # layer 1 has no cross-modal part
                        assert part == "cross" and layer == 1, (part, layer)
                        continue
                    self._add((modality, part, layer), *token_cosines(a, b, mask))

    def _add(self, key: tuple[str, str, int], total: float, count: float) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + total
        self.counts[key] = self.counts.get(key, 0.0) + count

    def records(self) -> list[SimilarityRecord]:
        """Text before image, unimodal before cross-modal, pairs ascending."""
        order = {name: i for i, name in enumerate(MODALITIES + PARTS)}
        keys = sorted(self.sums, key=lambda k: (order[k[0]], order[k[1]], k[2]))
        out = []
        for modality, part, layer in keys:
            count = self.counts[modality, part, layer]
            assert count > 0, (modality, part, layer)
            mean = self.sums[modality, part, layer] / count
            out.append(SimilarityRecord(modality, part, layer, layer + 1, mean, int(count)))
        return out
