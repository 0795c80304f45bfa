"""Manager overhead, measured in one process: +Manager / Baseline and +Grid+Manager / +Grid.

For each size and variant pair both models share the same weights (managers randomised, so their work is real)
and the same inputs; repetitions interleave baseline and manager runs so drifts of the machine hit both. Prints the
median ratio (and min-max of per-repetition ratios) for a training step (forward + backward) and for prefill
(forward, no grad). The paper pays x1.03 (train) and x1.04 (inference); the goal here is <= x1.02.

    python bench/manager_overhead.py [--sizes tiny,medium] [--reps 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from PIL import Image

from llava.mm_utils import process_images
from llava.model.manager_config import expert_layer_preset, inject_layer_preset
from llava.processing import SigLipImageProcessor
from llava.testing.tiny import BENCH_SIZES, tiny_config
from llava.model import LlavaQwenForCausalLM

SIZES = BENCH_SIZES
VARIANTS = {"Baseline": "pad", "+Grid": "anyres_max_9"}


def _manager(size: dict) -> dict:
    layers = size["num_hidden_layers"]
    return dict(type="saum", expert_layers=list(expert_layer_preset("top_half", size["vision_layers"])),
                inject_layers=list(inject_layer_preset(layers, count=min(6, layers))))


def _models(size: dict, aspect: str):
    torch.manual_seed(0)
    base = LlavaQwenForCausalLM(tiny_config(image_aspect_ratio=aspect, **size))
    managed = LlavaQwenForCausalLM(tiny_config(image_aspect_ratio=aspect, manager=_manager(size), **size))
    managed.load_state_dict(base.state_dict(), strict=False)
    with torch.no_grad():
        for p in managed.model.managers.parameters():
            p.normal_(0, 0.02)
    return base, managed


def _inputs(model):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8))
    pixels = process_images([image], SigLipImageProcessor(), model.config)
    ids = torch.tensor([[11, 12, -200] + list(range(100, 164))])
    return dict(input_ids=ids, images=list(pixels), image_sizes=[image.size])


def _train_step(model, batch):
    model.train()
    model.zero_grad(set_to_none=True)
    model(**batch, labels=batch["input_ids"].clamp_min(0)).loss.backward()


def _prefill(model, batch):
    model.eval()
    with torch.no_grad():
        model(**batch, logits_to_keep=1)


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def measure(size_name: str, reps: int) -> list[tuple]:
    rows = []
    for variant, aspect in VARIANTS.items():
        base, managed = _models(SIZES[size_name], aspect)
        batch = _inputs(base)
        for phase, fn in (("train step", _train_step), ("prefill", _prefill)):
            fn(base, batch), fn(managed, batch)  # warm-up
            ratios, base_times = [], []
            for _ in range(reps):
                t_base = _timed(fn, base, batch)
                t_managed = _timed(fn, managed, batch)
                ratios.append(t_managed / t_base)
                base_times.append(t_base)
            rows.append((size_name, f"{variant}+Manager / {variant}", phase, statistics.median(base_times) * 1e3,
                         statistics.median(ratios), min(ratios), max(ratios)))
    return rows


def main(argv: list[str] | None = None) -> list[tuple]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,medium")
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args(argv)
    rows = []
    for name in args.sizes.split(","):
        rows += measure(name, args.reps)
    print(f"{'size':<8} {'ratio':<28} {'phase':<11} {'baseline ms':>11} {'median':>7} {'min-max':>13}")
    for size, label, phase, base_ms, med, lo, hi in rows:
        print(f"{size:<8} {label:<28} {phase:<11} {base_ms:>11.1f} {med:>7.3f} {lo:>6.3f}-{hi:<6.3f}")
    return rows


if __name__ == "__main__":
    main()
