"""Padding-free batches: the samples of a micro-batch concatenated into one row (``--packing True``).

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

from llava.constants import IGNORE_INDEX
from llava.data.collator import images_and_report


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
