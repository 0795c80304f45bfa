"""Packed rows vs padded batches at equal memory (issue 23), measured in one process on the CPU.

**Data**: a synthetic stage-2 single-image mix after LLaVA-OneVision's recipe, drawn with ``--seed``:

* 10% text-only samples, at random places (one zero dummy crop with modality ``text``, as the dataset yields them);
* the others hold one anyres_max_9 image from one of the 19 rows of the paper's Table X (the 20 benchmarks;
  MM-LiveBench's two subsets share a row), the row drawn uniformly. Its resolution r, read as the side of the
  equal-area square sqrt(w h), and its aspect ratio a (short / long side) are each drawn *split-uniform* on that
  row's min / max / mean: uniform on [min, mean] with probability (max - mean) / (max - min), else on [mean, max],
  which matches the three published numbers exactly and assumes nothing more. The image is r / sqrt(a) by
  r sqrt(a), portrait with probability 0.3;
* text (prompt + answer): log-uniform 32-512 tokens; the image placeholder follows the first eighth (the system
  prompt), the last 20-80% (uniform) of the text is the supervised answer.

**Scale**: ``--image-size 112`` (8 x 8 tokens per crop instead of SigLIP's 27 x 27 at 384 px) keeps CPU steps
short. Every image is scaled by 112 / 384, so it gets the anyres grid its real size gets, and text lengths by
(8 / 27)^2: expanded lengths shrink about 11x, the image / text proportions and the relative spread stay the
real ones (both spreads are printed). Image tokens come from the real processor (crop count) and
``llava.model.image_layout.packed_length``, as ``LazySupervisedDataset.expanded_length`` computes them.

**Strategies**, under one budget B of expanded tokens per micro-batch (default 4 x the longest sample): padded
batches of floor(B / longest) samples in random order, each padded to its longest; LLaVA-NeXT's recipe, one sample
per micro-batch with gradient accumulation; padded in ``llava.data.sampler.grouped_indices`` order (modality and
length grouped over ``--accum`` micro-batches: LLaVA-NeXT's trainer passes world_size x gradient_accumulation_steps
as the world), batch size as the first; packed rows, ``PackedBatchSampler(lengths, max_tokens=B)`` +
``PackedCollator`` on ``segment_implementation("sdpa")`` (which hands unpacked calls to stock SDPA, so one model
serves all four).

**Measured**: attention FLOPs of the fullest packed row against its samples' own forwards (FlopCounterMode over
real forwards, asserted equal); supervised tokens/s of training steps (forward + backward; no optimizer, whose cost
is per optimizer step, the same for all), one epoch per strategy per repetition in an order rotating between
repetitions; micro-batches per epoch; padding share (padded / processed LLM tokens); peak memory above resident by
``MemTracker`` (``bench/memory.py``) over each strategy's heaviest micro-batches; and where a step's time goes
(tower + projector, LLM forward, rest of the forward, backward, LLM attention kernels) from one instrumented epoch
(forward hooks), and the attention kernels' time from one more (a dispatch mode around them).

    python bench/packing.py [--sizes tiny,medium] [--reps 5] [--samples 48] [--budget B] [--tiny-run]
"""

from __future__ import annotations

import argparse
import math
import re
import statistics

import numpy as np
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode

from llava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from llava.data.collator import DataCollatorForSupervisedDataset
from llava.data.packing import PackedBatchSampler, PackedCollator
from llava.data.sampler import grouped_indices
from llava.mm_utils import process_images
from llava.model import LlavaQwenForCausalLM
from llava.model.anyres import get_anyres_image_grid_shape
from llava.model.config import MultimodalSpec
from llava.model.image_layout import packed_length
from llava.model.segments import segment_implementation
from llava.processing import SigLipImageProcessor
from llava.testing.benchmarking import add_timing_args, load_bench_module, timing_setup
from llava.testing.tiny import BENCH_SIZES, tiny_config
from vlcommon.flops import flop_counter

