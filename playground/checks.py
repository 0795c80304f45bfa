"""What the demo claims, checked on its own outputs, and the bar it reports.

Checks (the demo exits 1 when one fails):
* the pre-trained tower beats chance on held-out retrieval, and the pre-trained LLM's held-out perplexity fell;
* every stage's training loss fell, for every variant;
* every variant beats chance by ``MARGIN`` points on the background task and on at least one other task.

Reported, with the tasks that meet it, not checked (the tiny models do not reach it; docs/playground.md): the bar of
the full demo, ``MARGIN`` points on at least ``BAR_TASKS`` of the seven tasks. Chance is the better of uniform
guessing and always giving the commonest answer (``chance.json``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playground.plots import loss_fell, loss_history

TRIVIAL_TASK = "playground_background"  # in every patch of every image: the check that images are used at all
MARGIN = 15.0  # points above chance
BAR_TASKS = 5  # of the seven


def expert_checks(reports: dict[str, dict]) -> list[tuple[str, bool]]:
    retrieval = reports["tower"]["after"]["retrieval"]
    before, after = reports["llm"]["before"]["perplexity"], reports["llm"]["after"]["perplexity"]
    tower = f"{100 * retrieval['accuracy']:.1f}% beats chance {100 * retrieval['chance']:.1f}%"
    return [
        (f"stage 0 tower: held-out retrieval {tower}", retrieval["accuracy"] > retrieval["chance"]),
        (f"stage 0 LLM: held-out perplexity fell ({before:.0f} -> {after:.2f})", after < before),
    ]


def margins(scores: dict[str, float], chance: dict[str, float]) -> dict[str, float]:
    """Points above chance per task (missing scores count as 0 %)."""
    return {task: (scores.get(task) or 0.0) - 100 * level for task, level in chance.items()}


def variant_checks(
    names: dict[str, str], stage_dir: Callable[[str, str], Path], stages: tuple[str, ...], result: dict, chance: dict
) -> list[tuple[str, bool]]:
    """``names``: variant key -> label; ``stage_dir(variant, stage)``: where that stage's run lies."""
    lines = []
    for variant, label in names.items():
        for stage in stages:
            lines.append((f"{label} {stage}: loss fell", loss_fell(loss_history(stage_dir(variant, stage)))))
        above = margins(result["scores"][label], chance)
        background = f"{label} background: {above[TRIVIAL_TASK]:+.1f} points vs chance (needs +{MARGIN:.0f})"
        lines.append((background, above[TRIVIAL_TASK] >= MARGIN))
        task, margin = max(((t, m) for t, m in above.items() if t != TRIVIAL_TASK), key=lambda item: item[1])
        lines.append((f"{label} best other task: {task} {margin:+.1f} points vs chance (needs +{MARGIN:.0f})",
                      margin >= MARGIN))  # fmt: skip
    return lines


def bar(labels: list[str], result: dict, chance: dict) -> list[str]:
    """Per variant, the tasks at least ``MARGIN`` points above chance, against the bar of ``BAR_TASKS``."""
    lines = []
    for label in labels:
        met = [t for t, m in margins(result["scores"][label], chance).items() if m >= MARGIN]
        verdict = "meets" if len(met) >= BAR_TASKS else "misses"
        lines.append(f"{label}: +{MARGIN:.0f} points on {len(met)}/{len(chance)} tasks ({', '.join(met) or 'none'}), "
                     f"{verdict} the bar of {BAR_TASKS}")  # fmt: skip
    return lines
