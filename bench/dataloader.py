"""Data-loader samples/s against training-step consumption, measured in one process: Baseline (pad) and +Grid (anyres).

For each variant one tiny model (real Qwen2 vocabulary and tokenizer, real 384-px crop geometry) and one generated
LLaVA corpus (``write_corpus``'s records, images redrawn at realistic sizes as JPEG) are built. Two rates are timed:

* loader: a torch ``DataLoader`` over ``LazySupervisedDataset`` + ``DataCollatorForSupervisedDataset`` (batch
  ``--batch-size``) for each ``--workers`` count; ``--batches`` batches are timed after one warm-up batch per worker,
  so worker start-up is not counted;
* step: forward + backward + AdamW step with ``supervised_logits_only=True`` (as ``LLaVATrainer.compute_loss``
  calls the model) on the same batches, collated beforehand so that only the model is timed.

Repetitions interleave loader and step timings so drifts of the machine hit both. The table gives medians and the
median (min-max) of per-repetition loader/step ratios, with the crops per image and the tokens per sample the LLM
sees (images expanded) of the timed batches. Here the step runs on the CPU with a tiny model: ratio >= 1
means the loader keeps up with that step. On a GPU cluster the step is far faster (and the loader gets more cores),
so the number to carry over is loader samples/s per worker, to size ``dataloader_num_workers``.

    python bench/dataloader.py [--size tiny] [--workers 0,2] [--batch-size 4] [--batches 3] [--reps 5] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Subset

from llava.data.collator import DATA_REPORT_KEY, DataCollatorForSupervisedDataset
from llava.data.dataset import DataConfig, LazySupervisedDataset
from llava.data.mixture import load_mixture
from llava.model import LlavaQwenForCausalLM
from llava.model.image_layout import packed_length
from llava.processing import SigLipImageProcessor
from llava.testing import build_qwen2_tokenizer, tiny_config
from llava.testing.benchmarking import spread
from llava.testing.synthetic import write_corpus
from llava.testing.tiny import BENCH_SIZES, QWEN2_VOCAB_SIZE
from llava.train.recipes import final_images
from llava.variants import VARIANTS as PAPER_VARIANTS

# The shared benchmark sizes, with the real tokenizer's vocabulary (its ids reach 151645).
SIZES = {name: {**size, "vocab_size": QWEN2_VOCAB_SIZE} for name, size in BENCH_SIZES.items()}
# The variants without managers, by how their trained model sees images.
VARIANTS = {v.label: str(final_images(v).aspect_ratio) for v in PAPER_VARIANTS if not v.manager}
DEFAULT_IMAGE_SIZES = "640x480,300x1100,1024x768,1500x400"


def write_photo_corpus(folder: Path, count: int, sizes: list[tuple[int, int]]) -> Path:
    """``write_corpus``'s qwen_1_5 records with their images redrawn at ``sizes`` (cycled) as JPEG files.

    Its own images are at most 160 px wide, where anyres picks the smallest grid; at photo sizes the grid and the
    decoding do the work they do on real data."""
    path = write_corpus(folder, count=count, template="qwen_1_5")
    samples = json.loads(path.read_text())
    rng = np.random.default_rng(0)
    for index, sample in enumerate(samples):
        width, height = sizes[index % len(sizes)]
        with Image.open(folder / sample["image"]) as drawing:
            pixels = np.asarray(
                drawing.convert("RGB").resize((width, height), Image.Resampling.BILINEAR), dtype=np.int16
            )  # (H, W, 3)
        # Sensor-like noise, so the JPEG decodes like a photo rather than a flat drawing.
        pixels = (pixels + rng.integers(-12, 13, pixels.shape)).clip(0, 255).astype(np.uint8)
        name = Path(sample["image"]).with_suffix(".jpg")
        Image.fromarray(pixels).save(folder / name, quality=90)
        sample["image"] = str(name)
    path.write_text(json.dumps(samples))
    return path


def _loader_seconds(dataset, collator, batch_size: int, batches: int, workers: int) -> float:
    """Seconds for the dataset's last ``batches`` batches, after one warm-up batch per worker.

    With W workers, W batches are built in parallel from the start: timing from the first one would credit the
    others' head start to the timed window. After W batches every worker has delivered one and works in steady
    state. The warm-up batches are taken just before the timed ones, so every worker count times the same samples."""
    warm = max(workers, 1)
    first = len(dataset) - (warm + batches) * batch_size
    loader = DataLoader(
        Subset(dataset, range(first, len(dataset))),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collator,
    )
    start = elapsed = None
    # Run to exhaustion rather than break: the workers then shut down on their own, outside the timed window.
    for index, _ in enumerate(loader, start=1):
        if index == warm:
            start = time.perf_counter()
        elif index == warm + batches:
            elapsed = time.perf_counter() - start
    return elapsed


def _step_seconds(model, optimizer, batches: list[dict]) -> float:
    model.train()
    start = time.perf_counter()
    for batch in batches:
        optimizer.zero_grad(set_to_none=True)
        model(**batch, supervised_logits_only=True).loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def _sequence_length(dataset, batches: list[dict]) -> float:
    """Mean tokens per sample the LLM sees (text without padding, each image expanded): what the step pays for."""
    text = sum(int(batch["attention_mask"].sum()) - batch["modalities"].count("image") for batch in batches)
    images = sum(
        packed_length(dataset.spec, crops.shape[0], size)
        for batch in batches
        for crops, size, kind in zip(batch["images"], batch["image_sizes"], batch["modalities"])
        if kind == "image"
    )  # a text-only sample's dummy crop never enters the sequence
    return (text + images) / sum(len(batch["input_ids"]) for batch in batches)


def _setup(size: dict, aspect: str, corpus: Path, tokenizer):
    """Model, AdamW, dataset and collator of one variant, and the dataset's batches collated beforehand."""
    torch.manual_seed(0)
    model = LlavaQwenForCausalLM(tiny_config(image_aspect_ratio=aspect, **size))
    crop = model.config.vision_config.image_size
    dataset = LazySupervisedDataset(
        load_mixture(str(corpus), seed=0),
        tokenizer=tokenizer,
        image_processor=SigLipImageProcessor(size=(crop, crop)),
        model_config=model.config,
        data=DataConfig(template="qwen_1_5", image_folder=str(corpus.parent)),
    )
    collator = DataCollatorForSupervisedDataset(pad_token_id=tokenizer.pad_token_id, padding_side="right")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)  # small: the weights barely move across steps
    return model, optimizer, dataset, collator


