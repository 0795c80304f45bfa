"""What the demo measures beyond ``results.json``: per-question VQA scores on the held-out split, the baselines a
model blind to the image reaches, retrieval's chance and ceiling, and the batches the weight figures average over.

* The train entry's VQA ``val`` is also in its train split (the original's protocol, for test-dev on eval.ai), so
  the demo scores its own held-out val (``data/held_out``) with the fine-tuned model, one VQA score per question:
  Wilson intervals per variant and paired bootstrap intervals of the differences need the per-question scores.
  Answers are compared as strings: the held-out tables were built with their own answer vocabulary.
* Baselines from the training answers: the one commonest answer, and the commonest answer per question text (the
  best a model can do from the question alone).
* Retrieval on the Flickr30K-style test split: chance (random scores) and the ceiling of a model that knows each
  scene perfectly but cannot tell apart two images of one scene, which the captions do not (24 kinds of scene).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from managertower import objectives as obj
from managertower.data.answers import VQA_VOCABULARY_FILE
from managertower.data.arrow import Task
from managertower.data.collate import TwoTowerCollator
from managertower.data.datasets import DataConfig, TwoTowerDataset
from managertower.data.transforms import TransformKind
from managertower.model import WEIGHTS_NAME, ManagerTowerModel
from managertower.tasks import HeadConfig, TwoTowerForTask
from playground.managertower.data import vqa_questions
from playground.managertower.settings import TwoTowerDemoConfig
from vlcommon.ledger import DATA_REPORT_KEY

KINDS = {"what colour": "colour", "what shape": "shape", "which side": "side"}  # the writer's three questions


@dataclass(frozen=True, kw_only=True, slots=True)
class Scores:
    """One variant's held-out VQA scores, in the held-out dataset's order (the same for every variant)."""

    scores: list[float]
    kinds: list[str]

    def mean(self, kind: str | None = None) -> float:
        picked = [s for s, k in zip(self.scores, self.kinds, strict=True) if kind in (None, k)]
        return sum(picked) / len(picked)


def kind_of(question: str) -> str:
    return next(kind for start, kind in KINDS.items() if question.startswith(start))


def held_out_dataset(cfg: TwoTowerDemoConfig, tokenizer) -> TwoTowerDataset:
    vocabulary = json.loads((cfg.held_out / VQA_VOCABULARY_FILE).read_text())
    config = DataConfig(
        image_size=cfg.sizes.image,
        transform=TransformKind.ALBEF,
        max_text_len=cfg.sizes.max_text_len,
        seed=cfg.seed,
        answer_classes=len(vocabulary),
    )
    return TwoTowerDataset(cfg.held_out, Task.VQA, "val", tokenizer=tokenizer, config=config)


def batches(dataset: TwoTowerDataset, tokenizer, size: int, limit: int | None = None) -> Iterator[dict]:
    """The dataset in order, collated as for training (``TwoTowerCollator``), at most ``limit`` batches."""
    loader = DataLoader(dataset, batch_size=size, collate_fn=TwoTowerCollator(tokenizer=tokenizer))
    for number, batch in enumerate(loader):
        if limit is not None and number >= limit:
            return
        batch.pop(DATA_REPORT_KEY)
        yield batch


def load_vqa_model(run: Path, classes: int) -> TwoTowerForTask:
    """The fine-tuned model the train entry saved (``model.safetensors``: backbone and heads)."""
    backbone = ManagerTowerModel.from_pretrained(run / "backbone")
    model = TwoTowerForTask(backbone, Task.VQA, HeadConfig(vqa_classes=classes))
    model.load_state_dict(load_file(str(run / WEIGHTS_NAME)), strict=True)
    return model.eval()


@torch.no_grad()
def vqa_scores(cfg: TwoTowerDemoConfig, run: Path, dataset: TwoTowerDataset, tokenizer) -> Scores:
    """The VQA score of the model's answer to every held-out question (its soft score, 0 if no annotator gave it)."""
    trained = json.loads((cfg.arrow / VQA_VOCABULARY_FILE).read_text())
    held = json.loads((cfg.held_out / VQA_VOCABULARY_FILE).read_text())
    model = load_vqa_model(run, len(trained))
    scores, kinds = [], []
    for batch in batches(dataset, tokenizer, cfg.eval_batch):
        out = model.backbone(batch["input_ids"], batch["attention_mask"], batch["pixel_values"])
        answers = model.heads["classifier"](out.cls_feats).argmax(dim=1).tolist()
        for index, answer, labels, values in zip(
            batch["index"].tolist(), answers, batch["vqa_labels"], batch["vqa_scores"], strict=True
        ):
            given = {held[label]: value for label, value in zip(labels, values, strict=True)}
            scores.append(given.get(trained[answer], 0.0))
            kinds.append(kind_of(dataset.refs[index].text))
    return Scores(scores=scores, kinds=kinds)


