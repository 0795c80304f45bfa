"""Padding-free batches: the samples of a micro-batch concatenated into one row (``--packing True``).

:class:`PackedBatchSampler` plans the rows under a token budget counted in *expanded* tokens (image tokens after
anyres, ``LazySupervisedDataset.expanded_length``), so memory is bounded by the budget, not by the luckiest batch;
:class:`PackedCollator` concatenates a row's samples.

The row carries ``segment_ids`` (1, 2, ... per sample): the model restarts positions in every sample and attends
segment by segment (``llava.model.segments``), so a packed row computes what the same samples compute padded in a
batch. The first label of every sample is ignored: in a row, the previous sample's last token would otherwise
learn to predict it (a padded sample's first token is never predicted). The loss is normalised by the number of
supervised tokens of the whole optimizer step (transformers' ``num_items_in_batch``), padded or packed alike, so
a packed step and the same samples padded give the same loss and gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Sampler

from llava.constants import IGNORE_INDEX
from llava.data.collator import images_and_report
from llava.data.sampler import grouped_indices


@dataclass(frozen=True, kw_only=True, slots=True)
class PackedCollator:
    def __call__(self, items: list[dict]) -> dict:
        labels = []
        for item in items:
            row = item["labels"].clone()
            row[0] = IGNORE_INDEX
            labels.append(row)
        segments = [torch.full((len(item["input_ids"]),), i + 1, dtype=torch.long) for i, item in enumerate(items)]
        input_ids = torch.cat([item["input_ids"] for item in items])[None]  # (1, S)
        return {
            "input_ids": input_ids,
            "labels": torch.cat(labels)[None],
            "attention_mask": torch.ones_like(input_ids),
            "segment_ids": torch.cat(segments)[None],
            **images_and_report(items),
        }


class PackedBatchSampler(Sampler[list[int]]):
    """One epoch's rows: the epoch's sample order cut greedily into rows of at most ``max_tokens`` expanded tokens.

    The order is a seeded permutation (``seed + epoch``), or, with ``grouped``, the modality- and length-grouped
    order of ``llava.data.sampler`` with rows cut where the modality changes (a row is all-image or all-text, as a
    megabatch is). Samples of length 0 (found bad while planning) are left out. The plan depends on the seed, the
    epoch and the lengths only, so a resumed run replays it (the Trainer skips the rows already trained)."""

    def __init__(self, lengths: list[int], *, max_tokens: int, seed: int, grouped: bool = False,
                 text_only: list[bool] | None = None, world_size: int = 1) -> None:  # fmt: skip
        too_long = [i for i, n in enumerate(lengths) if n > max_tokens]
        if too_long:
            raise ValueError(
                f"--packing_max_tokens={max_tokens} is shorter than {len(too_long)} samples (e.g. #{too_long[0]}: "
                f"{lengths[too_long[0]]} tokens); raise it to at least --model_max_length"
            )
        self.lengths, self.max_tokens, self.seed, self.grouped = list(lengths), max_tokens, seed, grouped
        self.text_only = list(text_only) if text_only is not None else [False] * len(lengths)
        self.world_size = world_size
        self.epoch = 0
        self._plan: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self, generator: torch.Generator) -> list[int]:
        if not self.grouped:
            return torch.randperm(len(self.lengths), generator=generator).tolist()
        signed = [-max(n, 1) if text else max(n, 1) for n, text in zip(self.lengths, self.text_only, strict=True)]
        return grouped_indices(signed, batch_size=1, world_size=self.world_size, generator=generator,
                               group_by_modality=True)  # fmt: skip

    def plan(self) -> list[list[int]]:
        if self._plan is not None and self._plan[0] == self.epoch:
            return self._plan[1]
        rows: list[list[int]] = []
        row: list[int] = []
        used = 0
        for index in self._order(torch.Generator().manual_seed(self.seed + self.epoch)):
            length = self.lengths[index]
            if length == 0:
                continue
            if row and (used + length > self.max_tokens or self.text_only[index] != self.text_only[row[0]]):
                rows.append(row)
                row, used = [], 0
            row.append(index)
            used += length
        if row:
            rows.append(row)
        self._plan = (self.epoch, rows)
        return rows

    def __iter__(self):
        return iter(self.plan())

    def __len__(self) -> int:
        return len(self.plan())
