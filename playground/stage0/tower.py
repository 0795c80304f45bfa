"""Stage 0, vision: a tiny SigLIP pre-trained with SigLIP's sigmoid loss on generated image-caption pairs.

    python -m playground.stage0.tower OUT [--seed 0] [--steps 600]

transformers' ``SiglipModel`` pairs the tiny vision tower with a tiny text tower and computes the loss itself
(``return_loss=True``). Images are seen as the LLaVA pipeline shows them to the tower: padded to a square with the
processor's mean colour (``pad``) or squashed (anyres' base view), half each. The text tower reads a word-level
vocabulary of the generated captions (SigLIP's own SentencePiece model is not available offline; its text tower is
discarded anyway). Only the vision tower is saved, as a ``SiglipVisionModel`` that LLaVA loads like any SigLIP.

Probes on held-out pairs, before and after training: zero-shot image-to-caption retrieval (top-1 among all held-out
captions); per tower layer, a linear probe for each kind of question on the flattened patches (what the managers can
aggregate), one on the mean over patches (what a reader of the tokens' content gets), and one for a token's own
index among the patches (whether a token says where it lies).
"""

from __future__ import annotations

import math
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import SiglipConfig, SiglipModel, SiglipVisionModel

from llava.model.anyres import expand2square
from llava.processing import SigLipImageProcessor
from playground.images import render
from playground.questions import WHERE, answer, caption, scene_for
from playground.stage0 import finished, publish_run, read_report, stage_parser, staging
from playground.stage0.probes import linear_probe, majority, optimise, retrieval_accuracy, token_place

PROBE_KINDS = ("background", "colour", "shape", "count", "position")
POOLED_KINDS = ("colour", "position")
_WORD = re.compile(r'"[^"]*"|[a-z]+|\d+|[.,;]')


@dataclass(frozen=True, kw_only=True, slots=True)
class TowerConfig:
    seed: int = 0
    image_size: int = 56
    patch_size: int = 14
    hidden_size: int = 32
    layers: int = 5
    heads: int = 2
    text_layers: int = 2
    max_words: int = 40
    train_pairs: int = 2000
    held_out: int = 256
    steps: int = 600
    batch: int = 64
    lr: float = 1e-3
    warmup: int = 30
    probe_steps: int = 200  # full-batch Adam steps of each linear probe


def tower_caption(scene) -> str:
    """The caption plus where the largest shape lies (the captions of stage 1 leave position out)."""
    return f"{caption(scene)} The largest shape is {WHERE[scene.position]}."


def words(text: str) -> list[str]:
    """Lower-case words and punctuation; a quoted token is spelled out, so the text tower can read it."""
    out = []
    for token in _WORD.findall(text.lower()):
        out += ['"', *token[1:-1], '"'] if token.startswith('"') else [token]
    return out


class Vocabulary:
    """Word ids: 0 pads (SigLIP pads every caption to the same length and pools the last position), 1 is unknown."""

    def __init__(self, texts: list[str]) -> None:
        self.ids = {w: i + 2 for i, w in enumerate(sorted({w for t in texts for w in words(t)}))}

    def __len__(self) -> int:
        return len(self.ids) + 2

    def encode(self, texts: list[str], length: int) -> torch.Tensor:
        rows = [[self.ids.get(w, 1) for w in words(t)][:length] for t in texts]
        return torch.tensor([row + [0] * (length - len(row)) for row in rows])  # (B, length)


@dataclass(frozen=True, slots=True)
class Pairs:
    pixels: torch.Tensor  # (N, 3, S, S)
    texts: list[str]
    labels: dict[str, list[str]]  # kind -> answer per pair


def make_pairs(rng: random.Random, count: int, processor: SigLipImageProcessor) -> Pairs:
    pixels, texts, labels = [], [], {kind: [] for kind in PROBE_KINDS}
    for _ in range(count):
        scene = scene_for(rng, set())
        image = render(scene)
        view = expand2square(image, processor.background_color) if rng.random() < 0.5 else image
        pixels.append(processor.to_tensor(view))
        texts.append(tower_caption(scene))
        for kind in PROBE_KINDS:
            labels[kind].append(answer(scene, kind))
    return Pairs(torch.stack(pixels), texts, labels)


def siglip_config(cfg: TowerConfig, vocab_size: int) -> SiglipConfig:
    width = cfg.hidden_size
    shared = {"hidden_size": width, "intermediate_size": 2 * width, "num_attention_heads": cfg.heads}
    vision = dict(shared, num_hidden_layers=cfg.layers, image_size=cfg.image_size, patch_size=cfg.patch_size)
    text = dict(shared, num_hidden_layers=cfg.text_layers, vocab_size=vocab_size, max_position_embeddings=cfg.max_words)
    return SiglipConfig(text_config=dict(text, pad_token_id=0, bos_token_id=1, eos_token_id=1), vision_config=vision)


