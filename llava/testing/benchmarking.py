"""Timing options shared by the ``bench/`` scripts (the clock and the torch thread count), their per-size command
line, and how they summarise repeated ratios."""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import torch

CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def add_timing_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="cpu",
        help="cpu: process CPU time, which time spent descheduled by a busy host does not inflate "
        "(with one thread it is the work done); wall: elapsed time",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; 1 by default: on a shared 2-core machine two threads stall on each other "
        "and on neighbours, which swamps the few percent being measured (0 = torch's default)",
    )


@contextmanager
def timing_setup(args: argparse.Namespace) -> Iterator[Callable[[], float]]:
    """Yield the chosen clock with ``--threads`` applied; callers in the same process keep their thread count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(args.threads or previous)
    try:
        yield CLOCKS[args.clock]
    finally:
        torch.set_num_threads(previous)


def measure_sizes(argv: list[str] | None, description: str, measure, *, new_tokens: int) -> list[tuple]:
    """The command line of the benches that compare two models per size (``--sizes``, ``--reps``, the timing options,
    ``--new-tokens``); the rows of ``measure(size, reps, new_tokens, clock)`` over the sizes, in order."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--sizes", default="tiny,medium")
    parser.add_argument("--reps", type=int, default=7)
    add_timing_args(parser)
    parser.add_argument("--new-tokens", type=int, default=new_tokens)
    args = parser.parse_args(argv)
    rows = []
    with timing_setup(args) as clock:
        for name in args.sizes.split(","):
            rows += measure(name, args.reps, args.new_tokens, clock)
    return rows


def spread(values: list[float]) -> tuple[float, float, float]:
    """Median, min and max: a bench table's columns for one repeated ratio (the median resists a busy host)."""
    return statistics.median(values), min(values), max(values)


def load_bench_module(name: str) -> ModuleType:
    """``bench/<name>.py`` as a module: ``bench/`` is a folder of scripts, not a package, and one bench measures
    with another's functions (peak memory exactly as ``bench/memory.py`` measures it)."""
    path = Path(__file__).resolve().parents[2] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
