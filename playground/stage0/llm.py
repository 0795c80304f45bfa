"""Stage 0, language: a tiny Qwen2 pre-trained as a causal LM on generated text, with the real Qwen2 tokenizer.

    python -m playground.stage0.llm OUT [--seed 0] [--steps 300]

The text is what the curriculum talks about, in words only: detailed descriptions of generated scenes, and chat
turns in the Qwen template whose user turn describes a scene and asks one of the held-out questions, answered with
one word. A model trained on them knows the template and how to answer from its context, as an instruct LLM
does; the multimodal stages then have to put the scene into that context through the image.

Next-token prediction over the whole 151,936-token vocabulary, taken at every answer token and at a random
``keep`` share of the other tokens: the output softmax is nearly all of a step's cost in a 64-wide model (2.4 s a
step with every position, 0.1 s with this, on one core). Probed by held-out perplexity over every token and by how
often the answer's first token is the top prediction, before and after training.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import Qwen2ForCausalLM

from llava.conversation import conv_templates
from llava.testing.synthetic import tiny_llm_config
from llava.testing.tokenizer import build_qwen2_tokenizer
from playground.questions import KINDS, QUESTIONS, SUFFIX, answer, describe, scene_for
from playground.stage0 import finished, publish_run, read_report, stage_parser, staging
from playground.stage0.probes import optimise


@dataclass(frozen=True, kw_only=True, slots=True)
class LLMConfig:
    seed: int = 0
    hidden_size: int = 64
    layers: int = 4
    train_docs: int = 3000
    held_out: int = 100
    steps: int = 300
    batch: int = 8
    lr: float = 2e-3
    warmup: int = 20
    chat_share: float = 0.7  # the rest are plain descriptions
    keep: float = 0.15  # share of the non-answer tokens whose prediction is trained in a step


@dataclass(frozen=True, slots=True)
class Doc:
    text: str
    answer: str | None  # the assistant's one-word answer, for chat documents


def make_docs(rng: random.Random, count: int, chat_share: float) -> list[Doc]:
    docs = []
    for _ in range(count):
        kind = rng.choice(KINDS)
        scene = scene_for(rng, {kind})
        if rng.random() >= chat_share:
            docs.append(Doc(describe(scene), None))
            continue
        conv = conv_templates["qwen_1_5"].copy()
        conv.append_message(conv.roles[0], f"{describe(scene)}\n{QUESTIONS[kind]}{SUFFIX}")
        conv.append_message(conv.roles[1], answer(scene, kind))
        docs.append(Doc(conv.get_prompt(), answer(scene, kind)))
    return docs


def _rows(tokenizer, docs: list[Doc]) -> tuple[list[list[int]], list[int]]:
    """Token ids (with EOS) per document, and where each one's answer starts (its length when it has none)."""
    rows, starts = [], []
    for doc in docs:
        ids = tokenizer(doc.text).input_ids + [tokenizer.eos_token_id]
        start = len(ids)
        if doc.answer is not None:
            start = len(tokenizer(doc.text[: doc.text.rindex(doc.answer + "<|im_end|>")]).input_ids)
        rows.append(ids)
        starts.append(start)
    return rows, starts


def _loss(model: Qwen2ForCausalLM, ids, labels, starts, keep: float, generator: torch.Generator) -> torch.Tensor:
    """Cross-entropy at every answer token and at a random ``keep`` share of the others."""
    hidden = model.model(input_ids=ids).last_hidden_state[:, :-1]  # (B, T-1, D): predicts tokens 1..T-1
    targets = labels[:, 1:]  # (B, T-1)
    answers = torch.arange(1, ids.shape[1])[None, :] >= torch.tensor(starts)[:, None]  # (B, T-1)
    sampled = torch.rand(targets.shape, generator=generator) < keep
    chosen = (targets != -100) & (answers | sampled)
    return torch.nn.functional.cross_entropy(model.lm_head(hidden[chosen]), targets[chosen])  # (M, V) logits


def _batch(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(map(len, rows))
    ids = torch.full((len(rows), length), pad)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
    labels = ids.masked_fill(ids == pad, -100)
    labels[:, 0] = -100
    return ids, labels  # (B, T) each


@torch.no_grad()
def probe(model: Qwen2ForCausalLM, pad: int, rows: list[list[int]], starts: list[int], batch: int) -> dict:
    """Held-out perplexity over every token, and how often a chat answer's first token is the top prediction."""
    model.eval()
    total, count, hits, answers = 0.0, 0, 0, 0
    for first in range(0, len(rows), batch):
        ids, labels = _batch(rows[first : first + batch], pad)
        logits = model(input_ids=ids).logits  # (B, T, V)
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), reduction="sum")
        total, count = total + nll.item(), count + int((labels[:, 1:] != -100).sum())
        for i, start in enumerate(starts[first : first + batch]):
            if start < len(rows[first + i]):  # a chat document: the answer starts at ``start``
                answers += 1
                hits += int(logits[i, start - 1].argmax() == ids[i, start])
    model.train()
    return {"perplexity": math.exp(total / count), "answer_top1": hits / max(1, answers), "answers": answers}


def pretrain_llm(out: Path, cfg: LLMConfig = LLMConfig()) -> dict:
    """Train, probe and save the LLM and its tokenizer into ``out`` (reused when it is already complete)."""
    if finished(out):
        return read_report(out)
    started = time.time()
    tokenizer = build_qwen2_tokenizer()
    train = make_docs(random.Random(f"playground:{cfg.seed}:stage0:llm"), cfg.train_docs, cfg.chat_share)
    test = make_docs(random.Random(f"playground:{cfg.seed}:stage0:llm:held_out"), cfg.held_out, cfg.chat_share)
    train_rows, train_starts = _rows(tokenizer, train)
    test_rows, test_starts = _rows(tokenizer, test)
    torch.manual_seed(cfg.seed)
    model = Qwen2ForCausalLM(tiny_llm_config(hidden_size=cfg.hidden_size, layers=cfg.layers))
    before = probe(model, tokenizer.pad_token_id, test_rows, test_starts, cfg.batch)
    order = torch.Generator().manual_seed(cfg.seed)

    def step_loss() -> torch.Tensor:
        picks = torch.randperm(len(train_rows), generator=order)[: cfg.batch].tolist()
        ids, labels = _batch([train_rows[i] for i in picks], tokenizer.pad_token_id)
        return _loss(model, ids, labels, [train_starts[i] for i in picks], cfg.keep, order)

    losses = optimise(model, step_loss, lr=cfg.lr, weight_decay=0.0, warmup=cfg.warmup, steps=cfg.steps,
                      desc="stage 0: Qwen2 LM")  # fmt: skip
    after = probe(model, tokenizer.pad_token_id, test_rows, test_starts, cfg.batch)
    tmp = staging(out)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    return publish_run(tmp, out, cfg, started, losses=losses, before=before, after=after)


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__, LLMConfig().steps).parse_args(argv)
    report = pretrain_llm(args.out, LLMConfig(seed=args.seed, steps=args.steps))
    before, after = report["before"], report["after"]
    print(
        f"llm: loss {report['losses'][0]:.3f} -> {report['losses'][-1]:.3f}; held-out perplexity "
        f"{before['perplexity']:.0f} -> {after['perplexity']:.2f}; answers top-1 {after['answer_top1']:.2f}; "
        f"saved to {args.out}"
    )


if __name__ == "__main__":
    main()
