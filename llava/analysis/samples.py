"""Sample sets for the analysis: a LLaVA-format dataset, or the documents of lmms-eval tasks.

Both give :class:`AnalysisSample` items prepared for one checkpoint (its tokenizer, image processor and aspect-ratio
mode), so every checkpoint sees the same records in the same order, each the way it would see them in training
(LLaVA data: the whole conversation, as formatted for training) or in evaluation (tasks: the generation prompt the
stock lmms-eval wrapper builds). Records without an image are skipped (the statistics are about image tokens),
as are broken records; both are counted and named in ``skipped``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from llava.constants import IMAGE_TOKEN_INDEX

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AnalysisSample:
    sample_id: str
    input_ids: torch.Tensor  # (S,) long, IMAGE_TOKEN_INDEX at each image's place
    images: list[torch.Tensor]  # per image (P, 3, crop, crop)
    image_sizes: list[tuple[int, int]]  # (width, height) per image
    modalities: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Skip:
    sample_id: str
    reason: str


class LlavaDataSamples:
    """The first ``limit`` usable records of a LLaVA JSON/JSONL file or YAML mixture."""

    def __init__(
        self, data_path: str, *, image_folder: str | None = None, template: str = "qwen_1_5", limit: int = 32
    ) -> None:
        from llava.data.dataset import DataConfig
        from llava.data.mixture import load_mixture

        if limit < 1:
            raise ValueError(f"--limit {limit} must be >= 1")
        self.name = str(data_path)
        self.mixture = load_mixture(str(data_path), seed=0)
        self.data = DataConfig(template=template, image_folder=image_folder)
        self.limit = limit
        self.skipped: list[Skip] = []

    def __len__(self) -> int:
        return min(self.limit, len(self.mixture))

    def iterate(self, tokenizer, image_processor, config) -> Iterator[AnalysisSample]:
        from llava.data.dataset import LazySupervisedDataset
        from vlcommon.ledger import BadSample

        dataset = LazySupervisedDataset(
            self.mixture, tokenizer=tokenizer, image_processor=image_processor, model_config=config, data=self.data
        )
        self.skipped = []
        used = 0
        for index in range(len(dataset)):
            if used == self.limit:
                return
            try:
                item = dataset.build(index)
            except BadSample as bad:
                self._skip(_record_id(self.mixture.samples[index], index), str(bad))
                continue
            if "image" not in item["modalities"]:
                self._skip(item["id"], "no image")
                continue
            used += 1
            yield AnalysisSample(
                sample_id=item["id"],
                input_ids=item["input_ids"],
                images=item["images"],
                image_sizes=item["image_sizes"],
                modalities=item["modalities"],
            )

    def _skip(self, sample_id: str, reason: str) -> None:
        logger.warning("analysis: skipping sample %r: %s", sample_id, reason)
        self.skipped.append(Skip(sample_id, reason))


class TaskSamples:
    """The first ``limit`` documents of each lmms-eval task (local tasks through ``include_path``)."""

    def __init__(
        self, tasks: list[str], *, include_path: str | None = None, template: str = "qwen_1_5", limit: int = 32
    ) -> None:
        from lmms_eval.tasks import TaskManager, get_task_dict

        if limit < 1:
            raise ValueError(f"--limit {limit} must be >= 1")
        if not tasks:
            raise ValueError("--tasks: give at least one task name")
        if include_path is not None and not Path(include_path).is_dir():
            raise ValueError(f"--include-path {include_path}: not a directory")
        manager = TaskManager(include_path=include_path) if include_path else TaskManager()
        unknown = [name for name in tasks if name not in manager.all_tasks]
        if unknown:
            raise ValueError(
                f"--tasks: unknown lmms-eval task(s) {unknown}"
                + (f" (searched {include_path} and the built-in tasks)" if include_path else "")
            )
        self.name = ",".join(tasks)
        self.template = template
        self.limit = limit
        self.docs = []  # (task name, doc id, task, doc)
        for name, task in _leaf_tasks(get_task_dict(tasks, manager)):
            for doc_id, doc in enumerate(task.eval_docs):
                if doc_id == limit:
                    break
                self.docs.append((name, doc_id, task, doc))
        self.skipped: list[Skip] = []

    def __len__(self) -> int:
        return len(self.docs)

    def iterate(self, tokenizer, image_processor, config) -> Iterator[AnalysisSample]:
        from llava.eval.prompts import build_prompt
        from llava.eval.requests import image_tensor, load_visuals
        from llava.mm_utils import tokenizer_image_token

        self.skipped = []
        for name, doc_id, task, doc in self.docs:
            sample_id = f"{name}/{doc_id}"
            visuals = load_visuals(task.doc_to_visual, doc, name, doc_id)
            if not visuals:
                logger.warning("analysis: skipping %s: no image", sample_id)
                self.skipped.append(Skip(sample_id, "no image"))
                continue
            prompt = build_prompt(task.doc_to_text(doc), len(visuals), self.template)
            ids = tokenizer_image_token(prompt, tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt")
            pixels, kind = image_tensor(visuals, image_processor, config, torch.float32, "cpu")
            # "packed": one anyres image (P, 3, S, S); "unpacked": one (1, 3, S, S) crop per image.
            images = [pixels] if kind == "packed" else list(pixels.split(1))
            yield AnalysisSample(
                sample_id=sample_id,
                input_ids=ids,
                images=images,
                image_sizes=[v.size for v in visuals],
                modalities=["image"] * len(visuals),
            )


def _leaf_tasks(task_dict: dict):
    """(name, task) for every task of ``get_task_dict``'s answer, groups flattened."""
    for key, value in task_dict.items():
        if isinstance(value, dict):
            yield from _leaf_tasks(value)
        else:
            yield getattr(value.config, "task", str(key)), value


def _record_id(record, index: int) -> str:
    return str(record.get("id", f"#{index}")) if isinstance(record, dict) else f"#{index}"
