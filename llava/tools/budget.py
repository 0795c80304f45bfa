"""Computational budget of the four variants (the paper's Table IV): parameters, multiply-adds, ms/sample.

    python -m llava.tools.budget --config ov-0.5b                    # real size, on the meta device (seconds)
    python -m llava.tools.budget --config medium --time --reps 5     # + measured training / inference ms per sample
    python -m llava.tools.budget --config path/to/checkpoint --image 640x480 --text-tokens 128

``--config`` is a preset (``ov-0.5b``, ``tiny``, ``medium``) or a checkpoint directory / ``config.json``. The four
variants derive from it: Baseline = one crop (``pad``), +Grid = anyres (the config's own anyres mode, else
``anyres_max_9`` over the 6 x 6 pinpoints), +Manager = the config's managers, else the paper's default scaled to
the model's depths (top-half experts, 6 managers at equal intervals from the first LLM layer).

Parameters and multiply-adds (see ``llava.tools.flops`` for what is counted) need no weights and run on the meta
device at any size. ``--time`` builds random-initialised models on ``--device`` and measures one sample per
repetition, variants interleaved: training = forward + backward + AdamW step on answer tokens, as the trainer
runs it; inference = ``generate`` of ``--new-tokens`` greedy tokens after the prompt.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path

import torch

from llava.model import LlavaQwenForCausalLM
from llava.model.anyres import AspectRatioMode
from llava.model.config import OV_GRID_PINPOINTS, LlavaQwenConfig, ov_0p5b_config
from llava.model.loading import read_llava_config
from llava.model.manager_config import ManagerConfig, paper_default
from llava.testing.tiny import BENCH_SIZES, tiny_config
from llava.tools.flops import ForwardMacs, count_forward
from llava.tools.timing import time_variants
from llava.variants import VARIANTS, variant, variant_of

PRESETS = ("ov-0.5b", *BENCH_SIZES)


def load_config(name_or_path: str) -> LlavaQwenConfig:
    if name_or_path == "ov-0.5b":
        return ov_0p5b_config()
    if name_or_path in BENCH_SIZES:
        return tiny_config(**BENCH_SIZES[name_or_path])
    path = Path(name_or_path)
    if path.name == "config.json":
        path = path.parent
    if not path.is_dir():
        raise ValueError(f"--config {name_or_path!r} is neither a preset {PRESETS} nor a checkpoint directory")
    return read_llava_config(path)


def manager_for(config: LlavaQwenConfig) -> ManagerConfig:
    """The config's own managers, or the paper's default scaled to its depths."""
    own = config.manager
    if own.enabled:
        return own
    return paper_default(vision_layers=config.vision_config.num_hidden_layers, llm_layers=config.num_hidden_layers)


def variant_config(config: LlavaQwenConfig, name: str) -> LlavaQwenConfig:
    """``config`` turned into a variant (a key or a label of ``llava.variants.VARIANTS``)."""
    grid, managed = variant(name).grid, variant(name).manager
    fields = config.to_dict()
    if not grid:
        fields.update(image_aspect_ratio="pad")
    elif not AspectRatioMode.parse(config.image_aspect_ratio).is_anyres:
        fields.update(image_aspect_ratio="anyres_max_9", image_grid_pinpoints=OV_GRID_PINPOINTS)
    fields["manager"] = manager_for(config).to_dict() if managed else None
    fields.pop("model_type", None)
    return LlavaQwenConfig(**fields)


def count_parameters(model: LlavaQwenForCausalLM) -> dict[str, int]:
    """Parameters by component; tied embeddings count once, as ``model.parameters()`` yields them."""
    inner = model.model
    parts = {
        "vision tower": inner.vision_tower,
        "projector": inner.mm_projector,
        "managers": inner.managers,
    }
    counts = {
        name: sum(p.numel() for p in module.parameters()) if module is not None else 0 for name, module in parts.items()
    }
    counts["total"] = sum(p.numel() for p in model.parameters())
    counts["llm"] = counts["total"] - sum(counts[name] for name in parts)  # embeddings, decoder, newline, head
    return counts


@dataclasses.dataclass(frozen=True, slots=True)
class VariantBudget:
    variant: str
    params: dict[str, int]
    macs: ForwardMacs
    aggregation: int  # elementwise multiply-adds of the managers' weighted sums (not in ``macs``)
    expert_projection: int  # the managers' projections counted as the paper does: every expert through P
    train_ms: float | None = None
    infer_ms: float | None = None


def budget(config: LlavaQwenConfig, *, image_size=(384, 384), text_tokens: int = 64) -> list[VariantBudget]:
    """Parameters and multiply-adds of the four variants, on the meta device."""
    rows, projector_pass = [], {}
    for label in (v.label for v in VARIANTS):
        with torch.device("meta"):
            model = LlavaQwenForCausalLM(variant_config(config, label))
        macs = count_forward(model, image_size, text_tokens)
        spec = model.mm_spec
        if not spec.manager.enabled:
            projector_pass[spec.aspect_ratio.is_anyres] = macs.projector
        experts, managers = len(spec.manager.expert_layers), len(spec.manager.inject_layers)
        rows.append(
            VariantBudget(
                variant=label,
                params=count_parameters(model),
                macs=macs,
                aggregation=managers * experts * macs.manager_rows * config.hidden_size,
                expert_projection=experts * projector_pass[spec.aspect_ratio.is_anyres],
            )
        )
    return rows


def _table(rows: list[VariantBudget]) -> list[str]:
    reference = rows[0].macs.total  # Baseline
    scale, unit = (1e9, "G") if reference >= 1e10 else (1e6, "M")
    header = (
        f"| variant | params (M) | crops | image tokens | sequence | tower | projector | LLM | lm_head "
        f"| forward {unit}MACs | x Baseline | train {unit}MACs | train ms/sample | infer ms/sample |"
    )
    lines = [header, "|---" * 14 + "|"]
    for row in rows:
        m = row.macs
        parts = (m.tower, m.projector, m.llm, m.lm_head, m.total)
        timing = [f"{t:.1f}" if t is not None else "-" for t in (row.train_ms, row.infer_ms)]
        lines.append(
            f"| {row.variant} | {row.params['total'] / 1e6:.2f} | {m.crops} | {m.visual_tokens} | {m.sequence} | "
            + " | ".join(f"{value / scale:.2f}" for value in parts)
            + f" | x{m.total / reference:.3f} | {m.train / scale:.1f} | {timing[0]} | {timing[1]} |"
        )
    return lines


def _manager_lines(rows: list[VariantBudget]) -> list[str]:
    by_name = {row.variant: row for row in rows}
    lines = []
    for with_managers in (v for v in VARIANTS if v.manager):
        managed, plain = with_managers.label, variant_of(grid=with_managers.grid, manager=False).label
        m, p = by_name[managed], by_name[plain]
        lines.append(
            f"{managed} vs {plain}: +{m.params['total'] - p.params['total']:,} parameters; "
            f"+{(m.macs.total - p.macs.total) / 1e9:.4g} GMACs executed "
            f"(x{m.macs.total / p.macs.total:.4f}); the experts through the projector as the paper counts them: "
            f"{m.expert_projection / 1e9:.4g} GMACs (one fewer is executed when the last vision layer is an expert: "
            f"its projection is the main features'); weighted sums: {m.aggregation / 1e9:.3g} GMACs elementwise, "
            "not counted"
        )
        if m.train_ms and p.train_ms:
            lines.append(f"  time: training x{m.train_ms / p.train_ms:.3f}, inference x{m.infer_ms / p.infer_ms:.3f}")
    return lines


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--image {text!r}: expected WIDTHxHEIGHT, e.g. 640x480") from None
    return width, height


def main(argv: list[str] | None = None) -> list[VariantBudget]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="ov-0.5b", help=f"preset {PRESETS} or a checkpoint directory")
    parser.add_argument("--image", type=_size, default=(384, 384), help="WIDTHxHEIGHT of the sample's image")
    parser.add_argument("--text-tokens", type=int, default=64, help="text tokens before the image")
    parser.add_argument("--time", action="store_true", help="also measure ms/sample on --device")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (timing only)")
    parser.add_argument("--dtype", default="auto", help="auto (bf16 on cuda, fp32 on cpu), float32, bfloat16")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=8, help="generated tokens per inference sample")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.text_tokens < 1:
        parser.error("--text-tokens must be >= 1")
    config = load_config(args.config)
    rows = budget(config, image_size=args.image, text_tokens=args.text_tokens)
    if args.time:
        configs = {row.variant: variant_config(config, row.variant) for row in rows}
        times = time_variants(
            configs,
            image_size=args.image,
            text_tokens=args.text_tokens,
            reps=args.reps,
            new_tokens=args.new_tokens,
            device=args.device,
            dtype=args.dtype,
        )
        rows = [
            dataclasses.replace(
                row,
                train_ms=statistics.median(times[row.variant]["train"]),
                infer_ms=statistics.median(times[row.variant]["infer"]),
            )
            for row in rows
        ]
    print(
        f"Budget of {args.config}: one {args.image[0]}x{args.image[1]} image after {args.text_tokens} text tokens; "
        "MACs = multiply-adds (what fvcore calls FLOPs); train = forward + backward, all parameters trainable"
    )
    print("\n".join(_table(rows) + [""] + _manager_lines(rows)))
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(row) for row in rows], indent=1))
    return rows


if __name__ == "__main__":
    main()
