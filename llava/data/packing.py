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
from typing import Literal, get_args

import torch
from torch.utils.data import Sampler

from llava.constants import IGNORE_INDEX
from llava.data.collator import images_and_report
from llava.data.sampler import grouped_indices

# How a row planner fills rows: ``greedy`` cuts the sample order where the next sample no longer fits;
# ``first_fit`` puts each sample into the first of a few open rows with room (see PackedBatchSampler).
PackingStrategy = Literal["greedy", "first_fit"]
PACKING_STRATEGIES: tuple[PackingStrategy, ...] = get_args(PackingStrategy)

# Open rows the first-fit planner keeps at once: enough to fill 96-99% of 16K-32K-token rows on LLaVA-OV's length
# mix (greedy: 83-92%; docs/performance.md), few enough that a sample stays within a few rows of its place in the order.
FIRST_FIT_OPEN_ROWS = 8


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
    """One epoch's rows of at most ``max_tokens`` expanded tokens, planned from the epoch's sample order.

    The order is a seeded permutation (``seed + epoch``), or, with ``grouped``, the modality- and length-grouped
    order of ``llava.data.sampler``; with ``grouped`` a row is all-image or all-text, as a megabatch is. Rows are
    filled by ``strategy``:

    - ``greedy`` cuts the order where the next sample would overflow the row (with ``grouped``, each modality's
      samples in their order);
    - ``first_fit`` (default) keeps :data:`FIRST_FIT_OPEN_ROWS` rows open (per modality with ``grouped``) and puts
      each sample into the first one with room; when a new row would exceed that number, the oldest is emitted.

    Samples of length 0 (found bad while planning) are left out. The plan depends on the seed, the epoch and the
    lengths only, so a resumed run replays it (the Trainer skips the rows already trained)."""

    def __init__(self, lengths: list[int], *, max_tokens: int, seed: int, grouped: bool = False,
                 text_only: list[bool] | None = None, world_size: int = 1,
                 strategy: PackingStrategy = "first_fit") -> None:  # fmt: skip
        if strategy not in PACKING_STRATEGIES:
            raise ValueError(f"packing strategy {strategy!r}: expected one of {PACKING_STRATEGIES}")
        too_long = [i for i, n in enumerate(lengths) if n > max_tokens]
        if too_long:
            raise ValueError(
                f"--packing_max_tokens={max_tokens} is shorter than {len(too_long)} samples (e.g. #{too_long[0]}: "
                f"{lengths[too_long[0]]} tokens); raise it to at least --model_max_length"
            )
        self.lengths, self.max_tokens, self.seed, self.grouped = list(lengths), max_tokens, seed, grouped
        self.text_only = list(text_only) if text_only is not None else [False] * len(lengths)
        self.world_size, self.strategy = world_size, strategy
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
        order = self._order(torch.Generator().manual_seed(self.seed + self.epoch))
        order = [index for index in order if self.lengths[index] > 0]
        open_rows = 1 if self.strategy == "greedy" else FIRST_FIT_OPEN_ROWS
        # Modality-pure rows only with grouping; otherwise a row mixes images and text freely.
        modality = self.text_only if self.grouped else [False] * len(self.lengths)
        rows = _first_fit(order, self.lengths, modality, self.max_tokens, open_rows)
        self._plan = (self.epoch, rows)
        return rows

    def __iter__(self):
        return iter(self.plan())

    def __len__(self) -> int:
        return len(self.plan())


def _first_fit(order: list[int], lengths: list[int], text_only: list[bool], budget: int, open_rows: int):
    """Rows of ``order`` under ``budget``: each sample goes into the first open row of its modality with room;
    a sample that fits none opens a row, emitting that modality's oldest open row when ``open_rows`` of them are
    open already. ``open_rows=1`` is the greedy cut of each modality's subsequence of the order."""
    rows: list[list[int]] = []
    pending: dict[bool, list[list]] = {False: [], True: []}  # [row, tokens used, position opened], oldest first
    for position, index in enumerate(order):
        length, pool = lengths[index], pending[text_only[index]]
        for entry in pool:
            if entry[1] + length <= budget:
                entry[0].append(index)
                entry[1] += length
                break
        else:
            if len(pool) == open_rows:
                rows.append(pool.pop(0)[0])
            pool.append([[index], length, position])
    leftovers = sorted((entry for pool in pending.values() for entry in pool), key=lambda entry: entry[2])
    return rows + [entry[0] for entry in leftovers]
