"""Computational budget of the Two-Tower models (the paper's Table VI): parameters, multiply-adds, ms/sample.

    python -m managertower.budget                          # base size on the meta device: seconds, no weights
    python -m managertower.budget --time --reps 5          # + measured inference ms/sample (random weights, CPU)
    python -m managertower.budget --image-size 288 --text-tokens 40 --tiny

Rows: METER, BridgeTower and ManagerTower with SAUM, AAUM (own query) and AAUM (fused query), from the presets of
``managertower.presets`` (one fact, one home). Multiply-adds are counted by ``vlcommon.flops.flop_counter`` (matrix
products, convolutions, attention; one multiply-add = one "FLOP" of the paper's fvcore count) for one image and one
text of ``--text-tokens`` tokens; the managers' elementwise weighted sums are not counted, as fvcore does not.
Parameters exclude task heads (the paper's count includes its VQA head).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch

from managertower.config import ManagerTowerConfig
from managertower.model import ManagerTowerModel
from managertower.presets import preset
from managertower.testing import tiny_config
from vlcommon.flops import flop_counter

ROWS = {
    "METER": None,  # no preset row: Table VI compares BridgeTower and the managers; METER for reference
    "BridgeTower": "table1/bt",
    "ManagerTower SAUM": "table1/saum-nd",
    "ManagerTower AAUM (own query)": "table1/aaum-own",
    "ManagerTower AAUM (fused query)": "table1/aaum-fused",
}


def configs(base: ManagerTowerConfig) -> dict[str, ManagerTowerConfig]:
    return {name: preset(row, base) if row else replace(base, fusion="meter") for name, row in ROWS.items()}


def inputs(config: ManagerTowerConfig, text_tokens: int, device: str | torch.device) -> tuple[torch.Tensor, ...]:
    size = config.vision.image_size
    ids = torch.full((1, text_tokens), 5, dtype=torch.long, device=device)
    return ids, torch.ones_like(ids), torch.zeros(1, 3, size, size, device=device)


def count_macs(model: ManagerTowerModel, text_tokens: int) -> int:
    """Multiply-adds of one eval forward (FlopCounterMode counts two FLOPs per multiply-add). Not under no_grad:
    the counter's module hooks expect autograd on tensors that require grad (free on the meta device)."""
    device = next(model.parameters()).device
    with flop_counter() as counter:
        model.eval()(*inputs(model.config, text_tokens, device))
    return counter.get_total_flops() // 2


def measure(configs_: dict[str, ManagerTowerConfig], text_tokens: int, reps: int) -> dict[str, list[float]]:
    """Inference ms/sample per row, one value per repetition after a warm-up, the rows interleaved."""
    models = {}
    for name, config in configs_.items():
        torch.manual_seed(0)
        models[name] = ManagerTowerModel(config).eval()
    times = {name: [] for name in models}
    for rep in range(reps + 1):
        for name, model in models.items():
            started = time.perf_counter()
            with torch.no_grad():
                model(*inputs(model.config, text_tokens, "cpu"))
            if rep:
                times[name].append(1000 * (time.perf_counter() - started))
    return times


def budget(base: ManagerTowerConfig, *, text_tokens: int, reps: int = 0) -> list[dict]:
    rows, built = [], configs(base)
    for name, config in built.items():
        with torch.device("meta"):
            model = ManagerTowerModel(config)
        rows.append({"model": name, "params": sum(p.numel() for p in model.parameters()),
                     "macs": count_macs(model, text_tokens)})  # fmt: skip
    if reps:
        for row, values in zip(rows, measure(built, text_tokens, reps).values(), strict=True):
            row["ms"] = values
    return rows


def table(rows: list[dict]) -> list[str]:
    reference = next(r for r in rows if r["model"] == "BridgeTower")
    lines = ["| model | params (M) | multiply-adds (G) | x BridgeTower | ms/sample (median, min-max) |",
             "|---|---|---|---|---|"]  # fmt: skip
    for row in rows:
        ms = row.get("ms")
        timing = f"{statistics.median(ms):.1f} ({min(ms):.1f}-{max(ms):.1f})" if ms else "-"
        lines.append(f"| {row['model']} | {row['params'] / 1e6:.2f} | {row['macs'] / 1e9:.2f} | "
                     f"{row['macs'] / reference['macs']:.3f} | {timing} |")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # 384 px: where the count comes closest to Table VI (BridgeTower 99.5 G multiply-adds against its 101.25 G)
    parser.add_argument("--image-size", type=int, default=384)
    parser.add_argument("--text-tokens", type=int, default=40)
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny config instead of base size")
    parser.add_argument("--time", action="store_true", help="measure inference ms/sample on the CPU")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    base = tiny_config(depth=6, experts=3) if args.tiny else ManagerTowerConfig()
    if not args.tiny:
        base = replace(base, vision=replace(base.vision, image_size=args.image_size))
    rows = budget(base, text_tokens=args.text_tokens, reps=args.reps if args.time else 0)
    print("\n".join(table(rows)))


if __name__ == "__main__":
    main()