MB = 2**20
REAL_CROP, REAL_SIDE = 384, 27  # SigLIP at 384 px, patch 14
# Paper Table X: image resolution (min, max, mean) and aspect ratio (min, max, mean) of each benchmark.
TABLE_X = {
    "VQAv2": ((120, 640, 523), (0.17, 1.00, 0.72)),
    "OKVQA": ((208, 640, 524), (0.26, 1.00, 0.72)),
    "GQA": ((314, 640, 523), (0.36, 1.00, 0.71)),
    "MMVet": ((181, 4180, 909), (0.27, 1.00, 0.74)),
    "SEED-Bench": ((240, 9906, 791), (0.50, 1.00, 0.66)),
    "RealWorldQA": ((512, 1469, 1147), (0.45, 1.00, 0.67)),
    "TextVQA": ((512, 3991, 872), (0.25, 1.00, 0.73)),
    "ChartQA": ((245, 1199, 665), (0.39, 0.99, 0.71)),
    "DocVQA": ((418, 6209, 1918), (0.33, 0.99, 0.75)),
    "InfoVQA": ((452, 7655, 1724), (0.09, 1.00, 0.46)),
    "OCRBench": ((20, 5900, 627), (0.08, 1.00, 0.57)),
    "AI2D": ((152, 1500, 547), (0.18, 1.00, 0.72)),
    "ScienceQA": ((114, 685, 378), (0.10, 1.00, 0.66)),
    "MMMU": ((185, 2217, 580), (0.11, 1.00, 0.60)),
    "MathVista": ((58, 4275, 499), (0.10, 1.00, 0.72)),
    "ImageDC": ((470, 512, 499), (0.60, 1.00, 0.76)),
    "MM-LiveBench": ((980, 2051, 1788), (0.51, 0.92, 0.61)),
    "LLaVA-Wild": ((465, 3921, 1277), (0.51, 1.00, 0.80)),
    "LLaVA-Wilder": ((224, 3492, 870), (0.37, 1.00, 0.72)),
}
TEXT_TOKENS, TEXT_ONLY, PORTRAIT = (32, 512), 0.10, 0.3
PACKED = "packed rows"
# The LLM's attention modules in FlopCounterMode's per-module tally (the tower's are under vision_model.encoder).
LLM_ATTENTION = re.compile(r"\.model\.layers\.\d+\.self_attn$")
# CPU SDPA kernels -> position of the query among their arguments (a backward gets grad_out first).
KERNELS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default: 0,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward.default: 1,
}


def _split_uniform(rng, low: float, high: float, mean: float) -> float:
    """A draw with exactly Table X's min, max and mean (see the module docstring), and no shape assumed beyond."""
    if rng.random() < (high - mean) / (high - low):
        return rng.uniform(low, mean)
    return rng.uniform(mean, high)


def draw_mix(count: int, seed: int) -> list[tuple]:
    """``count`` real-size samples: (image (width, height), or None for text-only; text tokens; answer share)."""
    rng = np.random.default_rng(seed)
    rows = list(TABLE_X.values())
    text_only, mix = set(rng.choice(count, round(count * TEXT_ONLY), replace=False).tolist()), []
    for index in range(count):
        text, answer = round(math.exp(rng.uniform(*np.log(TEXT_TOKENS)))), rng.uniform(0.2, 0.8)
        if index in text_only:
            mix.append((None, text, answer))
            continue
        resolution, aspect = rows[rng.integers(len(rows))]
        side, ratio = _split_uniform(rng, *resolution), _split_uniform(rng, *aspect)
        long, short = max(1, round(side / math.sqrt(ratio))), max(1, round(side * math.sqrt(ratio)))
        mix.append(((short, long) if rng.random() < PORTRAIT else (long, short), text, answer))
    return mix


def _image(model, size: tuple[int, int] | None, processor) -> tuple[dict, int, int]:
    """The image fields of an item for a real-size ``size`` (None: the text-only dummy), its tokens here and at
    real size (384-px crops, 27 x 27 tokens), each from the crop count the real preprocessing gives."""
    spec, crop = model.mm_spec, model.mm_spec.crop_size
    if size is None:
        return {"images": [torch.zeros(1, 3, crop, crop)], "image_sizes": [(crop, crop)], "modalities": ["text"]}, 0, 0
    small = (max(1, round(size[0] * crop / REAL_CROP)), max(1, round(size[1] * crop / REAL_CROP)))
    crops = process_images([Image.new("RGB", small, (120, 110, 100))], processor, model.config)[0]
    real = MultimodalSpec.from_config(tiny_config())
    grid_w, grid_h = get_anyres_image_grid_shape(size, real.grid_pinpoints, real.crop_size)
    fields = {"images": [crops], "image_sizes": [small], "modalities": ["image"]}
    return fields, packed_length(spec, crops.shape[0], small), packed_length(real, 1 + grid_w * grid_h, size)


