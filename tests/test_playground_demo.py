"""The embedded default end to end, reduced: data -> three stages through the stage scripts -> lmms-eval -> report."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The demo is minutes of training: the module fixture runs it once, as pyproject's addopts (--dist loadscope) hand
# the whole module to one xdist worker, and `early` schedules it first.
pytestmark = pytest.mark.early
NAMES = ("Baseline", "+Grid+Manager")  # the reduced demo's variants: every code path (grid, managers) once


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    pytest.importorskip("lmms_eval")
    work = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [sys.executable, "-m", "playground.demo", "--reduced", "--work", str(work)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=2700,
    )
    return work, done


def _assert_finished(done: subprocess.CompletedProcess) -> None:
    # Checked first by every test, so a failed demo shows its own output instead of a missing report file.
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]


def test_reduced_demo_passes_its_own_checks(demo):
    _work, done = demo
    _assert_finished(done)
    # The pre-trained experts beat their probes' chance; every stage of every variant reported its loss falling;
    # each variant beat chance by 15 points on the background task and on another task; the bar is reported per
    # variant.
    assert "[ok] stage 0 tower: held-out retrieval" in done.stdout
    assert "[ok] stage 0 LLM: held-out perplexity fell" in done.stdout
    for name in NAMES:
        for stage in ("stage1", "stage1_5", "stage2"):
            assert f"[ok] {name} {stage}: loss fell" in done.stdout
        assert f"[ok] {name} background: +" in done.stdout
        assert f"[ok] {name} best other task: playground_" in done.stdout
        assert f"{name}: +15 points on " in done.stdout and "the bar of 5" in done.stdout
    assert "FAILED" not in done.stdout


def test_report_tables_and_plots_exist(demo):
    work, done = demo
    _assert_finished(done)
    report = work / "report"
    text = (report / "report.md").read_text()
    assert "## Table XI" in text and all(f"| {name} |" in text for name in NAMES)
    with open(report / "scores.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["variant"] for row in rows} == set(NAMES)
    assert all(row["score"] != "-" for row in rows)  # every task of every variant was scored
    for name in ("report.png", "loss_curves.png", "manager_weights.png", "intervals.png"):
        assert (report / name).stat().st_size > 10_000, name
    assert (report / "probe_and_manager_weights.png").stat().st_size > 10_000
    # Every accuracy and every delta against the Baseline carries a 95% interval.
    assert "## Per task, with 95% intervals" in text and "paired bootstrap" in text
    with open(report / "intervals.csv") as handle:
        intervals = list(csv.DictReader(handle))
    assert {row["variant"] for row in intervals if row["kind"] == "accuracy"} == set(NAMES)
    assert all(float(row["low"]) <= float(row["value"]) <= float(row["high"]) for row in intervals)
    assert {row["variant"] for row in intervals if row["kind"].startswith("delta")} == {"+Grid+Manager"}


def test_analysis_figures_of_the_trained_variants(demo):
    work, done = demo
    _assert_finished(done)
    analysis = work / "report" / "analysis"
    summary = json.loads((analysis / "summary.json").read_text())
    assert list(summary["checkpoints"]) == list(NAMES)
    assert all(entry["samples"] > 0 for entry in summary["checkpoints"].values())
    for metric in ("layer_similarity", "attention_entropy", "head_kl", "attention_distance", "manager_weights"):
        assert (analysis / f"{metric}.png").stat().st_size > 10_000, metric
        with open(analysis / f"{metric}.csv") as handle:
            variants = {row["variant"] for row in csv.DictReader(handle)}
        assert variants == ({"+Grid+Manager"} if metric == "manager_weights" else set(NAMES)), metric


def test_training_set_fit_is_reported_per_variant_and_kind(demo):
    work, done = demo
    _assert_finished(done)
    fit = json.loads((work / "report" / "fit.json").read_text())
    assert list(fit) == list(NAMES)
    chance = json.loads((work / "data" / "tasks" / "chance.json").read_text())
    for name, kinds in fit.items():
        assert all(entry["answers"] > 0 for entry in kinds.values()), name
        # Background is in every stage-2 conversation and learned (the held-out check): it fits its training images.
        assert kinds["background"]["accuracy"] >= chance["playground_background"] + 0.15, (name, kinds["background"])
    assert "Training-set answer accuracy" in done.stdout
