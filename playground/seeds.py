"""Several seeds of the demo, summarised: per variant and task, the mean accuracy over seeds and its spread.

``python -m playground.demo --seeds 0,1,2`` runs the whole demo once per seed (``DIR/seed<N>``: data, experts,
curriculum, evaluation, each from that seed) and then writes ``DIR/report/seeds.md`` and ``seeds.csv`` from the
seeds' ``scores.csv``. The spread is the sample standard deviation over seeds (training noise, which the per-seed
intervals over documents do not include).
"""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from pathlib import Path


def read_scores(report: Path) -> dict[tuple[str, str], float]:
    """``(benchmark name, variant) -> score`` from one run's ``scores.csv``."""
    with open(report / "scores.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row["score"] != "-"]
    return {(row["name"], row["variant"]): float(row["score"]) for row in rows}


def summarise(runs: dict[int, Path], out: Path) -> Path:
    """``runs``: seed -> that seed's report folder. Writes ``seeds.md`` and ``seeds.csv`` into ``out``."""
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    for report in runs.values():
        for key, score in read_scores(report).items():
            values[key].append(score)
    tasks = list(dict.fromkeys(task for task, _ in values))
    variants = list(dict.fromkeys(variant for _, variant in values))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "seeds.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "variant", "seeds", "mean", "std", "min", "max"])
        for (task, variant), scores in values.items():
            spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
            writer.writerow([task, variant, len(scores), statistics.fmean(scores), spread, min(scores), max(scores)])
    lines = [
        f"# Playground over seeds {', '.join(map(str, runs))}",
        "",
        "Accuracy (%), mean ± standard deviation over seeds (each seed: its own data, experts and training).",
        "",
        "| Task | " + " | ".join(variants) + " |",
        "|---|" + "---|" * len(variants),
    ]
    for task in tasks:
        cells = []
        for variant in variants:
            scores = values.get((task, variant), [])
            spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
            cells.append(f"{statistics.fmean(scores):.1f} ± {spread:.1f}" if scores else "-")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    path = out / "seeds.md"
    path.write_text("\n".join(lines) + "\n")
    return path