def build_items(model, mix: list[tuple], seed: int) -> tuple[list[dict], list[int], list[int]]:
    """Training items as the dataset yields them, their expanded lengths here and at real size."""
    spec = model.mm_spec
    processor, rng = SigLipImageProcessor(size=(spec.crop_size, spec.crop_size)), np.random.default_rng(seed + 1)
    items, lengths, real_lengths = [], [], []
    for size, text, answer in mix:
        count = max(2, round(text * (spec.tokens_per_side / REAL_SIDE) ** 2))
        ids = torch.from_numpy(rng.integers(10, model.config.vocab_size - 16, count))
        first = min(count - 1, max(1, round(count * (1 - answer))))  # first supervised token
        labels = torch.where(torch.arange(count) >= first, ids, torch.full_like(ids, IGNORE_INDEX))
        fields, image_tokens, real_tokens = _image(model, size, processor)
        if size is not None:
            at = max(1, count // 8)  # after the system prompt
            ids = torch.cat([ids[:at], torch.tensor([IMAGE_TOKEN_INDEX]), ids[at:]])
            labels = torch.cat([labels[:at], torch.tensor([IGNORE_INDEX]), labels[at:]])
        items.append({"input_ids": ids, "labels": labels, **fields})
        lengths.append(count + image_tokens)
        real_lengths.append(text + real_tokens)
    return items, lengths, real_lengths


def plans(lengths: list[int], text_only: list[bool], budget: int, seed: int, accum: int) -> dict:
    """strategy -> (micro-batches of sample indices, packed?): one epoch each, all under ``budget`` tokens."""
    per_batch = max(1, budget // max(lengths))
    order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(seed)).tolist()
    signed = [-n if text else n for n, text in zip(lengths, text_only, strict=True)]  # sign = modality
    grouped = grouped_indices(signed, batch_size=per_batch, world_size=accum,
                              generator=torch.Generator().manual_seed(seed), group_by_modality=True)  # fmt: skip

    def cut(indices: list[int], size: int) -> list[list[int]]:
        return [indices[i : i + size] for i in range(0, len(indices), size)]

    return {
        f"padded, {per_batch}/batch": (cut(order, per_batch), False),
        "1/batch + grad. accum.": (cut(order, 1), False),
        f"length-grouped, {per_batch}/batch": (cut(grouped, per_batch), False),
        PACKED: (PackedBatchSampler(lengths, max_tokens=budget, seed=seed).plan(), True),
    }


def processed(plan: list[list[int]], lengths: list[int], packed: bool) -> list[int]:
    """LLM tokens each micro-batch runs: a padded batch runs its size x its longest sample, a packed row its sum."""
    return [sum(lengths[i] for i in b) if packed else len(b) * max(lengths[i] for i in b) for b in plan]


def collate(model, items: list[dict], plan: list[list[int]], packed: bool) -> list[tuple[dict, int]]:
    pad = model.config.pad_token_id
    collator = PackedCollator() if packed else DataCollatorForSupervisedDataset(pad_token_id=pad)
    batches = []
    for group in plan:
        batch = collator([items[i] for i in group])
        batch.pop("data_report")
        batches.append((batch, int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())))
    return batches


def _step(model, batch: dict, supervised: int):
    model.zero_grad(set_to_none=True)
    loss = model(**batch, num_items_in_batch=supervised, supervised_logits_only=True).loss
    loss.backward()


def run_epoch(model, batches: list[tuple[dict, int]], clock) -> float:
    start = clock()
    for batch, supervised in batches:
        _step(model, batch, supervised)
    return clock() - start


def attention_flops(model, batch: dict) -> int:
    """FLOPs of the LLM's attention kernels in one forward, as FlopCounterMode counts the calls that really ran."""
    with torch.no_grad(), flop_counter() as counter:
        model(**batch, supervised_logits_only=True)
    return sum(count for module, ops in counter.get_flop_counts().items() if LLM_ATTENTION.search(module)
               for op, count in ops.items() if "scaled_dot_product" in str(op))  # fmt: skip


def flops_check(model, items: list[dict], plan: list[list[int]]) -> tuple[int, int, int, int]:
    """The fullest packed row: its attention FLOPs, its samples' summed over their own forwards, the same row as one
    sequence attending across samples, and its sample count."""
    row = max(plan, key=len)
    packed = collate(model, items, [row], True)[0][0]
    alone = sum(attention_flops(model, collate(model, items, [[i]], False)[0][0]) for i in row)
    crossing = attention_flops(model, {k: v for k, v in packed.items() if k != "segment_ids"})
    return attention_flops(model, packed), alone, crossing, len(row)


