"""GPU acceptance checks of issue 23, one table: what only a GPU can measure (run by ``bench/gpu_check.sh``).

1. FlashAttention-2 vs SDPA logits (bf16) on the same weights, for a padded batch and for the same samples packed
   in one row (FA2's varlen path vs our segment-wise SDPA): max |diff| relative to the logits' scale.
2. A real-size training step (LLaVA-OV-0.5B architecture, random weights, bf16, anyres_max_9), padded vs packed
   at the same token budget: supervised tokens/s, MFU (model FLOPs of forward + backward, **vision tower
   included**, counted once by torch's FlopCounterMode, over the step time and the GPU's dense bf16 peak), peak
   memory.
3. Prefill and decode speed of our model against transformers' LlavaOnevision on identical weights.

    python bench/gpu_check.py [--size 0.5b|tiny] [--budget 16384] [--steps 4] [--device cuda]

``--size tiny --device cpu`` is a smoke run (SDPA only) that checks the script itself on any machine.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from llava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from llava.data.collator import DataCollatorForSupervisedDataset
from llava.data.packing import PackedCollator
from llava.mm_utils import process_images
from llava.model import LlavaQwenForCausalLM
from llava.model.config import ov_0p5b_config
from llava.model.segments import segment_implementation
from llava.processing import SigLipImageProcessor
from llava.testing.benchmarking import load_bench_module
from llava.testing.tiny import tiny_config

# Dense bf16 peaks (no sparsity), by the device name torch reports.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}
# Image sizes of a stage-2 mix (Table X spreads from ~300 px to > 2000 px), and about 1 in 10 text-only.
SIZES = ((640, 480), (1024, 768), (384, 512), (1920, 1080), (800, 800), (500, 1200), None, (1280, 720))


def _config(size: str, attention: str):
    if size == "tiny":
        return tiny_config(vocab_size=1024, attn_implementation=attention)
    return ov_0p5b_config(attn_implementation=attention)


def _items(model, count: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    items = []
    for k in range(count):
        size = SIZES[k % len(SIZES)]
        text = rng.integers(10, 1000, int(rng.integers(40, 300))).tolist()
        if size is None:
            crop = model.mm_spec.crop_size
            images, sizes, modalities, ids = [torch.zeros(1, 3, crop, crop)], [(crop, crop)], ["text"], text
        else:
            image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
            crops = process_images([image], SigLipImageProcessor(), model.config)[0]
            images, sizes, modalities = [crops if crops.dim() == 4 else crops[None]], [size], ["image"]
            ids = text[:8] + [IMAGE_TOKEN_INDEX] + text[8:]
        ids = torch.tensor(ids)
        labels = torch.where(torch.arange(len(ids)) > len(ids) // 2, ids, torch.full_like(ids, IGNORE_INDEX))
        items.append({"input_ids": ids, "labels": labels, "images": images, "image_sizes": sizes,
                      "modalities": modalities})  # fmt: skip
    return items


def _to(batch: dict, device, dtype) -> dict:
    out = {}
    for key, value in batch.items():
        if key == "data_report":
            continue
        if key == "images":
            out[key] = [v.to(device, dtype) for v in value]
        else:
            out[key] = value.to(device) if torch.is_tensor(value) else value
    return out


def _batches(model, items, device, dtype) -> dict[str, dict]:
    padded = DataCollatorForSupervisedDataset(pad_token_id=model.config.pad_token_id)(items)
    return {"padded": _to(padded, device, dtype), "packed": _to(PackedCollator()(items), device, dtype)}


def parity(args, device) -> list[tuple]:
    """FA2 vs SDPA logits on one random model, padded and packed."""
    torch.manual_seed(0)
    sdpa = LlavaQwenForCausalLM(_config(args.size, "sdpa")).to(device, torch.bfloat16).eval()
    items = _items(sdpa, 3)
    batches = _batches(sdpa, items, device, torch.bfloat16)
    rows = []
    for name, batch in batches.items():
        with torch.no_grad():
            if name == "packed":
                sdpa.set_attn_implementation(segment_implementation("sdpa"))
            reference = sdpa(**batch).logits.float()
            sdpa.set_attn_implementation("flash_attention_2")
            flash = sdpa(**batch).logits.float()
            sdpa.set_attn_implementation("sdpa")
        scale = reference.abs().max().item()
        rows.append((f"FA2 vs SDPA logits, {name}", f"{(flash - reference).abs().max().item() / scale:.2e} of max"))
    return rows


def _step(model, batch, total: int) -> None:
    model.zero_grad(set_to_none=True)
    model(**batch, num_items_in_batch=total, supervised_logits_only=True).loss.backward()


def training(args, device) -> list[tuple]:
    torch.manual_seed(0)
    attention = "flash_attention_2" if device.type == "cuda" else "sdpa"
    model = LlavaQwenForCausalLM(_config(args.size, attention)).to(device, torch.bfloat16).train()
    if args.size == "tiny":
        model.config.tokenizer_model_max_length = None
    items = _items(model, 64)
    lengths = [_expanded(model, item) for item in items]
    budget = args.budget
    fits = [i for i, n in enumerate(lengths) if n <= budget]
    per_batch = max(1, budget // max(lengths[i] for i in fits))
    rows = []
    # LLaVA-NeXT's recipe (one sample per micro-batch, accumulation) is the strongest padded baseline at equal memory.
    for name, batch_size in (("padded", per_batch), ("one sample", 1), ("packed", None)):
        groups = _groups(fits, lengths, budget, batch_size or 1, packed=name == "packed")
        if name == "packed" and attention == "sdpa":
            model.set_attn_implementation(segment_implementation("sdpa"))
        rows += _measure(model, items, groups, lengths, name, args, device)
    return rows


def _expanded(model, item) -> int:
    with torch.no_grad():
        spliced = model.prepare_multimodal_inputs(item["input_ids"][None], None, None, item["images"],
                                                  item["image_sizes"], item["modalities"])  # fmt: skip
    return int(spliced.attention_mask.sum())


def _groups(indices, lengths, budget: int, per_batch: int, *, packed: bool) -> list[list[int]]:
    if not packed:
        return [indices[i : i + per_batch] for i in range(0, len(indices), per_batch)]
    groups, row, used = [], [], 0
    for index in indices:
        if row and used + lengths[index] > budget:
            groups.append(row)
            row, used = [], 0
        row.append(index)
        used += lengths[index]
    return groups + ([row] if row else [])


def _measure(model, items, groups, lengths, name: str, args, device) -> list[tuple]:
    collate = PackedCollator() if name == "packed" else DataCollatorForSupervisedDataset(
        pad_token_id=model.config.pad_token_id)  # fmt: skip
    batches = [_to(collate([items[i] for i in g]), device, torch.bfloat16) for g in groups[: args.steps + 1]]
    supervised = [int((b["labels"][..., 1:] != IGNORE_INDEX).sum()) for b in batches]
    with FlopCounterMode(display=False) as counter:  # one step's model FLOPs, vision tower included
        _step(model, batches[0], supervised[0])
    flops = counter.get_total_flops()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for batch, count in zip(batches[1:], supervised[1:], strict=True):
        start = time.perf_counter()
        _step(model, batch, count)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    tokens_s = sum(supervised[1:]) / sum(times)
    peak = PEAK_TFLOPS.get(next((k for k in PEAK_TFLOPS if k in _device_name(device)), ""), math.nan)
    mfu = math.nan if math.isnan(peak) else flops / statistics.median(times) / (peak * 1e12)
    # Padding in expanded tokens: a padded batch runs len(group) x its longest sample; a packed row runs its sum.
    used = [[lengths[i] for i in g] for g in groups[: args.steps + 1]]
    run = [sum(u) if name == "packed" else len(u) * max(u) for u in used]
    padding = 1 - sum(sum(u) for u in used) / sum(run)
    memory = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else math.nan
    return [(f"train step {name}: supervised tok/s", f"{tokens_s:,.0f}"),
            (f"train step {name}: MFU (first-step FLOPs / median step)", f"{100 * mfu:.1f}%"),
            (f"train step {name}: padding share (expanded tokens)", f"{100 * padding:.1f}%"),
            (f"train step {name}: peak memory", f"{memory:.1f} GiB")]  # fmt: skip


def decoding(args, device, new_tokens: int = 32) -> list[tuple]:
    """Prefill latency and decode tokens/s, ours vs transformers' LlavaOnevision on the same bf16 weights."""
    import warnings

    vs = load_bench_module("vs_transformers")
    from llava.model.convert import to_hf_model

    torch.manual_seed(0)
    ours = LlavaQwenForCausalLM(_config(args.size, "sdpa")).eval()
    vocab = ours.config.vocab_size
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="transformers' LlavaOnevision always runs")
        theirs = to_hf_model(ours, image_token_index=vocab - 3, video_token_index=vocab - 4)
    mine, hf = vs._inputs(ours, theirs, 1)
    ours, theirs = ours.to(device, torch.bfloat16), theirs.to(device, torch.bfloat16)
    mine = {
        **mine,
        "inputs": mine["inputs"].to(device),
        "images": [c.to(device, torch.bfloat16) for c in mine["images"]],
    }
    hf = {k: (v.to(device, torch.bfloat16) if k == "pixel_values" else v.to(device)) for k, v in hf.items()}
    rows = []
    for label, prefill, model, inputs in (
        ("ours", vs._prefill_ours, ours, mine),
        ("transformers", vs._prefill_theirs, theirs, hf),
    ):
        times, rates = [], []
        for _ in range(3):
            with torch.no_grad():
                start = _sync_time(device)
                prefill(model, inputs)
                times.append(_sync_time(device) - start)
                start = _sync_time(device)
                vs._generate(model, inputs, new_tokens)
                rates.append(new_tokens / (_sync_time(device) - start))
        rows.append((f"prefill {label}", f"{1000 * statistics.median(times):.1f} ms"))
        rows.append((f"generate {label} (prefill + {new_tokens} tokens)", f"{statistics.median(rates):.1f} tok/s"))
    return rows


def _sync_time(device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def _device_name(device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def main(argv: list[str] | None = None) -> list[tuple]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("0.5b", "tiny"), default="0.5b")
    parser.add_argument("--budget", type=int, default=16384, help="expanded tokens per step (both strategies)")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per strategy (after one counted step)")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    rows = [("device", _device_name(device))]
    if device.type == "cuda":
        rows += parity(args, device)
    rows += training(args, device)
    rows += decoding(args, device)
    width = max(len(r[0]) for r in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return rows


if __name__ == "__main__":
    main()
