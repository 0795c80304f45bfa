"""Memory and time of the analysis probe, measured in one process, for a +Grid+Manager model on one grid image.

Three ways to run the same sample through the tower and the decoder:

* ``forward``: the plain forward (SDPA), what evaluation runs;
* ``eager``: the same forward with eager attention, which forms each layer's (H, L, L) map and drops it;
* ``probe``: ``llava.analysis.probes.Probe`` with every metric (eager attention, hooks reducing each layer's map);
* ``all maps``: eager forward with ``output_attentions=True``, which returns every decoder layer's (H, L, L) map --
  what a script would store to compute the statistics afterwards.

Prints peak memory above what was resident (parameters, inputs) and the ratios ``probe / eager`` (the probe's own
cost) and ``all maps / probe``, then median times over ``eager`` and ``forward`` (interleaved repetitions). Memory is
measured as in ``bench/memory.py`` (MemTracker on CPU, the allocator's peak on CUDA); the probe's extra memory
should stay near one layer's map, whatever the depth.

    python bench/analysis_memory.py [--sizes tiny,medium] [--image 768x768] [--reps 3] [--device auto|cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from PIL import Image

from llava.analysis.probes import METRICS, Probe, decoder_forward, splice_sample
from llava.analysis.samples import AnalysisSample
from llava.mm_utils import process_images
from llava.model import LlavaQwenForCausalLM
from llava.model.config import ov_0p5b_config
from llava.processing import SigLipImageProcessor
from llava.testing.benchmarking import load_bench_module
from llava.testing.tiny import BENCH_SIZES, tiny_config
from llava.tools.budget import variant_config

MB = 2**20


memory = load_bench_module("memory")


def _model(size: str, device: torch.device) -> LlavaQwenForCausalLM:
    config = ov_0p5b_config() if size == "ov-0.5b" else tiny_config(**BENCH_SIZES[size])
    torch.manual_seed(0)
    model = LlavaQwenForCausalLM(variant_config(config, "+Grid+Manager")).eval()
    with torch.no_grad():
        for p in model.model.managers.parameters():
            p.normal_(0, 0.02)
    return model.to(device)


def _sample(model, width: int, height: int) -> AnalysisSample:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))
    crop = model.config.vision_config.image_size
    crops = process_images([image], SigLipImageProcessor(size=(crop, crop)), model.config)[0]
    ids = torch.tensor([11, 12, -200] + list(range(100, 164)))
    return AnalysisSample(
        sample_id="bench", input_ids=ids, images=[crops], image_sizes=[image.size], modalities=["image"]
    )


@torch.no_grad()
def _forward(model, sample: AnalysisSample, *, output_attentions: bool = False):
    spliced = splice_sample(model, sample)
    return spliced.inputs_embeds.shape[1], decoder_forward(model, spliced, output_attentions=output_attentions)


def _probe(model, sample: AnalysisSample) -> None:
    with Probe(model, METRICS) as probe:
        probe.observe(sample)


def _eager(model, sample: AnalysisSample, *, output_attentions: bool = False) -> None:
    model.set_attn_implementation("eager")
    try:
        _forward(model, sample, output_attentions=output_attentions)
    finally:
        model.set_attn_implementation("sdpa")


def run_size(size: str, args, device: torch.device) -> dict:
    """Print and return the peaks (bytes above resident), one layer's map and the time ratios of one size."""
    model = _model(size, device)
    width, height = (int(v) for v in args.image.split("x"))
    sample = _sample(model, width, height)
    length, _ = _forward(model, sample)
    peak = memory._peak_fn(device)
    calls = {
        "forward": lambda: _forward(model, sample),
        "eager": lambda: _eager(model, sample),
        "probe": lambda: _probe(model, sample),
        "all maps": lambda: _eager(model, sample, output_attentions=True),
    }
    peaks = {name: peak(call, model, *sample.images).above for name, call in calls.items()}
    heads, layers = model.config.num_attention_heads, model.config.num_hidden_layers
    one_map = heads * length * length * torch.finfo(model.dtype).bits // 8
    print(
        f"\n{size}: sequence {length} tokens, {layers} decoder layers x {heads} heads; one layer's map "
        f"{one_map / MB:.0f} MB"
    )
    for name, value in peaks.items():
        print(f"  {name:<9} peak above resident {value / MB:9.1f} MB")
    print(
        f"  memory probe / eager x{peaks['probe'] / peaks['eager']:.2f} (probe = {peaks['probe'] / one_map:.2f} "
        f"layer maps); all maps / probe x{peaks['all maps'] / peaks['probe']:.2f}"
    )
    times = {name: [] for name in ("forward", "eager", "probe")}
    for _ in range(args.reps):
        for name, samples in times.items():
            started = time.perf_counter()
            calls[name]()
            if device.type == "cuda":
                torch.cuda.synchronize()
            samples.append(time.perf_counter() - started)
    result = {"size": size, "length": length, "one_map": one_map, "peaks": peaks, "time": {}}
    for base in ("eager", "forward"):
        ratios = [p / b for p, b in zip(times["probe"], times[base])]
        result["time"][base] = statistics.median(ratios)
        print(
            f"  time probe / {base}: median x{statistics.median(ratios):.2f} (min x{min(ratios):.2f}, "
            f"max x{max(ratios):.2f}, {args.reps} reps); probe median {statistics.median(times['probe']):.2f} s"
        )
    return result


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="tiny,medium", help=f"comma-separated: {', '.join(BENCH_SIZES)}, ov-0.5b")
    parser.add_argument("--image", default="768x768", help="WIDTHxHEIGHT of the generated image (default 768x768)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args(argv)
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else "cpu"
        if args.device == "auto"
        else args.device
    )
    held, reallocated = memory.check_tracker(device)
    print(
        f"measuring path check: a {memory.CHECK_MB} MB block held through a prefill adds {held / MB:.1f} MB; "
        f"allocated twice, {reallocated / MB:.1f} MB"
    )
    sizes = args.sizes.split(",")
    unknown = [size for size in sizes if size not in BENCH_SIZES and size != "ov-0.5b"]
    if unknown:
        parser.error(f"unknown sizes {unknown}")
    return [run_size(size, args, device) for size in sizes]


if __name__ == "__main__":
    main()
