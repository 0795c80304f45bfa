"""The managers' aggregation weights on the unimodal experts (paper Fig. 7 and Figs. 23-25).

Per cross-modal layer l, modality and expert: the normalised weight ``ManagerOutput.weights`` puts on that expert,
averaged over the channels (an N x D weight becomes one number per expert) and then over every valid token (text:
``attention_mask``; image: all tokens) of every sample of the pass. The token mean is accumulated as sums and
counts over the whole pass, so a batch weighs by its tokens, not as one batch mean. Static managers (SAM, SAUM and
AAUM's layer-1 SAUM) have input-independent weights in eval mode, so their mean is their channel mean.

What is reported is the weight each unimodal expert gets, as the figures show it. The weights on previous
cross-modal outputs are not reported: SAUM's and AAUM's ``W_C`` are not normalised and not over experts, and SAM's
weights on all previous outputs (Eq. 4) are left out too. With SAM's split softmax (the default) the unimodal
weights are a softmax of their own and sum to 1; with ``sam_average_init`` they are the expert share of one
softmax over experts and previous outputs, reported as the model applies them, so they sum to less than 1 (the rest
is on the previous outputs) rather than being renormalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from managertower.analysis.tokens import MODALITIES, valid_tokens
from managertower.managers import AdaptiveManager, ManagerOutput


@dataclass(frozen=True, slots=True)
class WeightRecord:
    layer: int  # 1-based cross-modal layer of the manager
    modality: str  # "text" or "image"
    manager: str  # that layer's manager: "sam", "saum" or "aaum" (an AAUM model's layer 1 is "saum")
    expert: int  # 1-based unimodal layer, the paper's numbering (7..12 for the top 6 of 12)
    weight: float  # the mean normalised weight on that expert
    tokens: int  # how many tokens the mean is over


def manager_kinds(model: nn.Module) -> tuple[str, ...]:
    """Per cross-modal layer, the kind of its managers (the text and image managers of a layer are of one kind)."""
    return tuple("aaum" if isinstance(m, AdaptiveManager) else str(m.kind) for m in model.text_inputs.managers)


def token_sums(weights: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``weights`` (B or 1, N, L or 1, D or 1) and ``mask`` (B, L) -> the sum over masked tokens of the channel-mean
    weights (N,) and the number of masked tokens, both float64."""
    per_token = weights.to(torch.float64).mean(dim=-1)  # (B or 1, N, L or 1)
    batch, length = mask.shape
    per_token = per_token.expand(batch, -1, length)  # (B, N, L): a static weight is every token's
    return (per_token * mask[:, None]).sum(dim=(0, 2)), mask.sum()


class WeightAccumulator:
    """Sums and token counts per (layer, modality) over the batches of one pass; :meth:`records` divides once."""

    def __init__(self, experts: dict[str, tuple[int, ...]], kinds: tuple[str, ...]) -> None:
        assert set(experts) == set(MODALITIES), experts
        self.experts, self.kinds = experts, kinds
        self.sums: dict[tuple[int, str], torch.Tensor] = {}  # (N,) float64
        self.counts: dict[tuple[int, str], float] = {}

    @classmethod
    def for_model(cls, model: nn.Module) -> WeightAccumulator:
        """Expert labels from the model's ``text_layers`` / ``image_layers`` (1-based, the paper's)."""
        return cls({"text": tuple(model.text_layers), "image": tuple(model.image_layers)}, manager_kinds(model))

    def update(self, managers: tuple[tuple[ManagerOutput, ManagerOutput], ...], attention_mask: torch.Tensor) -> None:
        """One batch: ``managers`` from ``forward(..., output_managers=True)``, its text ``attention_mask`` (B, Lt)."""
        assert len(managers) == len(self.kinds), (len(managers), len(self.kinds))
        for layer, pair in enumerate(managers, start=1):
            for modality, output in zip(MODALITIES, pair, strict=True):
                assert output.weights.shape[1] == len(self.experts[modality]), output.weights.shape
                total, count = token_sums(output.weights, valid_tokens(modality, output, attention_mask))
                key = (layer, modality)
                self.sums[key] = total.cpu() + self.sums.get(key, 0.0)
                self.counts[key] = self.counts.get(key, 0.0) + count.item()

    def records(self) -> list[WeightRecord]:
        """One record per layer, modality and expert; layers ascending, text before image, experts ascending."""
        out = []
        for layer, kind in enumerate(self.kinds, start=1):
            for modality in MODALITIES:
                key = (layer, modality)
                if key not in self.sums:
                    continue
                count = self.counts[key]
                assert count > 0, key
                means = (self.sums[key] / count).tolist()
                out.extend(WeightRecord(layer, modality, kind, expert, weight, int(count))
                           for expert, weight in zip(self.experts[modality], means, strict=True))  # fmt: skip
        return out
