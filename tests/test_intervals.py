"""Confidence intervals against hand-computed values, and the report's comparison from lmms-eval sample logs."""

from __future__ import annotations

import json
import math

import pytest

from llava.eval.benchmarks import load_benchmarks
from llava.eval.compare import compare, markdown
from llava.eval.intervals import sample_scores
from vlcommon.intervals import Interval, paired_bootstrap, wilson


@pytest.mark.parametrize(
    "k,n,low,high",
    [
        # By hand: centre (p + z^2/2n) / (1 + z^2/n), half-width z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n).
        (8, 10, 0.49016, 0.94331),
        (0, 10, 0.0, 0.27753),
        (10, 10, 0.72247, 1.0),
        (50, 100, 0.40383, 0.59617),
        (1, 200, 0.00088, 0.02775),
    ],
)
def test_wilson_matches_the_formula_worked_by_hand(k, n, low, high):
    interval = wilson(k, n)
    assert interval.value == k / n
    assert interval.low == pytest.approx(low, abs=5e-5) and interval.high == pytest.approx(high, abs=5e-5)


def test_wilson_refuses_impossible_counts():
    with pytest.raises(ValueError, match="n=0"):
        wilson(0, 0)
    with pytest.raises(ValueError, match="successes=11"):
        wilson(11, 10)


def test_paired_bootstrap_degenerate_cases_are_exact():
    assert paired_bootstrap([1, 0, 1], [1, 0, 1]) == Interval(0.0, 0.0, 0.0)
    assert paired_bootstrap([1.0] * 20, [0.0] * 20) == Interval(1.0, 1.0, 1.0)
    shifted = paired_bootstrap([0.5, 0.7, 0.2], [0.25, 0.45, -0.05])  # every difference is 0.25
    assert shifted.value == pytest.approx(0.25) and shifted.low == pytest.approx(0.25)
    assert shifted.high == pytest.approx(0.25) and shifted.significant


def test_paired_bootstrap_width_is_the_normal_one_for_many_documents():
    # 400 documents, a wins on 60, b on 20, the rest tie: mean difference 0.1, per-document sd of the difference
    # sqrt(80/400 - 0.1^2) = 0.43589, so the normal 95% half-width is 1.96 * 0.43589 / 20 = 0.04272.
    a = [1] * 60 + [0] * 20 + [1] * 100 + [0] * 220
    b = [0] * 60 + [1] * 20 + [1] * 100 + [0] * 220
    interval = paired_bootstrap(a, b, resamples=20_000)
    assert interval.value == pytest.approx(0.1)
    half = 1.959964 * math.sqrt(80 / 400 - 0.01) / math.sqrt(400)
    assert interval.low == pytest.approx(0.1 - half, abs=0.006)
    assert interval.high == pytest.approx(0.1 + half, abs=0.006)
    assert interval.significant


def test_paired_bootstrap_refuses_unpaired_lists():
    with pytest.raises(ValueError, match="one length"):
        paired_bootstrap([1, 0], [1])


def _samples(folder, task, correct):
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"doc_id": i, "exact_match": float(c), "target": "x"}) for i, c in enumerate(correct)]
    (folder / f"20261201_000000_samples_{task}.jsonl").write_text("\n".join(lines) + "\n")


def test_compare_reads_sample_logs_and_marks_significant_deltas(tmp_path):
    benchmarks = [
        {"key": "t_a", "name": "A", "split": "test", "capability": "General", "image": "Natural",
         "resolution": "Low", "task": "task_a", "metric": "exact_match,none", "scale": 100},
    ]  # fmt: skip
    (tmp_path / "benchmarks.json").write_text(json.dumps(benchmarks))
    benches = load_benchmarks(tmp_path / "benchmarks.json")
    _samples(tmp_path / "base", "task_a", [1] * 50 + [0] * 150)
    _samples(tmp_path / "better", "task_a", [1] * 150 + [0] * 50)
    _samples(tmp_path / "same", "task_a", [0] * 150 + [1] * 50)
    variants = {name: [str(tmp_path / name)] for name in ("base", "better", "same")}
    [row] = compare(variants, benches, "base")
    assert row.documents == 200
    assert row.accuracy["base"] == wilson(50, 200).scaled(100)
    assert row.delta["better"].value == pytest.approx(50.0) and row.delta["better"].significant
    assert row.delta["same"].value == pytest.approx(0.0) and not row.delta["same"].significant
    table = markdown([row], "base")
    assert "**+50.0 [" in table and "| +0.0 [" in table
    assert sample_scores([tmp_path / "missing"], "task_a", "exact_match") == {}
    with pytest.raises(ValueError, match="no 'anls' score"):
        sample_scores([tmp_path / "base"], "task_a", "anls")
