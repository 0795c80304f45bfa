"""One dataset over a task's Arrow tables (``managertower.data.arrow``): the samples the original's datamodules
yield, with the bad ones skipped, named and counted.

* A sample is one distinct caption (captions, VG), one question (VQA, NLVR2) or one hypothesis (SNLI-VE). Records
  that can never be used (an empty caption, a question with no answer in the vocabulary, an unknown label) are left
  out of the index when the tables are read and listed in :attr:`TwoTowerDataset.issues` (the trainer counts them
  once). Images are decoded lazily: a missing or corrupt one raises :class:`BadSample` when its sample is built,
  and ``__getitem__`` returns a good stand-in instead with the skip listed in the item, as on the LLaVA side.
* Text is tokenised padded to ``max_text_len`` with truncation, with the special-token mask the MLM collator needs.
* Augmentation, the false image and the MLM masking of a sample draw from a generator seeded by (seed, epoch,
  index), so a resumed run sees the same pixels and masks whatever the dataloader prefetched before the save.
  The trainer calls :meth:`TwoTowerDataset.set_epoch` at the start of every epoch (``EpochCallback``: accelerate's
  dataloader does not reach the dataset on several processes).
* Pre-training ITM draws one *false image* per sample from the whole dataset (the original's
  ``draw_false_image=1``); the task decides which half of the batch uses it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from managertower.data.answers import VQAV2_ANSWERS
from managertower.data.arrow import NLVR2_LABELS, SNLI_LABEL_IDS, TableKind, Task, read_table, split_files
from managertower.data.transforms import TransformKind, build_transform
from vlcommon.enums import member
from vlcommon.images import decode_image
from vlcommon.ledger import BadSample, SkipEvent, item_or_stand_in

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class DataConfig:
    image_size: int
    transform: TransformKind
    max_text_len: int = 50
    seed: int = 0
    draw_false_image: bool = False  # pre-training ITM
    answer_classes: int = VQAV2_ANSWERS

    def __post_init__(self) -> None:
        if self.image_size < 1 or self.max_text_len < 3:
            raise ValueError(f"DataConfig: image_size={self.image_size} >= 1, max_text_len={self.max_text_len} >= 3")
        object.__setattr__(self, "transform", member(TransformKind, self.transform, "DataConfig: transform"))


@dataclass(frozen=True, slots=True)
class _Ref:
    table: int  # which file
    row: int  # which image row
    item: int  # which caption / question / hypothesis of the row
    text: str


class TwoTowerDataset(Dataset):
    def __init__(self, root: str | Path, task: Task, split: str, *, tokenizer, config: DataConfig) -> None:
        self.task, self.split, self.config, self.tokenizer = Task(task), split, config, tokenizer
        self.files = split_files(root, self.task, split)
        self.tables = [read_table(path, kind) for kind, path in self.files]
        self.issues: list[SkipEvent] = []
        self.refs: list[_Ref] = []
        for number, ((kind, path), table) in enumerate(zip(self.files, self.tables, strict=True)):
            self._index(number, kind, path, table)
        if not self.refs:
            raise ValueError(f"{self.task} {split}: no usable sample in {[str(p) for _, p in self.files]}")
        self.image_offsets = np.cumsum([0] + [t.num_rows for t in self.tables])
        self.epoch = 0
        self._known_bad: set[int] = set()

    # -- the index ---------------------------------------------------------------------------------------------

    def _index(self, number: int, kind: TableKind, path: Path, table) -> None:
        texts = _texts(kind, table)
        extra = _row_checks(kind, table, self.config.answer_classes)
        for row, items in enumerate(texts):
            seen: set[str] = set()
            for item, text in enumerate(items):
                sample_id = f"{path.name}:{row}:{item}"
                problem = extra(row, item) if extra else None
                if problem is None and not str(text or "").strip():
                    problem = ("empty_text", f"{TEXT_FIELDS[kind]}: empty text")
                if problem is not None:
                    self.issues.append(SkipEvent(sample_id, str(path), problem[0], problem[1]))
                    continue
                # Captions datasets drop an image's duplicate captions (the original's ``set`` per image).
                if kind in (TableKind.CAPTIONS, TableKind.VG):
                    if text in seen:
                        continue
                    seen.add(text)
                self.refs.append(_Ref(number, row, item, str(text)))

    def __len__(self) -> int:
        return len(self.refs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def image_ids(self) -> list[int]:
        """Per sample, a number shared by the samples of one image (ITC's positives)."""
        return [int(self.image_offsets[r.table]) + r.row for r in self.refs]

    # -- items -------------------------------------------------------------------------------------------------

    def __getitem__(self, index: int) -> dict:
        """Sample ``index``, or a seeded good stand-in with the skip listed (``vlcommon.ledger``)."""
        return item_or_stand_in(index, len(self), self.build, self._known_bad, self._event, logger)

    def _event(self, index: int, bad: BadSample) -> SkipEvent:
        ref = self.refs[index]
        path = self.files[ref.table][1]
        return SkipEvent(f"{path.name}:{ref.row}:{ref.item}", str(path), bad.kind, str(bad))

    def build(self, index: int) -> dict:
        """Sample ``index`` as tensors; raises :class:`BadSample` when an image cannot be used."""
        ref = self.refs[index]
        kind, table = self.files[ref.table][0], self.tables[ref.table]
        rng = np.random.default_rng([self.config.seed, self.epoch, index])
        text = self._text(ref)
        item = {
            **text,
            "image_index": int(self.image_offsets[ref.table]) + ref.row,
            "index": index,
            "mask_seed": int(rng.integers(2**62)),
        }  # the MLM collator's draw for this sample
        if kind is TableKind.NLVR2:
            item["pixel_values_0"] = self._image(table, "image_0", ref.row, rng)
            item["pixel_values_1"] = self._image(table, "image_1", ref.row, rng)
        else:
            item["pixel_values"] = self._image(table, "image", ref.row, rng)
        item.update(_labels(kind, table, ref))
        if self.config.draw_false_image:
            item["false_pixel_values"] = self._false_image(ref, rng)
        return item

    def _text(self, ref: _Ref) -> dict:
        encoded = self.tokenizer(
            ref.text,
            padding="max_length",
            truncation=True,
            max_length=self.config.max_text_len,
            return_special_tokens_mask=True,
        )
        return {k: torch.tensor(encoded[k]) for k in ("input_ids", "attention_mask", "special_tokens_mask")}

    def _image(self, table, column: str, row: int, rng: np.random.Generator) -> torch.Tensor:
        image = decode_image(table.column(column)[row].as_py(), field=column)
        return build_transform(self.config.transform, self.config.image_size, generator=rng)(image)

    def _false_image(self, ref: _Ref, rng: np.random.Generator) -> torch.Tensor:
        """An image of another sample, drawn uniformly from the whole dataset (bad ones are redrawn)."""
        for _ in range(16):
            other = self.refs[int(rng.integers(len(self.refs)))]
            if (other.table, other.row) == (ref.table, ref.row) and self.image_offsets[-1] > 1:
                continue  # the sample's own image is not a false one (unless it is the only image)
            column = "image_0" if self.files[other.table][0] is TableKind.NLVR2 else "image"
            try:
                return self._image(self.tables[other.table], column, other.row, rng)
            except BadSample:
                continue
        raise BadSample("false_image", "image: no usable false image in 16 draws")


# The text of each table kind, by the name its sources give it, to name it in a skip.
TEXT_FIELDS: dict[TableKind, str] = {
    TableKind.CAPTIONS: "caption",
    TableKind.VG: "phrase",
    TableKind.VQA: "question",
    TableKind.NLVR2: "sentence",
    TableKind.SNLI_VE: "hypothesis",
}


def _texts(kind: TableKind, table) -> list[list]:
    if kind in (TableKind.CAPTIONS, TableKind.VG):
        return table.column("caption").to_pylist()
    if kind in (TableKind.VQA, TableKind.NLVR2):
        return table.column("questions").to_pylist()
    # SNLI-VE: the text is the hypothesis alone (the premise is the image).
    pairs = table.column("sentences").to_pylist()
    return [[pair[1] if pair and len(pair) == 2 else "" for pair in row] for row in pairs]


def _row_checks(kind: TableKind, table, classes: int):
    """A check per (row, item) for the labels of labelled kinds: None, or (kind, reason) for a record to leave out."""
    if kind is TableKind.VQA:
        labels = table.column("answer_labels").to_pylist()
        splits = table.column("split").to_pylist()

        def vqa(row: int, item: int):
            ids = labels[row][item] if labels[row] is not None and item < len(labels[row]) else None
            if splits[row] == "test":
                return None  # test questions have no answers
            if not ids:
                return ("unknown_answer", "answer_labels: no answer in the vocabulary")
            if any(not 0 <= i < classes for i in ids):
                return ("unknown_answer", f"answer_labels: {ids} outside 0..{classes - 1}")
            return None

        return vqa
    if kind is TableKind.NLVR2:
        answers = table.column("answers").to_pylist()
        return lambda row, item: (
            None
            if answers[row][item] in NLVR2_LABELS
            else ("unknown_label", f"answers: {answers[row][item]!r} is not 'True' or 'False'")
        )
    if kind is TableKind.SNLI_VE:
        labels = table.column("labels").to_pylist()
        return lambda row, item: (
            None
            if labels[row][item] in SNLI_LABEL_IDS.values()
            else ("unknown_label", f"labels: {labels[row][item]!r} is not 0, 1 or 2")
        )
    return None


def _labels(kind: TableKind, table, ref: _Ref) -> dict:
    if kind is TableKind.VQA:
        labels = table.column("answer_labels")[ref.row].as_py()
        scores = table.column("answer_scores")[ref.row].as_py()
        return {
            "vqa_labels": labels[ref.item] if labels else [],
            "vqa_scores": scores[ref.item] if scores else [],
            "question_id": table.column("question_id")[ref.row].as_py()[ref.item],
        }
    if kind is TableKind.NLVR2:
        return {"label": NLVR2_LABELS.index(table.column("answers")[ref.row].as_py()[ref.item])}
    if kind is TableKind.SNLI_VE:
        return {"label": int(table.column("labels")[ref.row].as_py()[ref.item])}
    return {}
