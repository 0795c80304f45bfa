"""Anyres preprocessing throughput: ours (``llava.mm_utils.process_images``) against transformers' LLaVA-OneVision
image processors, measured in one process.

Every available transformers backend is timed (the PIL one always; the torchvision "fast" one only where
torchvision imports). For each image size the backends run interleaved, ``--reps`` times, on the same decoded
image; the table gives images/s (median) and our speed-up over each backend (median and min-max of per-repetition
ratios). Before timing, each backend's pixels are compared with ours (max |diff|); a mismatch is printed, not
hidden. The goal (issue 7) is >= x1.5 the fastest transformers backend.

    python bench/preprocessing.py [--sizes 300x1100,1500x400,...] [--reps 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from llava.mm_utils import process_images
from llava.processing import SigLipImageProcessor

DEFAULT_SIZES = "200x150,640x480,300x1100,1500x400,1025x577,2000x2200"
ANYRES = SimpleNamespace(image_aspect_ratio="anyres_max_9", image_grid_pinpoints="(1x1),...,(6x6)")


def backends() -> dict[str, object]:
    """transformers' processors that import here, with LLaVA-OneVision's SigLIP normalisation (mean = std = 0.5)."""
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )

    found = {"transformers PIL": LlavaOnevisionImageProcessorPil(image_mean=[0.5] * 3, image_std=[0.5] * 3)}
    try:
        from transformers.models.llava_onevision.image_processing_llava_onevision import (
            LlavaOnevisionImageProcessor,
        )

        found["transformers torchvision"] = LlavaOnevisionImageProcessor(image_mean=[0.5] * 3, image_std=[0.5] * 3)
    # torchvision missing, or a CUDA build broken beside the CPU torch (docs/evaluation.md, "lmms-eval 0.7.3 pitfalls"):
    # the failure can be any exception raised while importing it.
    except Exception as error:  # noqa: BLE001
        print(f"transformers' torchvision backend unavailable ({type(error).__name__}); timing the PIL one only")
    return found


def _image(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(width * 10_000 + height)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _ours(image: Image.Image, processor: SigLipImageProcessor) -> torch.Tensor:
    return process_images([image], processor, ANYRES)[0]  # (1 + crops, 3, 384, 384)


def _theirs(image: Image.Image, processor) -> torch.Tensor:
    return processor(image, return_tensors="pt")["pixel_values"][0]


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def measure(size: tuple[int, int], reps: int, references: dict[str, object]) -> list[list[str]]:
    image, ours = _image(*size), SigLipImageProcessor()
    rows = []
    mine = _ours(image, ours)
    for name, processor in references.items():
        theirs = _theirs(image, processor)
        diff = "shape differs" if theirs.shape != mine.shape else f"{(theirs - mine).abs().max().item():.1e}"
        ratios, our_times, their_times = [], [], []
        for _ in range(reps):
            our_times.append(_timed(_ours, image, ours))
            their_times.append(_timed(_theirs, image, processor))
            ratios.append(their_times[-1] / our_times[-1])
        rows.append(
            [
                f"{size[0]}x{size[1]}",
                str(mine.shape[0]),
                name,
                f"{1 / statistics.median(our_times):.1f}",
                f"{1 / statistics.median(their_times):.1f}",
                f"x{statistics.median(ratios):.2f}",
                f"{min(ratios):.2f}-{max(ratios):.2f}",
                diff,
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> list[list[str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated WIDTHxHEIGHT")
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args(argv)
    sizes = [tuple(int(v) for v in item.split("x")) for item in args.sizes.split(",")]
    references = backends()
    header = ["image", "crops", "backend", "ours img/s", "theirs img/s", "speed-up (median)", "min-max", "max |diff|"]
    rows = [row for size in sizes for row in measure(size, args.reps, references)]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    # Against the fastest backend of each size: the smallest of that size's ratios.
    worst = {}
    for row in rows:
        worst[row[0]] = min(worst.get(row[0], float("inf")), float(row[5][1:]))
    overall = statistics.median(worst.values())
    print(f"\nmedian speed-up over the fastest backend of each size: x{overall:.2f} (goal >= x1.5)")
    return rows


if __name__ == "__main__":
    main()
