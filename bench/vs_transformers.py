"""Our baseline against transformers' LlavaOnevisionForConditionalGeneration on identical weights, in one process.

Both models come from one random initialisation (ours converted with ``llava.model.convert.to_hf_model``), see the
same image (our preprocessing; transformers' processor is benchmarked in bench/preprocessing.py) and the same
text. Before timing, the outputs are compared: prefill logits (max |diff|) and the greedy tokens of ``generate``
(must be identical, or the timing compares different work). Repetitions interleave the two models; the table gives
medians and min-max of per-repetition ratios: prefill latency ours/theirs (goal <= x1.00) and generated tokens/s
ours/theirs (goal >= x1.00).

    python bench/vs_transformers.py [--sizes tiny,medium] [--reps 7] [--new-tokens 16]
"""

from __future__ import annotations

import statistics
import time
import warnings

import numpy as np
import torch
from PIL import Image

from llava.constants import IMAGE_TOKEN_INDEX
from llava.mm_utils import process_images
from llava.model import LlavaQwenForCausalLM
from llava.model.convert import to_hf_model
from llava.processing import SigLipImageProcessor
from llava.testing.benchmarking import measure_sizes, spread
from llava.testing.tiny import BENCH_SIZES, tiny_config

# transformers encodes a lone image always with its grid, and single crops only for several images per sample:
# the Baseline (pad) sample therefore holds two images, the +Grid sample one.
ASPECTS = {"Baseline": ("pad", 2), "+Grid": ("anyres_max_9", 1)}
TEXT = list(range(20, 52))  # 32 prompt tokens around the images
IMAGE_SIZE = (640, 480)


def _pair(size: dict, aspect: str):
    torch.manual_seed(0)
    ours = LlavaQwenForCausalLM(tiny_config(image_aspect_ratio=aspect, **size)).eval()
    vocab = size["vocab_size"]
    # transformers marks image positions with real token ids; take two ids the prompt never uses.
    with warnings.catch_warnings():
        # The converter warns that a lone "pad" image differs in transformers; the Baseline sample holds two.
        warnings.filterwarnings("ignore", message="transformers' LlavaOnevision always runs")
        theirs = to_hf_model(ours, image_token_index=vocab - 3, video_token_index=vocab - 4)
    return ours, theirs


def _inputs(ours, theirs, num_images: int) -> tuple[dict, dict]:
    """The same sample for both: ours with -200 placeholders, theirs with each placeholder expanded."""
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 256, (IMAGE_SIZE[1], IMAGE_SIZE[0], 3), dtype=np.uint8))
        for _ in range(num_images)
    ]
    pixels = process_images(images, SigLipImageProcessor(), ours.config)
    crops = pixels if pixels.dim() == 5 else pixels[:, None]  # (images, P, 3, S, S)
    half = len(TEXT) // 2
    placeholders = [IMAGE_TOKEN_INDEX] * num_images
    mine = {
        "inputs": torch.tensor([TEXT[:half] + placeholders + TEXT[half:]]),
        "images": list(crops),
        "image_sizes": [image.size for image in images],
    }
    spliced = ours.prepare_multimodal_inputs(mine["inputs"], None, None, **_image_args(mine)).inputs_embeds
    per_image = (spliced.shape[1] - len(TEXT)) // num_images
    ids = TEXT[:half] + [theirs.config.image_token_id] * (per_image * num_images) + TEXT[half:]
    hf = {
        "input_ids": torch.tensor([ids]),
        "pixel_values": crops,
        "image_sizes": torch.tensor([image.size[::-1] for image in images]),
        "batch_num_images": torch.tensor([num_images]),
    }
    return mine, hf


def _image_args(mine: dict) -> dict:
    return {"images": mine["images"], "image_sizes": mine["image_sizes"]}


def _prefill_ours(model, mine):
    return model(input_ids=mine["inputs"], **_image_args(mine), logits_to_keep=1).logits


def _prefill_theirs(model, hf):
    return model(**hf, logits_to_keep=1).logits


def _generate(model, inputs: dict, new_tokens: int) -> torch.Tensor:
    out = model.generate(
        **inputs,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        pad_token_id=model.config.get_text_config().eos_token_id,
    )
    return out[:, -new_tokens:]  # transformers returns prompt + new tokens, ours only the new tokens


def _timed(clock, fn, *args) -> float:
    start = clock()
    fn(*args)
    return clock() - start


def _check(ours, theirs, mine, hf, new_tokens: int) -> float:
    """Max |diff| of prefill logits; raises if the greedy continuations differ."""
    diff = float((_prefill_ours(ours, mine) - _prefill_theirs(theirs, hf)).abs().max())
    mine_tokens, their_tokens = _generate(ours, mine, new_tokens), _generate(theirs, hf, new_tokens)
    if not torch.equal(mine_tokens, their_tokens):
        raise AssertionError(
            f"greedy tokens differ: ours {mine_tokens.tolist()} vs transformers {their_tokens.tolist()}"
        )
    return diff


def measure(size_name: str, reps: int, new_tokens: int, clock=time.process_time) -> list[tuple]:
    rows = []
    for variant, (aspect, num_images) in ASPECTS.items():
        ours, theirs = _pair(BENCH_SIZES[size_name], aspect)
        mine, hf = _inputs(ours, theirs, num_images)
        with torch.no_grad():
            diff = _check(ours, theirs, mine, hf, new_tokens)  # also the warm-up
            prefill, decode, base_ms = [], [], []
            for _ in range(reps):
                t_ours, t_theirs = _timed(clock, _prefill_ours, ours, mine), _timed(clock, _prefill_theirs, theirs, hf)
                prefill.append(t_ours / t_theirs)
                base_ms.append(t_theirs * 1e3)
                g_ours = _timed(clock, _generate, ours, mine, new_tokens)
                g_theirs = _timed(clock, _generate, theirs, hf, new_tokens)
                decode.append(g_theirs / g_ours)  # tokens/s ours over theirs
        seq = hf["input_ids"].shape[1]
        rows.append(
            (
                size_name,
                variant,
                seq,
                "prefill latency ours/theirs",
                statistics.median(base_ms),
                *spread(prefill),
                diff,
            )
        )
        rows.append(
            (
                size_name,
                variant,
                seq,
                "generate tokens/s ours/theirs",
                None,
                *spread(decode),
                diff,
            )
        )
    return rows


def main(argv: list[str] | None = None) -> list[tuple]:
    rows = measure_sizes(argv, __doc__.splitlines()[0], measure, new_tokens=16)
    print("| size | variant | sequence | ratio | transformers ms | median | min-max | max \\|diff\\| logits |")
    print("|---|---|---|---|---|---|---|---|")
    for size, variant, seq, label, base_ms, med, lo, hi, diff in rows:
        ms = f"{base_ms:.1f}" if base_ms is not None else "-"
        print(f"| {size} | {variant} | {seq} | {label} | {ms} | x{med:.3f} | {lo:.3f}-{hi:.3f} | {diff:.1e} |")
    return rows


if __name__ == "__main__":
    main()
