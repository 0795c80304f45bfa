"""The demo's report: every variant's held-out VQA score and retrieval recalls with 95% intervals, the differences
from BridgeTower, the paper's tables from the ``results.json`` files, and the checks the demo exits on.

Intervals: Wilson per score (a VQA soft score is scored like a proportion, as ``managertower.report`` does: close,
not exact); paired bootstrap over the held-out questions for each difference (``vlcommon.intervals``). Files in
``report/``: ``report.md``, ``scores.csv`` (one row per variant), ``intervals.csv`` (one row per interval),
``intervals.png``, ``paper_tables/`` (``managertower.report``) and ``analysis/<variant>/`` (the weight figures).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from managertower.report import TABLES, build_report, build_table, group_runs, load_runs, render_table
from playground.managertower.scoring import KINDS, Scores
from playground.managertower.settings import BASELINE, VARIANTS, TwoTowerDemoConfig
from playground.plots import loss_fell
from vlcommon.intervals import Interval, paired_bootstrap, wilson
from vlcommon.plotting import plt, save_figure

PARTS = ("all", *KINDS.values())  # the VQA score over every question, then per kind of question


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    """One variant's numbers: held-out VQA scores, ``results.json`` metrics, the pre-training losses."""

    key: str
    vqa: Scores
    vqa_seen: float  # the train entry's VQA val score: questions it also trained on
    f30k: dict[str, float]
    pretrain_losses: list[float]
    parts: dict[str, dict[str, tuple[float, float]]]  # task -> loss part -> (first, last) logged value

    @property
    def label(self) -> str:
        return VARIANTS[self.key].label


@dataclass(frozen=True, kw_only=True, slots=True)
class Row:
    variant: str
    metric: str
    kind: str  # "score", "baseline" or "delta vs BridgeTower"
    interval: Interval
    n: int


def _scores(scores: Scores, part: str) -> list[float]:
    return [s for s, k in zip(scores.scores, scores.kinds, strict=True) if part in ("all", k)]


def _wilson(values: list[float]) -> Interval:
    return wilson(sum(values), len(values)).scaled(100)


def interval_rows(
    cfg: TwoTowerDemoConfig, outcomes: list[Outcome], baselines: dict[str, Scores], bounds: dict
) -> list[Row]:
    rows = [
        Row(
            variant=name,
            metric=f"vqa_{part}",
            kind="baseline",
            interval=_wilson(_scores(s, part)),
            n=len(_scores(s, part)),
        )
        for name, s in baselines.items()
        for part in PARTS
    ]
    base = next((o for o in outcomes if o.key == BASELINE), None)
    for o in outcomes:
        for part in PARTS:
            values = _scores(o.vqa, part)
            rows.append(
                Row(variant=o.label, metric=f"vqa_{part}", kind="score", interval=_wilson(values), n=len(values))
            )
            if base is not None and o is not base:
                delta = paired_bootstrap(values, _scores(base.vqa, part), seed=cfg.seed).scaled(100)
                rows.append(
                    Row(
                        variant=o.label,
                        metric=f"vqa_{part}",
                        kind=f"delta vs {base.label}",
                        interval=delta,
                        n=len(values),
                    )
                )
        for metric, n in (("ir1", bounds["texts"]), ("tr1", bounds["images"])):
            rows.append(
                Row(
                    variant=o.label,
                    metric=metric,
                    kind="score",
                    interval=wilson(round(o.f30k[metric] * n / 100), n).scaled(100),
                    n=n,
                )
            )
    return rows


def write_csvs(out: Path, outcomes: list[Outcome], rows: list[Row]) -> None:
    with open(out / "intervals.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["variant", "metric", "kind", "value", "low", "high", "n", "significant"])
        for r in rows:
            i = r.interval
            sign = i.significant if r.kind.startswith("delta") else ""
            writer.writerow([r.variant, r.metric, r.kind, f"{i.value:.4f}", f"{i.low:.4f}", f"{i.high:.4f}", r.n, sign])
    with open(out / "scores.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "variant",
                "preset",
                *(f"vqa_{p}" for p in PARTS),
                "vqa_val_seen",
                "ir1",
                "tr1",
                "r_mean",
                "n_questions",
                "pretrain_loss_first",
                "pretrain_loss_last",
            ]
        )
        for o in outcomes:
            parts = [f"{100 * o.vqa.mean(None if p == 'all' else p):.4f}" for p in PARTS]
            f30k = [o.f30k[metric] for metric in ("ir1", "tr1", "r_mean")]
            losses = [o.pretrain_losses[0], o.pretrain_losses[-1]]
            writer.writerow([o.label, VARIANTS[o.key].preset, *parts, o.vqa_seen, *f30k, len(o.vqa.scores), *losses])


