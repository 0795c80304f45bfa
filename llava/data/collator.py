"""Batch items of :class:`~llava.data.dataset.LazySupervisedDataset` into model inputs.

Like LLaVA-NeXT's collator: ids padded with the pad id, labels with ``IGNORE_INDEX``; images stay a flat list of
per-image ``(P, 3, S, S)`` tensors (different crop counts cannot stack) with their ``image_sizes`` and
``modalities``. Differences: no pre-expansion truncation (the dataset truncates after image expansion), and the
attention mask comes from the item lengths, not from ``ids != pad_id`` (a real ``<|endoftext|>`` in the text
would otherwise be masked). Skip events and counts ride along in ``data_report`` for the trainer's ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llava.constants import IGNORE_INDEX
from vlcommon.ledger import DATA_REPORT_KEY


@dataclass(frozen=True, kw_only=True, slots=True)
class DataCollatorForSupervisedDataset:
    pad_token_id: int
    padding_side: str = "right"

    def __post_init__(self) -> None:
        if self.padding_side not in ("left", "right"):
            raise ValueError(f"padding_side={self.padding_side!r} must be 'left' or 'right'")

    def __call__(self, items: list[dict]) -> dict:
        longest = max(len(item["input_ids"]) for item in items)
        batch = len(items)
        input_ids = torch.full((batch, longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((batch, longest), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((batch, longest), dtype=torch.long)
        for row, item in enumerate(items):
            length = len(item["input_ids"])
            span = slice(longest - length, longest) if self.padding_side == "left" else slice(0, length)
            input_ids[row, span] = item["input_ids"]
            labels[row, span] = item["labels"]
            attention_mask[row, span] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask, **images_and_report(items)}


def images_and_report(items: list[dict]) -> dict:
    """The batch's images in sample order (a flat list of per-image crop tensors) and its data report."""
    return {
        "images": [crops for item in items for crops in item["images"]],
        "image_sizes": [size for item in items for size in item["image_sizes"]],
        "modalities": [modality for item in items for modality in item["modalities"]],
        DATA_REPORT_KEY: {
            "seen": len(items),  # records drawn: a bad one's stand-in is not a record drawn on its own
            "skipped": [event for item in items for event in item.get("skipped", [])],
            "truncated": sum(bool(item.get("truncated")) for item in items),
        },
    }
