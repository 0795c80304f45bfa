"""The paper's results tables for your checkpoints: ``python -m llava.eval.report``.

    python -m llava.eval.report --variant Baseline=runs/eval/baseline --variant "+Manager=runs/eval/manager" \\
        --variant "+Grid=runs/eval/grid" --variant "+Grid+Manager=runs/eval/grid_manager" --out runs/report

Each ``--variant NAME=PATH[,PATH...]`` names lmms-eval results files or directories holding them (the offline pass,
the judged pass, ``{"scores": {...}}`` files with server scores); the first variant is the baseline unless
``--baseline`` says otherwise. Writes ``report.md`` (Table XI with deltas against the baseline, per-task accuracies and
deltas with 95% intervals, Tables XII and XIII, Table X's dataset metadata), ``scores.csv``, ``categories.csv``,
``report.png`` and, from lmms-eval's per-document samples, ``intervals.csv`` and ``intervals.png``. Missing datasets
show as ``-``; an average over fewer datasets than the paper's is marked ``*`` with the count.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from llava.eval import compare
from llava.eval.benchmarks import BENCHMARKS, Benchmark, Capability, load_benchmarks
from llava.eval.summary import Average, Scores, collect_scores, summarise

MISSING = "-"


def _cell(value: float | None, digits: int = 2) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def _average_cell(avg: Average, base: Average | None = None) -> str:
    text = _cell(avg.value)
    if avg.value is not None and not avg.complete:
        text += f"* ({avg.present}/{avg.total})"
    if base is not None and avg.value is not None and base.value is not None:
        delta = avg.value - base.value
        text += f" ({'↑' if delta >= 0 else '↓'}{abs(delta):.2f})"
    return text


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def table_xi(summaries: dict[str, dict[str, Average]], baseline: str) -> str:
    columns = list(next(iter(summaries.values())))
    rows = []
    for name, summary in summaries.items():
        base = None if name == baseline else summaries[baseline]
        rows.append([name] + [_average_cell(summary[c], base[c] if base else None) for c in columns])
    return _markdown(["Model"] + [f"{c} (%)" for c in columns], rows)


def table_per_dataset(
    scores: dict[str, Scores], summaries, capabilities: list[Capability], benchmarks: tuple[Benchmark, ...]
) -> str:
    """Tables XII/XIII: each dataset's score and each capability's average (OCRBench as a count)."""
    header, picks = ["Model"], []
    for capability in capabilities:
        benches = [b for b in benchmarks if b.capability == capability]
        if not benches:
            continue
        header += [b.label for b in benches] + [f"{capability.value} Average"]
        picks += [b.key for b in benches] + [capability.value]
    rows = []
    for name, variant in scores.items():
        row = [name]
        for pick in picks:
            row.append(_average_cell(summaries[name][pick]) if pick in summaries[name] else _cell(variant.get(pick)))
        rows.append(row)
    return _markdown(header, rows)


def table_x(benchmarks: tuple[Benchmark, ...]) -> str:
    rows = [
        [
            b.capability.value,
            b.name + (" ★" if b.ablation else ""),
            b.split,
            b.description,
            b.answer,
            b.image.value,
            b.resolution.value,
            b.resolution_stats,
            b.aspect_stats,
            b.samples,
            f"`{b.task}`" + (" (judge)" if b.judged else ""),
        ]
        for b in benchmarks
    ]
    return _markdown(
        [
            "Capability",
            "Dataset",
            "Split",
            "Description",
            "Answer",
            "Image",
            "Resolution",
            "Res. min/max/mean",
            "Aspect min/max/mean",
            "# Samples",
            "lmms-eval task",
        ],
        rows,
    )


def write_csvs(
    out: Path, scores: dict[str, Scores], summaries, baseline: str, benchmarks: tuple[Benchmark, ...]
) -> None:
    with open(out / "scores.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["benchmark", "name", "split", "variant", "score", "delta_vs_" + baseline])
        for bench in benchmarks:
            for name, variant in scores.items():
                value, base = variant.get(bench.key), scores[baseline].get(bench.key)
                delta = None if value is None or base is None else value - base
                writer.writerow([bench.key, bench.name, bench.split, name, _cell(value), _cell(delta)])
    with open(out / "categories.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["category", "variant", "average", "datasets_present", "datasets_total", "delta_vs_" + baseline]
        )
        for column in next(iter(summaries.values())):
            for name, summary in summaries.items():
                avg, base = summary[column], summaries[baseline][column]
                delta = None if avg.value is None or base.value is None else avg.value - base.value
                writer.writerow([column, name, _cell(avg.value), avg.present, avg.total, _cell(delta)])


def plot(out: Path, summaries: dict[str, dict[str, Average]], baseline: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = list(next(iter(summaries.values())))
    width = 0.8 / max(1, len(summaries))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 8), sharex=True)
    for index, (name, summary) in enumerate(summaries.items()):
        xs = [c + index * width for c in range(len(columns))]
        values = [summary[c].value for c in columns]
        top.bar(xs, [v if v is not None else 0 for v in values], width, label=name)
        deltas = [
            None if v is None or summaries[baseline][c].value is None else v - summaries[baseline][c].value
            for v, c in zip(values, columns)
        ]
        bottom.bar(xs, [d if d is not None else 0 for d in deltas], width, label=name)
    top.set_ylabel("average score (%)")
    top.set_title("Zero-shot averages (Table XI); missing categories drawn as empty")
    bottom.set_ylabel(f"delta vs {baseline} (points)")
    bottom.axhline(0, color="black", linewidth=0.8)
    bottom.set_xticks([c + 0.4 - width / 2 for c in range(len(columns))], columns, rotation=30)
    tallest = max((s[c].value or 0) for s in summaries.values() for c in columns)
    top.set_ylim(0, tallest * 1.25 + 1)  # headroom for the legend
    top.legend(ncol=len(summaries), loc="upper center")
    fig.tight_layout()
    path = out / "report.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _document(scores, summaries, missing, baseline: str, benchmarks, title: str, intervals: str) -> str:
    parts = [
        f"# {title}",
        "",
        "## Table XI: overall and category averages (OCRBench / 10; MM-LiveBench's two months count as two)",
        "",
        table_xi(summaries, baseline),
        "",
        "## Per task, with 95% intervals",
        "",
        intervals,
        "",
        "## Table XII: General and Text-Rich",
        "",
        table_per_dataset(scores, summaries, [Capability.GENERAL, Capability.TEXT_RICH], benchmarks),
        "",
        "## Table XIII: Knowledge and Real-World",
        "",
        table_per_dataset(scores, summaries, [Capability.KNOWLEDGE, Capability.REAL_WORLD], benchmarks),
        "",
        "## Missing datasets",
        "",
        *[f"- {name}: {', '.join(labels) if labels else 'none'}" for name, labels in missing.items()],
        "",
        "## Table X: datasets",
        "",
        table_x(benchmarks),
        "",
    ]
    return "\n".join(parts)


def build_report(
    variants: dict[str, list[str]],
    out: str | Path,
    baseline: str | None = None,
    *,
    benchmarks: tuple[Benchmark, ...] = BENCHMARKS,
    title: str = "Zero-shot results",
    chance: dict[str, float] | None = None,
) -> dict:
    """Read every variant's results, write report.md, the CSVs and report.png into ``out`` (with per-document
    samples also intervals.csv and intervals.png; ``chance``, task -> fraction, is drawn there)."""
    if not variants:
        raise ValueError("give at least one --variant NAME=PATH")
    baseline = baseline or next(iter(variants))
    if baseline not in variants:
        raise ValueError(f"--baseline {baseline!r} is not one of the variants {list(variants)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scores = {name: collect_scores(paths, benchmarks) for name, paths in variants.items()}
    summaries = {name: summarise(variant, benchmarks) for name, variant in scores.items()}
    missing = {name: [b.label for b in benchmarks if b.key not in variant] for name, variant in scores.items()}
    comparisons = compare.compare(variants, benchmarks, baseline)
    intervals = compare.markdown(comparisons, baseline)
    (out / "report.md").write_text(_document(scores, summaries, missing, baseline, benchmarks, title, intervals))
    write_csvs(out, scores, summaries, baseline, benchmarks)
    plot(out, summaries, baseline)
    if comparisons:
        compare.write_csv(out / "intervals.csv", comparisons, baseline)
        compare.plot(out / "intervals.png", comparisons, chance)
    return {"scores": scores, "summaries": summaries, "missing": missing, "comparisons": comparisons, "out": out}


def _parse_variant(text: str) -> tuple[str, list[str]]:
    name, sep, paths = text.partition("=")
    if not sep or not name or not paths:
        raise argparse.ArgumentTypeError(f"--variant takes NAME=PATH[,PATH...], got {text!r}")
    return name, paths.split(",")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--variant",
        type=_parse_variant,
        action="append",
        required=True,
        help="NAME=PATH[,PATH...]: results files or directories of one variant (repeat)",
    )
    parser.add_argument("--baseline", help="variant the deltas are taken against (default: the first)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--benchmarks", help="JSON benchmark set instead of the paper's (e.g. the playground's)")
    parser.add_argument("--title", default="Zero-shot results")
    args = parser.parse_args(argv)
    benchmarks = load_benchmarks(args.benchmarks) if args.benchmarks else BENCHMARKS
    report = build_report(dict(args.variant), args.out, args.baseline, benchmarks=benchmarks, title=args.title)
    print((report["out"] / "report.md").read_text().split("## Table XII")[0])
    print(f"wrote {report['out']}/report.md, scores.csv, categories.csv, report.png")


if __name__ == "__main__":
    main()