@torch.no_grad()
def probe(model: SiglipModel, vocab: Vocabulary, train: Pairs, test: Pairs, cfg: TowerConfig) -> dict:
    """Retrieval on ``test``; per layer, a linear probe fitted on ``train`` and scored on ``test``."""
    model.eval()
    ids = vocab.encode(test.texts, cfg.max_words)
    out = model(input_ids=ids, pixel_values=test.pixels)
    retrieval = retrieval_accuracy(out.image_embeds, out.text_embeds, test.texts)

    def hidden(pairs: Pairs) -> tuple[torch.Tensor, ...]:
        return model.vision_model(pixel_values=pairs.pixels, output_hidden_states=True).hidden_states[1:]  # (N, T, D)

    def per_layer(kind: str, view) -> list[float]:
        return [
            linear_probe(view(a), train.labels[kind], view(b), test.labels[kind], steps=cfg.probe_steps)
            for a, b in zip(fit, score, strict=True)
        ]

    fit, score = hidden(train), hidden(test)  # layer k = 1..L
    # Flattened, a probe knows each patch's place (where things are); mean-pooled it must read a property from what
    # the tokens say, as a reader that attends to them does (POOLED_KINDS: colour survives pooling, position not).
    layers = {kind: per_layer(kind, lambda h: h.flatten(1)) for kind in PROBE_KINDS}
    pooled = {kind: per_layer(kind, lambda h: h.mean(dim=1)) for kind in POOLED_KINDS}
    place = [token_place(a, b, steps=cfg.probe_steps) for a, b in zip(fit, score, strict=True)]
    model.train()
    chance = {kind: majority(test.labels[kind]) for kind in PROBE_KINDS}
    return {"retrieval": retrieval, "probe": layers, "pooled": pooled, "place": place, "chance": chance}


def pretrain_tower(out: Path, cfg: TowerConfig = TowerConfig()) -> dict:
    """Train, probe and save the vision tower into ``out`` (reused when it is already complete)."""
    if finished(out):
        return read_report(out)
    started = time.time()
    processor = SigLipImageProcessor(size=(cfg.image_size, cfg.image_size))
    train = make_pairs(random.Random(f"playground:{cfg.seed}:stage0:tower"), cfg.train_pairs, processor)
    test = make_pairs(random.Random(f"playground:{cfg.seed}:stage0:tower:held_out"), cfg.held_out, processor)
    vocab = Vocabulary(train.texts)
    torch.manual_seed(cfg.seed)
    model = SiglipModel(siglip_config(cfg, len(vocab)))
    with torch.no_grad():
        # The SigLIP paper's initialisation (t' = log 10, b = -10). transformers starts both at 0, i.e. a temperature
        # of 1, which Adam moves by ~lr a step: 600 steps learned nothing but the bias in a trial.
        model.logit_scale.fill_(math.log(10.0))
        model.logit_bias.fill_(-10.0)
    before = probe(model, vocab, train, test, cfg)
    ids = vocab.encode(train.texts, cfg.max_words)
    order = torch.Generator().manual_seed(cfg.seed)

    def step_loss() -> torch.Tensor:
        batch = torch.randperm(len(train.texts), generator=order)[: cfg.batch]
        return model(input_ids=ids[batch], pixel_values=train.pixels[batch], return_loss=True).loss

    losses = optimise(model, step_loss, lr=cfg.lr, weight_decay=1e-4, warmup=cfg.warmup, steps=cfg.steps,
                      desc="stage 0: SigLIP tower")  # fmt: skip
    after = probe(model, vocab, train, test, cfg)
    tmp = staging(out)
    tower = SiglipVisionModel(model.config.vision_config)
    tower.load_state_dict(model.vision_model.state_dict())  # the same module tree in transformers 5
    tower.save_pretrained(tmp)
    return publish_run(tmp, out, cfg, started, losses=losses, before=before, after=after)


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__, TowerConfig().steps)
    parser.add_argument("--pairs", type=int, default=TowerConfig().train_pairs, help="training image-caption pairs")
    args = parser.parse_args(argv)
    report = pretrain_tower(args.out, TowerConfig(seed=args.seed, steps=args.steps, train_pairs=args.pairs))
    after = report["after"]
    print(
        f"tower: loss {report['losses'][0]:.3f} -> {report['losses'][-1]:.3f}; retrieval top-1 "
        f"{after['retrieval']['accuracy']:.3f} (chance {after['retrieval']['chance']:.3f}); saved to {args.out}"
    )


if __name__ == "__main__":
    main()
