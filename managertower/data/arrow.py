"""The ViLT/METER pyarrow layout the original's datasets read: one Arrow IPC file per split (or shard), JPEG/PNG
bytes in the image columns, one row per image.

| kind | columns | one sample per |
|---|---|---|
| ``captions`` | image, caption (list), image_id, split | distinct caption |
| ``vg`` | image, caption (list of region phrases), width, height, x, y (lists), image_id | distinct phrase |
| ``vqa`` | image, questions, answers, answer_labels, answer_scores, image_id, question_id (lists), split | question |
| ``nlvr2`` | image_0, image_1, questions, answers, identifier | question |
| ``snli_ve`` | image, sentences ([premise, hypothesis] pairs), labels | hypothesis |

File names follow the original's writers (``coco_caption_karpathy_train.arrow``, ``vqav2_val.arrow``, ...);
:data:`SPLITS` says which files make each task's train/val/test split, in one place.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from vlcommon.enums import StrEnum
from vlcommon.ledger import atomic_write


class TableKind(StrEnum):
    CAPTIONS = "captions"
    VG = "vg"
    VQA = "vqa"
    NLVR2 = "nlvr2"
    SNLI_VE = "snli_ve"


COLUMNS: dict[TableKind, tuple[str, ...]] = {
    TableKind.CAPTIONS: ("image", "caption", "image_id", "split"),
    TableKind.VG: ("image", "caption", "width", "height", "x", "y", "image_id"),
    TableKind.VQA: ("image", "questions", "answers", "answer_labels", "answer_scores", "image_id", "question_id",
                    "split"),
    TableKind.NLVR2: ("image_0", "image_1", "questions", "answers", "identifier"),
    TableKind.SNLI_VE: ("image", "sentences", "labels"),
}  # fmt: skip

IMAGE_COLUMNS: dict[TableKind, tuple[str, ...]] = {
    kind: tuple(c for c in columns if c.startswith("image") and c != "image_id") for kind, columns in COLUMNS.items()
}


# Label encodings of the labelled kinds (the original's writers).
NLVR2_LABELS = ("False", "True")  # an answer's label id is its position
SNLI_LABEL_IDS = {"contradiction": 0, "neutral": 1, "entailment": 2}


class Task(StrEnum):
    PRETRAIN = "pretrain"  # MLM + ITM on COCO, VG, SBU, CC
    VQA = "vqa"
    SNLI_VE = "snli_ve"
    NLVR2 = "nlvr2"
    F30K = "f30k"  # ITC + ITM retrieval


# Per task and split: (table kind, file-name pattern) pairs, as the original's datamodules read them. VQA's val is
# also in its train split, as in the original (checkpoints are chosen on seen questions; test-dev goes to
# eval.ai). NLVR2 and SNLI-VE validate on dev and test on test(-P): the original scored both in one pass.
_C, _VG = TableKind.CAPTIONS, TableKind.VG
SPLITS: dict[Task, dict[str, tuple[tuple[TableKind, str], ...]]] = {
    Task.PRETRAIN: {
        "train": (
            (_C, "coco_caption_karpathy_train"),
            (_C, "coco_caption_karpathy_restval"),
            (_VG, "vg"),
            (_C, "sbu_*"),
            (_C, "conceptual_caption_train_*"),
        ),
        "val": ((_C, "coco_caption_karpathy_val"), (_C, "conceptual_caption_val_*")),
    },
    Task.VQA: {
        "train": ((TableKind.VQA, "vqav2_train"), (TableKind.VQA, "vqav2_val")),
        "val": ((TableKind.VQA, "vqav2_val"),),
        "test": ((TableKind.VQA, "vqav2_test"),),
    },
    Task.SNLI_VE: {
        "train": ((TableKind.SNLI_VE, "snli_ve_train"),),
        "val": ((TableKind.SNLI_VE, "snli_ve_dev"),),
        "test": ((TableKind.SNLI_VE, "snli_ve_test"),),
    },
    Task.NLVR2: {
        "train": ((TableKind.NLVR2, "nlvr2_train"),),
        "val": ((TableKind.NLVR2, "nlvr2_dev"),),
        "test": ((TableKind.NLVR2, "nlvr2_test1"),),
    },
    Task.F30K: {
        "train": ((_C, "f30k_caption_karpathy_train"), (_C, "f30k_caption_karpathy_val")),
        "val": ((_C, "f30k_caption_karpathy_test"),),
        "test": ((_C, "f30k_caption_karpathy_test"),),
    },
}


def write_table(path: str | Path, kind: TableKind, columns: dict[str, Sequence]) -> Path:
    """One IPC file with exactly ``COLUMNS[kind]``, written to a temporary name and renamed (atomic)."""
    kind = TableKind(kind)
    expected = COLUMNS[kind]
    if set(columns) != set(expected):
        raise ValueError(f"write_table({kind}): columns {sorted(columns)} must be {sorted(expected)}")
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"write_table({kind}): columns differ in length: {lengths}")
    arrays = {name: pa.array(columns[name], type=pa.binary() if name in IMAGE_COLUMNS[kind] else None)
              for name in expected}  # fmt: skip
    table = pa.table(arrays)

    def write(tmp: str) -> None:
        with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)

    path = Path(path)
    atomic_write(path, write)
    return path


def read_table(path: str | Path, kind: TableKind) -> pa.Table:
    """A memory-mapped table (images stay on disk until a sample reads them), its columns checked."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such arrow file")
    try:
        table = pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()
    except pa.ArrowInvalid as error:
        raise ValueError(f"{path}: not an Arrow IPC file ({error})") from error
    missing = [c for c in COLUMNS[TableKind(kind)] if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: a {kind} table needs columns {missing} (it has {table.column_names})")
    return table


def split_patterns(root: str | Path, task: Task, split: str) -> list[tuple[TableKind, Path]]:
    """The file patterns of ``task``'s ``split`` under ``root`` (no file checked)."""
    return [(kind, Path(root) / f"{pattern}.arrow") for kind, pattern in SPLITS[Task(task)].get(split, ())]


def split_files(root: str | Path, task: Task, split: str) -> list[tuple[TableKind, Path]]:
    """The files of ``task``'s ``split`` under ``root``: every pattern must match at least one file, except for
    pre-training, whose corpora (COCO, VG, SBU, CC) a user may leave out, as long as one is there."""
    task = Task(task)
    if split not in SPLITS[task]:
        raise ValueError(f"task {task} has splits {sorted(SPLITS[task])}, not {split!r}")
    found: list[tuple[TableKind, Path]] = []
    for kind, pattern in SPLITS[task][split]:
        matches = sorted(glob.glob(str(Path(root) / f"{pattern}.arrow")))
        if not matches and task is not Task.PRETRAIN:
            raise ValueError(f"{task} {split}: no {pattern}.arrow in {root}")
        found += [(kind, Path(m)) for m in matches]
    if not found:
        raise ValueError(f"{task} {split}: none of {[p for _, p in SPLITS[task][split]]} .arrow files in {root}")
    return found