def peak_mb(memory, model, batches: list[tuple[dict, int]], runs: list[int]) -> tuple[float, float]:
    """Peak above resident and resident MB over the micro-batches with the most LLM tokens and the most crops."""
    crops = [sum(c.shape[0] for c in b["images"]) for b, _ in batches]
    worst = {max(range(len(runs)), key=runs.__getitem__), max(range(len(crops)), key=crops.__getitem__)}
    peaks = []
    for index in sorted(worst):
        batch, supervised = batches[index]
        resident = (model, batch["input_ids"], batch["labels"], *batch["images"])
        peaks.append(memory.peak_cpu(lambda b=batch, s=supervised: _step(model, b, s), *resident))
    top = max(peaks, key=lambda peak: peak.above)
    return top.above / MB, top.resident / MB


class _AttentionClock(TorchDispatchMode):
    """Time inside the LLM's attention kernels, forward and backward. The tower runs the same kernels; its calls
    are told apart by their head count (queries are (B, heads, L, d))."""

    def __init__(self, clock, heads: int) -> None:
        super().__init__()
        self.clock, self.heads, self.seconds = clock, heads, 0.0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        position = KERNELS.get(func)
        if position is None or args[position].shape[1] != self.heads:
            return func(*args, **(kwargs or {}))
        start = self.clock()
        out = func(*args, **(kwargs or {}))
        self.seconds += self.clock() - start
        return out


def _phase_hooks(model, clock, seconds: dict) -> list:
    """Forward hooks that add each phase's time to ``seconds``: the tower and projector (one call each per
    forward, from ``encode_images``) and the decoder stack (``model.model``, called once after the splice)."""
    starts, handles = {}, []
    inner = model.model
    for phase, module in (("vision", inner.vision_tower), ("vision", inner.mm_projector), ("llm", inner)):

        def pre(mod, args):
            starts[mod] = clock()

        def post(mod, args, out, _phase=phase):
            seconds[_phase] += clock() - starts[mod]

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    return handles


def breakdown(model, batches: list[tuple[dict, int]], clock) -> dict[str, float]:
    """Two instrumented epochs: phase times by forward hooks (cheap), then the LLM's attention kernels by a dispatch
    mode, whose Python call on every op would inflate everything else (a kernel's own time stays exact). Returns ms
    per micro-batch and the shares of the hooked epoch's step time."""
    seconds = dict.fromkeys(("vision", "llm", "forward", "backward"), 0.0)
    handles = _phase_hooks(model, clock, seconds)
    try:
        for batch, supervised in batches:
            model.zero_grad(set_to_none=True)
            start = clock()
            loss = model(**batch, num_items_in_batch=supervised, supervised_logits_only=True).loss
            middle = clock()
            loss.backward()
            seconds["forward"] += middle - start
            seconds["backward"] += clock() - middle
    finally:
        for handle in handles:
            handle.remove()
    heads = model.config.num_attention_heads
    assert heads != model.config.vision_config.num_attention_heads, "LLM and tower attention would be mixed up"
    with _AttentionClock(clock, heads) as attention:
        run_epoch(model, batches, clock)
    total = seconds["forward"] + seconds["backward"]
    rest = seconds["forward"] - seconds["vision"] - seconds["llm"]
    shares = (seconds["vision"], seconds["llm"], rest, seconds["backward"], attention.seconds)
    return {"ms": 1e3 * total / len(batches), "shares": [s / total for s in shares]}


def _spread(values: list[float]) -> str:
    return f"{min(values):.3g}-{max(values):.3g}"


def _lengths_line(label: str, lengths: list[int]) -> str:
    mean = statistics.mean(lengths)
    low, high = min(lengths), max(lengths)
    return (
        f"{label}: min {low}, median {statistics.median(lengths):.0f}, mean {mean:.0f}, max {high} "
        f"(max / mean {high / mean:.2f}, min / mean {low / mean:.3f})"
    )


def setup(size: str, args) -> tuple:
    """The model, its items and their expanded lengths, the budget and the four strategies' plans."""
    torch.manual_seed(args.seed)
    model = LlavaQwenForCausalLM(tiny_config(image_size=args.image_size, patch_size=14, **BENCH_SIZES[size]))
    model.set_attn_implementation(segment_implementation("sdpa"))
    model.train()
    mix = draw_mix(args.samples, args.seed)
    items, lengths, real_lengths = build_items(model, mix, args.seed)
    budget = args.budget or 4 * max(lengths)
    strategies = plans(lengths, [size is None for size, _, _ in mix], budget, args.seed, args.accum)
    print(f"\n## {size} (image size {args.image_size}, {args.samples} samples, {sum(s is None for s, _, _ in mix)} "
          f"text-only, budget B = {budget} expanded tokens)")  # fmt: skip
    print(_lengths_line("expanded lengths here", lengths))
    print(_lengths_line("same samples at real size (384 px)", real_lengths))
    return model, items, lengths, budget, strategies


