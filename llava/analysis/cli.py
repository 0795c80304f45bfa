"""Command line shared by ``python -m llava.analysis`` (every metric) and the one-metric modules
(``python -m llava.analysis.layer_similarity`` etc.)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from llava.analysis.checkpoints import DTYPES, parse_checkpoints
from llava.analysis.probes import METRICS
from llava.analysis.run import AnalysisConfig, analyse

EXAMPLE = """examples:
  python -m llava.analysis --checkpoint runs/baseline/stage2 --checkpoint runs/manager/stage2 \\
      --data eval_samples.json --image-folder /data/images --limit 64 --out analysis/pad
  python -m llava.analysis.attention_entropy --checkpoint Grid=runs/grid/stage2 \\
      --checkpoint Grid+Manager=runs/grid_manager/stage2 --tasks mme_local --include-path offline/tasks
"""


def build_parser(metrics: tuple[str, ...] | None, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=description, epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="[LABEL=]PATH",
        required=True,
        help="a checkpoint directory (repeat to overlay variants); the label defaults to the "
        "variant read from its config",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", help="LLaVA-format JSON/JSONL file or YAML mixture")
    source.add_argument("--tasks", help="comma-separated lmms-eval task names")
    parser.add_argument("--image-folder", help="root of the relative image paths of --data")
    parser.add_argument("--include-path", help="folder of local lmms-eval tasks for --tasks")
    parser.add_argument("--limit", type=int, default=32, help="samples (--data) or documents per task (--tasks)")
    parser.add_argument("--template", default="qwen_1_5", help="conversation template (default qwen_1_5)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the CSVs, PNGs and summary.json")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=tuple(DTYPES))
    parser.add_argument(
        "--query-chunk",
        type=int,
        default=512,
        help="attention rows reduced at a time (bounds the probe's extra memory)",
    )
    if metrics is None:
        parser.add_argument("--metrics", default=",".join(METRICS), help=f"comma-separated subset of {METRICS}")
    return parser


def _samples(args):
    from llava.analysis.samples import LlavaDataSamples, TaskSamples

    if args.image_folder and not args.data:
        warnings.warn("--image-folder has no effect without --data", stacklevel=2)
    if args.include_path and not args.tasks:
        warnings.warn("--include-path has no effect without --tasks", stacklevel=2)
    if args.data:
        return LlavaDataSamples(args.data, image_folder=args.image_folder, template=args.template, limit=args.limit)
    if args.tasks:
        return TaskSamples(
            [t for t in args.tasks.split(",") if t],
            include_path=args.include_path,
            template=args.template,
            limit=args.limit,
        )
    return None


def main(argv: list[str] | None = None, *, metrics: tuple[str, ...] | None = None, description: str = __doc__) -> dict:
    parser = build_parser(metrics, description)
    args = parser.parse_args(argv)
    chosen = metrics or tuple(m for m in args.metrics.split(",") if m)
    try:
        checkpoints = parse_checkpoints(args.checkpoint)
        config = AnalysisConfig(
            metrics=chosen, out=args.out, device=args.device, dtype=args.dtype, query_chunk=args.query_chunk
        )
        summary = analyse(checkpoints, _samples(args), config)
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    for label, entry in summary["checkpoints"].items():
        print(
            f"{label}: {entry['samples']} samples, {len(entry['skipped'])} skipped, {entry['seconds']} s",
            file=sys.stderr,
        )
    print("\n".join(summary["outputs"]))
    return summary


def main_for(metric: str, description: str):
    """The ``main`` of a one-metric module."""
    return lambda argv=None: main(argv, metrics=(metric,), description=description)
