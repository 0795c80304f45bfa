"""Manager overhead, measured in one process: +Manager / Baseline and +Grid+Manager / +Grid.

For each size and variant pair both models share the same weights (managers randomised, so their work is real)
and the same inputs; repetitions interleave baseline and manager runs so drifts of the machine hit both. Prints the
median ratio (and min-max of per-repetition ratios) of time for a training step (forward + backward) and for
prefill (forward, no grad), and of tokens/s for decoding (``--new-tokens`` single-token steps on the prefill's KV
cache; the prefill itself is untimed there). The paper pays x1.03 (train) and x1.04 (inference); the goal here is
<= x1.02 for training and prefill. Decoding runs no manager (the visual states reach later tokens through the
cache), so its ratio should sit at x1.00.

    python bench/manager_overhead.py [--sizes tiny,medium] [--reps 7] [--new-tokens 8]
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from PIL import Image

from llava.mm_utils import process_images
from llava.model import LlavaQwenForCausalLM
from llava.model.manager_config import expert_layer_preset, inject_layer_preset
from llava.processing import SigLipImageProcessor
from llava.testing.benchmarking import measure_sizes, spread
from llava.testing.tiny import BENCH_SIZES, tiny_config
from llava.train.recipes import final_images
from llava.variants import VARIANTS as PAPER_VARIANTS

SIZES = BENCH_SIZES
# The variants without managers, by how their trained model sees images.
VARIANTS = {v.label: str(final_images(v).aspect_ratio) for v in PAPER_VARIANTS if not v.manager}


def _manager(size: dict) -> dict:
    layers = size["num_hidden_layers"]
    return {
        "type": "saum",
        "expert_layers": list(expert_layer_preset("top_half", size["vision_layers"])),
        "inject_layers": list(inject_layer_preset(layers, count=min(6, layers))),
    }


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
    return {"input_ids": ids, "images": list(pixels), "image_sizes": [image.size]}


def _train_step(model, batch):
    model.train()
    model.zero_grad(set_to_none=True)
    model(**batch, labels=batch["input_ids"].clamp_min(0)).loss.backward()


def _prefill(model, batch):
    model.eval()
    with torch.no_grad():
        model(**batch, logits_to_keep=1)


def _decode(model, batch, new_tokens: int, clock) -> float:
    """Seconds for ``new_tokens`` greedy single-token steps after an untimed prefill."""
    model.eval()
    with torch.no_grad():
        out = model(**batch, use_cache=True, logits_to_keep=1)
        cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        length = cache.get_seq_length()
        start = clock()
        for step in range(new_tokens):
            position = torch.tensor([[length + step]])
            out = model(input_ids=token, past_key_values=cache, position_ids=position, use_cache=True)
            token = out.logits[:, -1:].argmax(-1)
        return clock() - start


def _timed(clock, fn, *args) -> float:
    start = clock()
    fn(*args)
    return clock() - start


def _phases(new_tokens: int, clock) -> dict:
    """phase -> seconds of one run; decode reports its own time (its prefill is not timed)."""
    return {
        "train step": lambda model, batch: _timed(clock, _train_step, model, batch),
        "prefill": lambda model, batch: _timed(clock, _prefill, model, batch),
        "decode tokens/s": lambda model, batch: _decode(model, batch, new_tokens, clock),
    }


def measure(size_name: str, reps: int, new_tokens: int = 8, clock=time.process_time) -> list[tuple]:
    rows = []
    for variant, aspect in VARIANTS.items():
        base, managed = _models(SIZES[size_name], aspect)
        batch = _inputs(base)
        for phase, run in _phases(new_tokens, clock).items():
            run(base, batch), run(managed, batch)  # warm-up
            ratios, base_times = [], []
            for _ in range(reps):
                t_base, t_managed = run(base, batch), run(managed, batch)
                # time ratio for training and prefill, throughput ratio (tokens/s) for decoding
                ratios.append(t_base / t_managed if phase == "decode tokens/s" else t_managed / t_base)
                base_times.append(t_base)
            rows.append(
                (
                    size_name,
                    f"{variant}+Manager / {variant}",
                    phase,
                    statistics.median(base_times) * 1e3,
                    *spread(ratios),
                )
            )
    return rows


def main(argv: list[str] | None = None) -> list[tuple]:
    rows = measure_sizes(argv, __doc__.splitlines()[0], measure, new_tokens=8)
    print(f"{'size':<8} {'ratio':<28} {'phase':<16} {'baseline ms':>11} {'median':>7} {'min-max':>13}")
    for size, label, phase, base_ms, med, lo, hi in rows:
        print(f"{size:<8} {label:<28} {phase:<16} {base_ms:>11.1f} {med:>7.3f} {lo:>6.3f}-{hi:<6.3f}")
    return rows


if __name__ == "__main__":
    main()
