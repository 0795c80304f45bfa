"""Peak memory of managers, measured in one process: +Manager / Baseline and +Grid+Manager / +Grid.

The models and inputs are those of ``bench/manager_overhead.py`` (same sizes, shared weights, same image and
prompt). For each size, variant pair and phase -- a training step (forward + backward; with ``--adamw`` also a
training step followed by an AdamW step) and prefill (forward, no grad) -- the script prints the peak in MB of the
baseline and of the managed model, their ratio, the same for the peak above what was resident before the call
(parameters, buffers, inputs, optimizer state), and the size of the (E, N, D) stack of projected expert features
that all managers share. The goal (issue 7) is a peak ratio <= x1.05.

On CPU, tensor storages are counted by ``torch.distributed._tools.mem_tracker.MemTracker`` (a dispatch mode: every
storage an op returns counts from its creation until it is freed; memory a kernel uses internally and frees before
returning is not seen). On CUDA the allocator's own ``torch.cuda.max_memory_allocated`` is used, with one model at a
time on the GPU. Both are deterministic, so one repetition suffices. Before the table, the measuring path is checked
with known allocations (see :func:`check_tracker`).

    python bench/memory.py [--sizes tiny,medium] [--device auto|cpu|cuda] [--adamw]
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import torch
from torch.distributed._tools.mem_tracker import MemTracker

MB = 2**20
GOAL = 1.05
CHECK_MB = 100  # the known block of check_tracker


def _load_overhead():
    """``bench/`` is not a package: load the sibling script so that both benchmarks build the very same models."""
    path = Path(__file__).resolve().with_name("manager_overhead.py")
    spec = importlib.util.spec_from_file_location("manager_overhead", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


overhead = _load_overhead()


class Peak(NamedTuple):
    total: int  # bytes at the worst moment of the call, resident memory included
    resident: int  # bytes live when the call started

    @property
    def above(self) -> int:
        return self.total - self.resident


def peak_cpu(call: Callable[[], object], *resident) -> Peak:
    """Peak of live tensor storages during ``call``. ``resident`` (modules, optimizers, tensors) was allocated
    before the call and would be invisible to the dispatch mode, so it is registered up front."""
    tracker = MemTracker()
    tracker.track_external(*resident)
    before = _snapshot_total(tracker.get_tracker_snapshot("current"))
    with tracker:
        call()
    return Peak(_snapshot_total(tracker.get_tracker_snapshot("peak")), before)


def _snapshot_total(snapshot: dict) -> int:
    return sum(per_device["Total"] for per_device in snapshot.values())


def peak_cuda(call: Callable[[], object], *resident) -> Peak:
    """The allocator counts everything on the GPU, so ``resident`` needs no registration: the caller keeps only
    what is measured there."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    call()
    torch.cuda.synchronize()
    return Peak(torch.cuda.max_memory_allocated(), before)


def _peak_fn(device: torch.device):
    return peak_cuda if device.type == "cuda" else peak_cpu


@contextmanager
def _placed(model, batch: dict, device: torch.device):
    """Only the measured model and its inputs on ``device`` (on CUDA everything there counts), CPU afterwards."""
    model.to(device)
    try:
        yield dict(batch, input_ids=batch["input_ids"].to(device), images=[x.to(device) for x in batch["images"]])
    finally:
        model.to("cpu")


def _phase_call(phase: str, model, batch: dict, optimizer) -> Callable[[], object]:
    if phase == "prefill":
        return lambda: overhead._prefill(model, batch)
    if phase == "train step":
        return lambda: overhead._train_step(model, batch)

    def train_adamw():
        overhead._train_step(model, batch)
        optimizer.step()

    return train_adamw


def measure_model(model, batch: dict, phases: list[str], device: torch.device) -> dict[str, Peak]:
    """Peak of ``model`` for each phase, with only this model and its inputs on ``device``."""
    peak, peaks = _peak_fn(device), {}
    with _placed(model, batch, device) as placed:
        for phase in phases:
            # Only its own phase holds the optimizer state: on CUDA it would count as resident in the others.
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6) if phase == "train+AdamW" else None
            call = _phase_call(phase, model, placed, optimizer)
            # CUDA libraries allocate workspaces on first use and AdamW its state on its first step; both stay for
            # the whole job, so they belong to the resident memory, not to one step's peak.
            if device.type == "cuda" or optimizer is not None:
                call()
            model.zero_grad(set_to_none=True)
            peaks[phase] = peak(call, model, optimizer, placed["input_ids"], *placed["images"])
    return peaks