def plot(out: Path, outcomes: list[Outcome], rows: list[Row], bounds: dict) -> Path:
    """Three panels: held-out VQA (Wilson, with the blind baselines), its difference from BridgeTower (paired
    bootstrap), and retrieval R@1 (Wilson) with R_mean's chance and ceiling."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    labels = [o.label for o in outcomes]

    def bars(axis, picked: list[Row], offset: float = 0.0, **style) -> None:
        xs = [labels.index(r.variant) + offset for r in picked]
        values = [r.interval.value for r in picked]
        below = [r.interval.value - r.interval.low for r in picked]
        errors = [below, [r.interval.high - r.interval.value for r in picked]]
        axis.errorbar(xs, values, yerr=errors, fmt="o", capsize=4, **style)

    bars(axes[0], [r for r in rows if r.kind == "score" and r.metric == "vqa_all"], color="C0", label="VQA score")
    for colour, r in zip(("C3", "C2"), [r for r in rows if r.kind == "baseline" and r.metric == "vqa_all"]):
        axes[0].axhline(r.interval.value, color=colour, linestyle="--", label=r.variant)
    axes[0].set(title="Held-out VQA score (95% Wilson)", ylabel="%", ylim=(0, 100))
    deltas = [r for r in rows if r.kind.startswith("delta") and r.metric == "vqa_all"]
    bars(axes[1], deltas, color="C1")
    axes[1].axhline(0, color="grey", linewidth=1)
    axes[1].set(title=f"VQA difference from {VARIANTS[BASELINE].label} (95% paired bootstrap)", ylabel="points")
    bars(axes[2], [r for r in rows if r.metric == "ir1"], -0.1, color="C4", label="IR@1")
    bars(axes[2], [r for r in rows if r.metric == "tr1"], 0.1, color="C5", label="TR@1")
    axes[2].plot(range(len(outcomes)), [o.f30k["r_mean"] for o in outcomes], "s", color="k", label="R_mean")
    axes[2].axhline(bounds["chance"], color="C3", linestyle="--", label="R_mean chance")
    axes[2].axhline(bounds["ceiling"], color="C2", linestyle="--", label="R_mean ceiling")
    axes[2].set(title="Retrieval on the test split (95% Wilson)", ylabel="%", ylim=(0, 100))
    for axis in axes:
        axis.set_xticks(range(len(labels)), labels, rotation=15, fontsize=8)
        axis.set_xlim(-0.5, len(labels) - 0.5)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    return save_figure(fig, out / "intervals.png")


def paper_tables(cfg: TwoTowerDemoConfig, out: Path) -> list[str]:
    """``managertower.report`` over the runs (its files in ``paper_tables/``); the tables it fills, as markdown."""
    build_report([cfg.runs], out)
    groups = group_runs(load_runs([cfg.runs]))
    lines = []
    for spec in TABLES:
        table = build_table(spec, groups)
        if any(cell is not None for row in table.cells for cell in row):
            lines += [f"### {spec.title}", "", render_table(table), ""]
    return lines


def checks(outcomes: list[Outcome], baselines: dict[str, Scores], bounds: dict) -> list[tuple[str, bool]]:
    """What must hold at this scale, per variant: pre-training's loss fell, held-out VQA beats the commonest answer,
    retrieval's R_mean beats chance."""
    name, majority = next(iter(baselines.items()))
    lines = []
    for o in outcomes:
        losses = [(step, loss) for step, loss in enumerate(o.pretrain_losses)]
        lines.append(
            (
                f"{o.label} pre-training: loss fell ({o.pretrain_losses[0]:.2f} -> {o.pretrain_losses[-1]:.2f})",
                loss_fell(losses),
            )
        )
        score = 100 * o.vqa.mean()
        lines.append(
            (
                f"{o.label} held-out VQA {score:.1f} beats the {name} baseline {100 * majority.mean():.1f}",
                score > 100 * majority.mean(),
            )
        )
        r_mean = o.f30k["r_mean"]
        lines.append(
            (f"{o.label} retrieval R_mean {r_mean:.1f} beats chance {bounds['chance']:.1f}", r_mean > bounds["chance"])
        )
    return lines
