"""Batches of :class:`~managertower.data.datasets.TwoTowerDataset` items, with MLM masking for pre-training.

Tensors are stacked (text is already padded to ``max_text_len``); VQA's ragged answer lists stay lists. With
``mlm_probability`` set, transformers' ``DataCollatorForLanguageModeling`` masks a copy of the text (15%, 80% mask
token / 10% random token / 10% kept; special and pad tokens never), as the original did: ``mlm_input_ids`` and
``mlm_labels`` (-100 where unmasked) go beside the unmasked ``input_ids`` that ITM reads. Each sample is masked
with its own generator, seeded by the dataset's ``mask_seed`` (exact resume).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import DataCollatorForLanguageModeling

from vlcommon.ledger import DATA_REPORT_KEY

_STACKED = (
    "input_ids",
    "attention_mask",
    "pixel_values",
    "pixel_values_0",
    "pixel_values_1",
    "false_pixel_values",
    "image_index",
    "label",
    "index",
)
_LISTS = ("vqa_labels", "vqa_scores", "question_id")


@dataclass(kw_only=True)
class TwoTowerCollator:
    tokenizer: object
    mlm_probability: float | None = None
    _mlm: DataCollatorForLanguageModeling | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        if self.mlm_probability is not None:
            if not 0 < self.mlm_probability < 1:
                raise ValueError(f"mlm_probability={self.mlm_probability} must be in (0, 1)")
            if self.tokenizer.mask_token is None:
                raise ValueError("MLM needs a tokenizer with a mask token")
            self._mlm = DataCollatorForLanguageModeling(self.tokenizer, mlm_probability=self.mlm_probability)

    def _mask(self, item: dict) -> tuple[torch.Tensor, torch.Tensor]:
        # One generator per sample, seeded by the dataset (``mask_seed``): the masks do not depend on how many
        # batches the dataloader collated ahead, so a resumed run masks exactly as the uninterrupted one.
        self._mlm.generator = torch.Generator().manual_seed(item["mask_seed"])
        return self._mlm.torch_mask_tokens(item["input_ids"][None].clone(), item["special_tokens_mask"][None])

    def __call__(self, items: list[dict]) -> dict:
        batch: dict = {}
        for key in _STACKED:
            if key in items[0]:
                values = [item[key] for item in items]
                batch[key] = torch.stack(values) if torch.is_tensor(values[0]) else torch.tensor(values)
        for key in _LISTS:
            if key in items[0]:
                batch[key] = [item[key] for item in items]
        if self._mlm is not None:
            masked, labels = zip(*(self._mask(item) for item in items), strict=True)
            batch["mlm_input_ids"], batch["mlm_labels"] = torch.cat(masked), torch.cat(labels)
        batch[DATA_REPORT_KEY] = {
            "seen": len(items),  # records drawn: a bad one's stand-in is not a record drawn on its own
            "skipped": [event for item in items for event in item.get("skipped", [])],
            "truncated": 0,
        }
        return batch