def expert_stack(model, batch: dict) -> tuple[tuple[int, ...], int]:
    """Shape (E, N, D) and bytes of the expert stack that all managers read, as built for this batch."""
    with torch.no_grad():
        spliced = model.prepare_multimodal_inputs(batch["input_ids"], None, None, batch["images"], batch["image_sizes"])
    experts = spliced.visual_injection.experts
    return tuple(experts.shape), experts.numel() * experts.element_size()


def measure(size_name: str, phases: list[str], device: torch.device) -> list[tuple]:
    rows = []
    for variant, aspect in overhead.VARIANTS.items():
        base, managed = overhead._models(overhead.SIZES[size_name], aspect)
        batch = overhead._inputs(base)
        shape, stack_bytes = expert_stack(managed, batch)
        base_peaks = measure_model(base, batch, phases, device)
        managed_peaks = measure_model(managed, batch, phases, device)
        for phase in phases:
            b, m = base_peaks[phase], managed_peaks[phase]
            rows.append(
                (
                    size_name,
                    f"{variant}+Manager / {variant}",
                    phase,
                    b.total / MB,
                    m.total / MB,
                    m.total / b.total,
                    b.above / MB,
                    m.above / MB,
                    m.above / b.above,
                    "x".join(map(str, shape)),
                    stack_bytes / MB,
                )
            )
    return rows


def check_tracker(device: torch.device, block_mb: int = CHECK_MB) -> tuple[int, int]:
    """Known allocations through the measuring path, in bytes: how much a ``block_mb`` block held through a tiny
    prefill raises the prefill's peak, and the peak above resident of allocating the block, dropping it and
    allocating it again. Both must equal the block: allocations inside the call are counted, and so are frees."""
    model = overhead._models(overhead.SIZES["tiny"], "pad")[0]
    block, peak = block_mb * MB, _peak_fn(device)
    with _placed(model, overhead._inputs(model), device) as batch:

        def held():
            data = torch.empty(block, dtype=torch.uint8, device=device)
            overhead._prefill(model, batch)
            del data  # dropped only now, so the block adds to every moment of the prefill

        resident = (model, batch["input_ids"], *batch["images"])
        overhead._prefill(model, batch)  # warm-up, as in measure_model
        plain = peak(lambda: overhead._prefill(model, batch), *resident)
        with_block = peak(held, *resident)

    def reallocated():
        torch.empty(block, dtype=torch.uint8, device=device)
        torch.empty(block, dtype=torch.uint8, device=device)

    return with_block.total - plain.total, peak(reallocated).above


def _device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _print_table(rows: list[tuple]) -> None:
    header = [
        "size",
        "ratio",
        "phase",
        "baseline MB",
        "manager MB",
        "peak ratio",
        "baseline above MB",
        "manager above MB",
        "above ratio",
        "stack E x N x D",
        "stack MB",
    ]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for size, label, phase, b, m, ratio, b_above, m_above, ratio_above, shape, stack in rows:
        print(
            f"| {size} | {label} | {phase} | {b:.2f} | {m:.2f} | {ratio:.3f} | {b_above:.2f} | {m_above:.2f} "
            f"| {ratio_above:.3f} | {shape} | {stack:.2f} |"
        )


def main(argv: list[str] | None = None) -> list[tuple]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="tiny,medium", help=f"comma-separated, from {sorted(overhead.SIZES)}")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--adamw", action="store_true", help="also measure a training step followed by AdamW")
    args = parser.parse_args(argv)
    device = _device(args.device)
    phases = ["train step", "train+AdamW", "prefill"] if args.adamw else ["train step", "prefill"]
    method = "torch.cuda.max_memory_allocated" if device.type == "cuda" else "MemTracker (tensor storages)"
    rise, realloc = check_tracker(device)
    print(
        f"measured on {device.type} with {method}\ncheck: a block of {CHECK_MB * MB} B held through a prefill "
        f"raises its peak by {rise} B; allocated, dropped and allocated again it peaks at {realloc} B above "
        "resident\n"
    )
    rows = []
    for name in args.sizes.split(","):
        rows += measure(name, phases, device)
    _print_table(rows)
    worst = max(row[5] for row in rows)
    print(f"\nworst peak ratio: x{worst:.3f} (goal <= x{GOAL:.2f})")
    return rows


if __name__ == "__main__":
    main()