def measure(variant: str, args, corpus: Path, tokenizer) -> list[tuple]:
    model, optimizer, dataset, collator = _setup(SIZES[args.size], VARIANTS[variant], corpus, tokenizer)
    # The trainer hands the data report to its ledger, never to the model.
    collated = [
        {k: v for k, v in batch.items() if k != DATA_REPORT_KEY}
        for batch in DataLoader(dataset, batch_size=args.batch_size, collate_fn=collator)
    ]
    timed = collated[-args.batches :]  # the loader's timed batches (see _loader_seconds)
    crops = statistics.mean(c.shape[0] for batch in timed for c in batch["images"])  # per image
    tokens = _sequence_length(dataset, timed)
    _step_seconds(model, optimizer, collated[:1])  # warm-up: AdamW state allocated, kernels chosen
    samples = args.batches * args.batch_size
    loader = {workers: [] for workers in args.workers}
    step = []
    for _ in range(args.reps):
        for workers in args.workers:
            loader[workers].append(samples / _loader_seconds(dataset, collator, args.batch_size, args.batches, workers))
        step.append(samples / _step_seconds(model, optimizer, timed))
    rows = []
    for workers, rates in loader.items():
        ratios = [rate / step_rate for rate, step_rate in zip(rates, step)]
        rows.append(
            (
                variant,
                workers,
                crops,
                tokens,
                statistics.median(rates),
                statistics.median(step),
                *spread(ratios),
            )
        )
    return rows


def main(argv: list[str] | None = None) -> list[tuple]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="tiny", choices=sorted(SIZES))
    parser.add_argument("--workers", default="0,2", help="comma-separated DataLoader num_workers values")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--batches", type=int, default=3, help="timed batches per repetition (after warm-up)")
    parser.add_argument("--image-sizes", default=DEFAULT_IMAGE_SIZES, help="comma-separated WIDTHxHEIGHT, cycled")
    parser.add_argument("--reps", type=int, default=5)
    # On a shared machine two intra-op threads can spin-wait on a busy core and slow small ops a hundredfold.
    parser.add_argument("--threads", type=int, default=0, help="torch threads in this process (0: torch's default)")
    args = parser.parse_args(argv)
    args.workers = [int(w) for w in args.workers.split(",")]
    sizes = [tuple(int(v) for v in item.split("x")) for item in args.image_sizes.split(",")]
    if args.threads:
        torch.set_num_threads(args.threads)
    tokenizer = build_qwen2_tokenizer()
    with tempfile.TemporaryDirectory() as folder:
        warm = max(max(args.workers), 1)  # warm-up batches of the most workers, then the timed ones
        corpus = write_photo_corpus(Path(folder), (warm + args.batches) * args.batch_size, sizes)
        rows = [row for variant in VARIANTS for row in measure(variant, args, corpus, tokenizer)]
    print(
        f"{'variant':<9} {'workers':>7} {'crops/img':>9} {'seq len':>8} {'loader smp/s':>12} {'per worker':>10} "
        f"{'step smp/s':>10} {'loader/step':>11} {'min-max':>11}"
    )
    for variant, workers, crops, tokens, load, per_step, med, lo, hi in rows:
        print(
            f"{variant:<9} {workers:>7} {crops:>9.1f} {tokens:>8.0f} {load:>12.1f} {load / max(workers, 1):>10.1f} "
            f"{per_step:>10.1f} {med:>11.2f} {lo:>5.2f}-{hi:<5.2f}"
        )
    print(f"\ntorch threads in the main process: {torch.get_num_threads()} (DataLoader workers use 1 each)")
    print(
        "loader/step >= 1: the loader keeps up with this CPU step of a tiny model; on GPUs the step is far faster, "
        "so size num_workers from loader samples/s per worker"
    )
    return rows


if __name__ == "__main__":
    main()
