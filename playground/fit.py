"""How well a trained checkpoint fits its own stage-2 conversations: teacher-forced answer accuracy per kind.

    python -m playground.fit CHECKPOINT DATA [--limit 200]

A held-out accuracy at chance can mean two things: the model learned the skill on its training images and does not
carry it over (over-fitting, a data problem), or it never learned it at all (under-fitting, an optimisation or a
capacity problem). This tells them apart. Every answer of the first ``limit`` stage-2 conversations is scored with
the gold conversation as its prefix (the answer counts when the argmax at each of its tokens is the gold token,
which is what greedy decoding would give after that prefix), per kind of question, and apart for the first turn
(the one that carries ``<image>``, as in evaluation) and later turns.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from llava.data.collator import DataCollatorForSupervisedDataset
from llava.data.dataset import DataConfig, LazySupervisedDataset
from llava.data.mixture import load_mixture
from llava.model.builder import load_pretrained_model
from playground.questions import QUESTIONS

_KIND_OF = {question: kind for kind, question in QUESTIONS.items()}


@dataclass(kw_only=True)
class Fit:
    right: Counter = field(default_factory=Counter)  # (kind, "first" | "later") -> answers right
    asked: Counter = field(default_factory=Counter)  # (kind, "first" | "later") -> answers scored

    def accuracy(self, kind: str, turn: str | None = None) -> float | None:
        keys = [(kind, turn)] if turn else [(kind, "first"), (kind, "later")]
        asked = sum(self.asked[k] for k in keys)
        return sum(self.right[k] for k in keys) / asked if asked else None

    def to_dict(self) -> dict:
        kinds = sorted({kind for kind, _ in self.asked})
        return {
            kind: {
                "accuracy": self.accuracy(kind),
                "first": self.accuracy(kind, "first"),
                "later": self.accuracy(kind, "later"),
                "answers": self.asked[(kind, "first")] + self.asked[(kind, "later")],
            }
            for kind in kinds
        }


def kinds_of(record: dict) -> list[str]:
    """The kind of each question of a stage-2 record (``<image>`` and the answer-format suffix stripped)."""
    questions = [turn["value"].removeprefix("<image>\n").split("\n")[0] for turn in record["conversations"][0::2]]
    unknown = [q for q in questions if q not in _KIND_OF]
    if unknown:
        raise ValueError(f"record {record.get('id')}: {unknown[0]!r} is not a playground question")
    return [_KIND_OF[q] for q in questions]


def answer_starts(targets: list[int], answers: list[list[int]], sample: str) -> list[int]:
    """Where each answer's tokens begin in ``targets`` (the next-token labels), searched in conversation order."""
    starts, cursor = [], 0
    for answer in answers:
        ends = range(cursor, len(targets) - len(answer) + 1)
        at = next((j for j in ends if targets[j : j + len(answer)] == answer), None)
        if at is None:
            raise ValueError(f"sample {sample}: answer tokens {answer} not found among its labels")
        starts.append(at)
        cursor = at + len(answer)
    return starts


@torch.no_grad()
def measure(checkpoint: Path, data: Path, *, limit: int = 200) -> Fit:
    """Score the first ``limit`` conversations of ``data/stage2.json``, one at a time, through the training pipeline's
    own dataset, collator and splice (answers-only labels, as the demo trains)."""
    tokenizer, model, processor, _ = load_pretrained_model(str(checkpoint), device_map="cpu")
    records = json.loads((data / "stage2.json").read_text())[:limit]
    dataset = LazySupervisedDataset(
        load_mixture(str(data / "stage2.json"), seed=0),
        tokenizer=tokenizer,
        image_processor=processor,
        model_config=model.config,
        data=DataConfig(template="qwen_1_5", image_folder=str(data), unmask_chat_tokens=False),
    )
    collate = DataCollatorForSupervisedDataset(pad_token_id=tokenizer.pad_token_id, padding_side="right")
    fit = Fit()
    for index, record in enumerate(records):
        batch = collate([dataset[index]])
        spliced = model.prepare_multimodal_inputs(
            batch["input_ids"], batch["attention_mask"], batch["labels"], batch["images"],
            batch.get("image_sizes"), batch.get("modalities"), image_aspect_ratio=model.config.image_aspect_ratio,
        )  # fmt: skip
        logits = model(
            inputs_embeds=spliced.inputs_embeds,
            attention_mask=spliced.attention_mask,
            position_ids=spliced.position_ids,
            visual_injection=spliced.visual_injection,
        ).logits[0]  # (L, V)
        predicted, targets = logits[:-1].argmax(-1).tolist(), spliced.labels[0, 1:].tolist()  # position t -> t + 1
        answers = [tokenizer(turn["value"]).input_ids for turn in record["conversations"][1::2]]
        starts = answer_starts(targets, answers, record["id"])
        for turn, (kind, answer, start) in enumerate(zip(kinds_of(record), answers, starts, strict=True)):
            key = (kind, "first" if turn == 0 else "later")
            fit.asked[key] += 1
            fit.right[key] += predicted[start : start + len(answer)] == answer
    return fit


def heading(limit: int) -> str:
    return f"Training-set answer accuracy, % (first turn / later turns), first {limit} conversations"


def table(fits: dict[str, Fit]) -> list[str]:
    """A markdown table: per kind, each checkpoint's training-set accuracy (first turn / later turns)."""
    kinds = [k for k in QUESTIONS if any(fit.asked[(k, t)] for fit in fits.values() for t in ("first", "later"))]

    def cell(fit: Fit, kind: str) -> str:
        parts = [fit.accuracy(kind), fit.accuracy(kind, "first"), fit.accuracy(kind, "later")]
        total, first, later = ("-" if p is None else f"{100 * p:.0f}" for p in parts)
        return f"{total} ({first} / {later})"

    def asked(kind: str) -> str:  # answers scored, per checkpoint (the same data gives one number)
        return "/".join(sorted({str(fit.asked[(kind, "first")] + fit.asked[(kind, "later")]) for fit in fits.values()}))

    lines = ["| Kind | answers | " + " | ".join(fits) + " |", "|---" * (len(fits) + 2) + "|"]
    lines += [
        f"| {kind} | {asked(kind)} | " + " | ".join(cell(fit, kind) for fit in fits.values()) + " |" for kind in kinds
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, nargs="+", help="stage-2 checkpoints (the demo's runs/VARIANT/stage2)")
    parser.add_argument("--data", type=Path, required=True, help="the playground data folder they were trained on")
    parser.add_argument("--limit", type=int, default=200, help="conversations scored (the first ones of stage2.json)")
    args = parser.parse_args(argv)
    fits = {str(path): measure(path, args.data, limit=args.limit) for path in args.checkpoint}
    print(heading(args.limit) + ":")
    print("\n".join(table(fits)))


if __name__ == "__main__":
    main()