def measure(size: str, args, clock, memory) -> dict:
    model, items, lengths, budget, strategies = setup(size, args)
    packed_plan = strategies[PACKED][0]
    flops, alone, crossing, samples = flops_check(model, items, packed_plan)
    assert flops == alone, f"a packed row spent {flops} attention FLOPs, its samples alone {alone}"
    print(f"attention FLOPs packed / sum of samples = {flops / alone:.3f} (fullest row: {samples} samples, {flops} "
          f"FLOPs); the same row attending across samples would cost x{crossing / alone:.2f}")  # fmt: skip
    batches = {name: collate(model, items, plan, packed) for name, (plan, packed) in strategies.items()}
    totals = {sum(s for _, s in b) for b in batches.values()}
    assert len(totals) == 1, f"the strategies train different supervised tokens: {totals}"
    supervised = totals.pop()
    stats = {}
    for name, (plan, packed) in strategies.items():
        runs = processed(plan, lengths, packed)
        peak, resident = peak_mb(memory, model, batches[name], runs)
        padding, fill = 1 - sum(lengths) / sum(runs), statistics.mean(runs) / budget
        split = breakdown(model, batches[name], clock)  # also the warm-up of the timed epochs
        stats[name] = {"steps": len(plan), "padding": padding, "fill": fill, "peak": peak, "resident": resident,
                       "split": split}  # fmt: skip
    names, rates = list(strategies), {name: [] for name in strategies}
    for rep in range(args.reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:  # rotate: drifts hit every strategy
            rates[name].append(supervised / run_epoch(model, batches[name], clock))
    return {"size": size, "stats": stats, "rates": rates, "supervised": supervised}


def print_tables(result: dict) -> dict:
    stats, rates = result["stats"], result["rates"]
    baselines = [name for name in rates if name != PACKED]
    best = max(baselines, key=lambda name: statistics.median(rates[name]))
    ratios = [p / b for p, b in zip(rates[PACKED], rates[best], strict=True)]
    print(f"\n| {result['size']} | steps/epoch | padding | fill of B | peak MB above resident | supervised tok/s "
          "(median) | min-max | packed / this (median) |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    for name, stat in stats.items():
        versus = statistics.median(p / r for p, r in zip(rates[PACKED], rates[name], strict=True))
        cells = (name, stat["steps"], f"{100 * stat['padding']:.1f}%", f"{100 * stat['fill']:.0f}%",
                 f"{stat['peak']:.1f}", f"{statistics.median(rates[name]):.1f}", _spread(rates[name]),
                 f"x{versus:.3f}")  # fmt: skip
        print("| " + " | ".join(map(str, cells)) + " |")
    resident = max(stat["resident"] for stat in stats.values())
    print(f"\nresident (weights, inputs): up to {resident:.1f} MB; {result['supervised']} supervised tokens per epoch")
    met = statistics.median(ratios) >= 1.5 and stats[PACKED]["padding"] <= 0.05
    print(f"packed / best padded baseline ({best}): x{statistics.median(ratios):.3f} (per-repetition "
          f"{_spread(ratios)}); goal x1.5 with padding <= 5%: {'met' if met else 'not met'}")  # fmt: skip
    print(
        f"\n| {result['size']}: where a step goes | ms/micro-batch | vision tower + projector | LLM forward | "
        "rest of forward | backward | of which LLM attention (fwd+bwd) |\n|---|---|---|---|---|---|---|"
    )
    for name, stat in stats.items():
        split = stat["split"]
        print(f"| {name} | {split['ms']:.1f} | " + " | ".join(f"{100 * s:.0f}%" for s in split["shares"]) + " |")
    return {"best": best, "ratio": statistics.median(ratios), "ratios": ratios}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="tiny,medium", help=f"comma-separated, from {sorted(BENCH_SIZES)}")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--budget", type=int, default=None, help="expanded tokens per micro-batch (4 x longest)")
    parser.add_argument("--accum", type=int, default=8, help="micro-batches per optimizer step, for grouping")
    parser.add_argument("--image-size", type=int, default=112, help="crop size (a multiple of 14)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny-run", action="store_true", help="tiny size, 12 samples, 1 repetition (the test's)")
    add_timing_args(parser)
    args = parser.parse_args(argv)
    if args.tiny_run:
        args.sizes, args.samples, args.reps = "tiny", 12, 1
    memory, results = load_bench_module("memory"), []
    with timing_setup(args) as clock:
        for size in args.sizes.split(","):
            result = measure(size, args, clock, memory)
            results.append({**result, **print_tables(result)})
    return results


if __name__ == "__main__":
    main()
