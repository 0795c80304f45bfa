"""Variants compared with 95% intervals, per task: the report's "Intervals" section, ``intervals.csv`` and
``intervals.png``.

Accuracy intervals are Wilson intervals (0/1 scores) or a bootstrap of the mean (any other per-document score); a
delta against the baseline is a paired bootstrap over the documents both variants answered. Tasks whose
per-document samples were not logged are left out (lmms-eval writes them with ``--log_samples``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from llava.eval.benchmarks import Benchmark
from llava.eval.intervals import sample_scores
from vlcommon.intervals import Interval, paired_bootstrap, wilson


@dataclass(frozen=True, slots=True)
class TaskComparison:
    benchmark: Benchmark
    documents: int  # shared by every variant
    accuracy: dict[str, Interval]  # variant -> in the benchmark's unit (percent)
    delta: dict[str, Interval]  # variant other than the baseline -> against it, same unit


def _accuracy(scores: list[float]) -> Interval:
    if all(s in (0.0, 1.0) for s in scores):
        return wilson(sum(scores), len(scores))
    return paired_bootstrap(scores, [0.0] * len(scores))


def compare(variants: dict[str, list[str]], benchmarks: tuple[Benchmark, ...], baseline: str) -> list[TaskComparison]:
    """One comparison per benchmark that every variant has per-document samples for."""
    out = []
    for bench in benchmarks:
        metric = bench.metric.split(",")[0]
        per_variant = {
            name: {doc: score for task in bench.task_names for doc, score in sample_scores(paths, task, metric).items()}
            for name, paths in variants.items()
        }
        if not all(per_variant.values()):
            continue
        shared = sorted(set.intersection(*(set(s) for s in per_variant.values())))
        if not shared:
            continue
        rows = {name: [scores[d] for d in shared] for name, scores in per_variant.items()}
        accuracy = {name: _accuracy(r).scaled(bench.scale) for name, r in rows.items()}
        delta = {
            name: paired_bootstrap(r, rows[baseline]).scaled(bench.scale)
            for name, r in rows.items()
            if name != baseline
        }
        out.append(TaskComparison(bench, len(shared), accuracy, delta))
    return out


def _cell(interval: Interval, *, signed: bool = False) -> str:
    sign = "+" if signed else ""
    text = f"{interval.value:{sign}.1f} [{interval.low:{sign}.1f}, {interval.high:{sign}.1f}]"
    return f"**{text}**" if signed and interval.significant else text


def markdown(comparisons: list[TaskComparison], baseline: str) -> str:
    """Accuracy [95% interval] per variant and task, and delta against the baseline; significant deltas in bold."""
    if not comparisons:
        return "No per-document samples were found (run lmms-eval with --log_samples): no intervals."
    names = list(comparisons[0].accuracy)
    others = [n for n in names if n != baseline]
    header = ["Task", "docs", *names, *(f"{n} - {baseline}" for n in others)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for c in comparisons:
        cells = [c.benchmark.label, str(c.documents)]
        cells += [_cell(c.accuracy[n]) for n in names] + [_cell(c.delta[n], signed=True) for n in others]
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        f"\n\n95% intervals: Wilson for accuracies, paired bootstrap over documents (10,000 resamples) for deltas "
        f"against {baseline}; **bold**: the delta's interval excludes 0."
    )
    return "\n".join(lines) + note


def write_csv(path: Path, comparisons: list[TaskComparison], baseline: str) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["task", "variant", "documents", "value", "low", "high", "kind", "significant"])
        for c in comparisons:
            for name, interval in c.accuracy.items():
                writer.writerow([c.benchmark.key, name, c.documents, interval.value, interval.low, interval.high,
                                 "accuracy", ""])  # fmt: skip
            for name, interval in c.delta.items():
                writer.writerow([c.benchmark.key, name, c.documents, interval.value, interval.low, interval.high,
                                 f"delta vs {baseline}", interval.significant])  # fmt: skip
    return path


def plot(path: Path, comparisons: list[TaskComparison], chance: dict[str, float] | None = None) -> Path:
    """Per-task accuracy with 95% error bars, one bar per variant; ``chance`` (task -> fraction) as a tick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(comparisons[0].accuracy) if comparisons else []
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(comparisons)), 3.6))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        xs = [k + (i - (len(names) - 1) / 2) * width for k in range(len(comparisons))]
        values = [c.accuracy[name].value for c in comparisons]
        errors = [
            [c.accuracy[name].value - c.accuracy[name].low for c in comparisons],
            [c.accuracy[name].high - c.accuracy[name].value for c in comparisons],
        ]
        ax.bar(xs, values, width, yerr=errors, capsize=2, label=name)
    for k, c in enumerate(comparisons):
        if chance and c.benchmark.task in chance:
            level = 100 * chance[c.benchmark.task]
            ax.hlines(level, k - 0.45, k + 0.45, colors="black", linestyles="dashed", linewidth=1)
    ax.set_xticks(range(len(comparisons)), [c.benchmark.label for c in comparisons], rotation=20, ha="right")
    ax.set_ylabel("accuracy (%), 95% interval")
    ax.set_title("Held-out accuracy per task" + (" (dashed: chance)" if chance else ""))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