def blind_baselines(cfg: TwoTowerDemoConfig) -> dict[str, Scores]:
    """Held-out scores of answering without the image: the commonest training answer, and the commonest training
    answer of each question text (the best constant answer by total soft score over the training questions)."""
    overall, per_question = Counter(), defaultdict(Counter)
    for text, answers in vqa_questions(cfg.arrow, "train"):
        overall.update(answers)
        per_question[text].update(answers)
    majority = overall.most_common(1)[0][0]
    held = vqa_questions(cfg.held_out, "val")
    kinds = [kind_of(text) for text, _ in held]
    prior = [
        answers.get(per_question[text].most_common(1)[0][0] if text in per_question else majority, 0.0)
        for text, answers in held
    ]
    return {
        f"majority answer ({majority})": Scores(scores=[a.get(majority, 0.0) for _, a in held], kinds=kinds),
        "question-only prior": Scores(scores=prior, kinds=kinds),
    }


def retrieval_bounds(cfg: TwoTowerDemoConfig, tokenizer, draws: int = 20) -> dict[str, float]:
    """R_mean of random scores (chance) and of a scene-perfect model (ceiling) on the retrieval test split, each the
    mean over ``draws`` random tie-breaks; with the numbers of texts and images (the recalls' denominators)."""
    config = DataConfig(image_size=cfg.sizes.image, transform=TransformKind.ALBEF, max_text_len=cfg.sizes.max_text_len)
    dataset = TwoTowerDataset(cfg.arrow, Task.F30K, "test", tokenizer=tokenizer, config=config)
    images = {image: row for row, image in enumerate(dict.fromkeys(dataset.image_ids))}  # evaluate's order
    text_image = torch.tensor([images[image] for image in dataset.image_ids])
    texts = [ref.text for ref in dataset.refs]
    captions = defaultdict(set)
    for text, image in zip(texts, text_image.tolist(), strict=True):
        captions[image].add(text)
    # A caption fits every image whose scene has it among its captions, whichever image it was written for.
    fits = torch.tensor([[text in captions[image] for text in texts] for image in range(len(images))]).float()
    generator = torch.Generator().manual_seed(cfg.seed)
    chance = ceiling = 0.0
    for _ in range(draws):
        chance += obj.recalls(torch.rand(fits.shape, generator=generator), text_image)["r_mean"] / draws
        # One draw per image: it orders the images of one scene, and leaves a row's fitting captions tied.
        order = torch.rand(len(images), 1, generator=generator) / 2
        ceiling += obj.recalls(fits + order, text_image)["r_mean"] / draws
    return {"chance": chance, "ceiling": ceiling, "texts": len(texts), "images": len(images)}


def manager_figures(cfg: TwoTowerDemoConfig, variant: str, dataset: TwoTowerDataset, tokenizer) -> dict:
    """The managers' weights and similarities (``managertower.analysis``; the paper's Figs. 4 and 7 are on VQAv2 val
    after fine-tuning) of a ManagerTower variant's VQA backbone, over the first held-out batches."""
    from managertower.analysis import analyse

    model = ManagerTowerModel.from_pretrained(cfg.run_dir(variant, "vqa") / "backbone")
    out = cfg.report / "analysis" / variant.replace("/", "_")
    return analyse(model, batches(dataset, tokenizer, cfg.eval_batch, cfg.analysis_batches), out)
