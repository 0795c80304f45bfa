"""The ManagerTower CPU demo end to end, reduced: data -> experts -> VLP, VQA and retrieval through the train entry
-> held-out scores, intervals, the paper's tables, the weight figures and the checks."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Minutes of training in the module fixture: `early` schedules the module first (pyproject's loadscope hands it to
# one xdist worker as a unit), as for the LLaVA demo.
pytestmark = pytest.mark.early
VARIANTS = {"bridgetower": "BridgeTower", "managertower": "ManagerTower-AAUM"}  # the reduced run's two


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    work = tmp_path_factory.mktemp("managertower_demo")
    done = subprocess.run(
        [sys.executable, "-m", "playground.managertower", "--reduced", "--work", str(work)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return work, done


def _finished(done: subprocess.CompletedProcess) -> None:
    # First in every test, so that a failed demo shows its own output rather than a missing file.
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_reduced_demo_passes_its_checks(demo):
    _work, done = demo
    _finished(done)
    assert "[ok] expert CLIP: held-out retrieval" in done.stdout
    assert "[ok] expert RoBERTa: held-out masked-token accuracy" in done.stdout
    for label in VARIANTS.values():
        assert f"[ok] {label} pre-training: loss fell" in done.stdout
        assert f"[ok] {label} held-out VQA" in done.stdout
        assert f"[ok] {label} retrieval R_mean" in done.stdout
    assert "FAILED" not in done.stdout


def test_every_variant_has_results_with_counts(demo):
    work, done = demo
    _finished(done)
    for key in VARIANTS:
        vqa = json.loads((work / "runs" / key / "vqa" / "results.json").read_text())
        assert vqa["name"] == key and vqa["task"] == "vqa" and vqa["n"]["val"] > 0
        assert 0 <= vqa["metrics"]["val"] <= 100
        f30k = json.loads((work / "runs" / key / "f30k" / "results.json").read_text())
        assert f30k["name"] == key and 0 <= f30k["metrics"]["r_mean"] <= 100
        assert (work / "runs" / key / "pretrain" / "backbone" / "model.safetensors").is_file()
    scores = _csv(work / "report" / "scores.csv")
    assert {row["variant"] for row in scores} == set(VARIANTS.values())
    assert all(int(row["n_questions"]) > 0 for row in scores)


def test_report_intervals_and_tables(demo):
    work, done = demo
    _finished(done)
    report = work / "report"
    text = (report / "report.md").read_text()
    assert "## Held-out VQA" in text and "## Retrieval" in text and "paired bootstrap" in text
    assert all(f"| {label} |" in text for label in VARIANTS.values())
    assert "Table III" in text  # managertower.report's table, filled by the retrieval runs
    assert (report / "intervals.png").stat().st_size > 10_000
    assert (report / "paper_tables" / "report.md").is_file() and (report / "paper_tables" / "table3.csv").is_file()
    rows = _csv(report / "intervals.csv")
    assert all(float(r["low"]) <= float(r["value"]) <= float(r["high"]) and int(r["n"]) > 0 for r in rows)
    scored = {r["variant"] for r in rows if r["kind"] == "score"}
    assert scored == set(VARIANTS.values())
    assert {r["variant"] for r in rows if r["kind"].startswith("delta")} == {"ManagerTower-AAUM"}
    assert {r["metric"] for r in rows if r["kind"] == "score"} >= {"vqa_all", "vqa_shape", "ir1", "tr1"}


def test_weight_figures_of_the_manager_variant(demo):
    work, done = demo
    _finished(done)
    analysis = work / "report" / "analysis" / "managertower"
    weights = _csv(analysis / "manager_weights.csv")
    assert {row["modality"] for row in weights} == {"text", "image"}
    assert {int(row["layer"]) for row in weights} == {1, 2, 3}  # one manager per co-attention layer
    assert {row["manager"] for row in weights} == {"saum", "aaum"}  # AAUM's layer 1 is a SAUM
    assert all(int(row["tokens"]) > 0 for row in weights)
    assert _csv(analysis / "manager_similarity.csv")
    for name in ("manager_weights.png", "manager_similarity.png"):
        assert (analysis / name).stat().st_size > 10_000, name
    assert not (work / "report" / "analysis" / "bridgetower").exists()  # no managers to analyse


def test_rerun_reuses_every_finished_stage(demo):
    work, done = demo
    _finished(done)
    weights = work / "runs" / "managertower" / "vqa" / "model.safetensors"
    written, report = weights.stat().st_mtime_ns, (work / "report" / "report.md").read_text()
    again = subprocess.run(
        [sys.executable, "-m", "playground.managertower", "--reduced", "--work", str(work)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    _finished(again)
    assert "[managertower demo] bridgetower:" not in again.stdout  # a job that runs is listed with its seconds
    assert weights.stat().st_mtime_ns == written
    # The same numbers from the same weights: only the wall time differs.
    rerun = (work / "report" / "report.md").read_text()
    assert rerun.split("Wall time")[0] == report.split("Wall time")[0]
