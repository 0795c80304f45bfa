"""The report tool on result files holding the paper's own per-dataset numbers (Tables XII-XIII)."""

from __future__ import annotations

import csv
import json
import shutil
import statistics
from pathlib import Path

import pytest

from llava.eval.benchmarks import BENCHMARKS, judged_tasks, offline_tasks
from llava.eval.report import build_report

FIXTURES = Path(__file__).parent / "fixtures" / "paper_results"
VARIANTS = {"Baseline": "baseline", "+Manager": "manager", "+Grid": "grid", "+Grid+Manager": "grid_manager"}

# Tables XII-XIII, typed in from the paper (OCRBench as a count out of 1000).
PAPER = {
    "Baseline": {
        "vqav2": 73.90,
        "okvqa": 37.18,
        "gqa": 57.66,
        "mmvet": 21.40,
        "seed": 61.50,
        "realworldqa": 50.98,
        "textvqa": 57.56,
        "chartqa": 54.32,
        "docvqa": 51.40,
        "infovqa": 27.30,
        "ocrbench": 470.00,
        "ai2d": 52.95,
        "scienceqa": 65.25,
        "mmmu": 31.78,
        "mathvista": 34.20,
        "imagedc": 89.18,
        "livebench_2407": 38.76,
        "livebench_2409": 41.50,
        "llava_wild": 68.40,
        "llava_wilder": 50.00,
    },
    "+Manager": {
        "vqav2": 74.18,
        "okvqa": 37.28,
        "gqa": 57.89,
        "mmvet": 22.40,
        "seed": 65.33,
        "realworldqa": 51.11,
        "textvqa": 59.00,
        "chartqa": 56.24,
        "docvqa": 52.49,
        "infovqa": 27.31,
        "ocrbench": 476.00,
        "ai2d": 53.89,
        "scienceqa": 69.21,
        "mmmu": 33.11,
        "mathvista": 34.30,
        "imagedc": 89.44,
        "livebench_2407": 39.74,
        "livebench_2409": 43.27,
        "llava_wild": 69.00,
        "llava_wilder": 50.70,
    },
    "+Grid": {
        "vqav2": 74.65,
        "okvqa": 36.13,
        "gqa": 57.95,
        "mmvet": 24.00,
        "seed": 61.08,
        "realworldqa": 52.55,
        "textvqa": 65.14,
        "chartqa": 59.32,
        "docvqa": 68.55,
        "infovqa": 38.61,
        "ocrbench": 547.00,
        "ai2d": 53.76,
        "scienceqa": 69.36,
        "mmmu": 30.78,
        "mathvista": 36.10,
        "imagedc": 89.73,
        "livebench_2407": 41.28,
        "livebench_2409": 43.80,
        "llava_wild": 68.80,
        "llava_wilder": 51.20,
    },
    "+Grid+Manager": {
        "vqav2": 74.90,
        "okvqa": 37.99,
        "gqa": 58.66,
        "mmvet": 25.60,
        "seed": 65.14,
        "realworldqa": 52.81,
        "textvqa": 65.82,
        "chartqa": 60.96,
        "docvqa": 70.90,
        "infovqa": 40.70,
        "ocrbench": 577.00,
        "ai2d": 53.95,
        "scienceqa": 72.43,
        "mmmu": 31.22,
        "mathvista": 37.00,
        "imagedc": 89.95,
        "livebench_2407": 41.89,
        "livebench_2409": 45.13,
        "llava_wild": 69.30,
        "llava_wilder": 52.20,
    },
}
TABLE_IV_OVERALL = {"Baseline": 50.61, "+Manager": 51.67, "+Grid": 53.87, "+Grid+Manager": 55.21}
TABLE_XI = {  # the columns that do follow from the per-dataset numbers
    "Text-Rich": {"Baseline": 47.52, "+Manager": 48.53, "+Grid": 57.26, "+Grid+Manager": 59.22},
    "Knowledge": {"Baseline": 46.05, "+Manager": 47.63, "+Grid": 47.50, "+Grid+Manager": 48.65},
}
TABLE_XI_GENERAL = {"Baseline": 48.72, "+Manager": 49.59, "+Grid": 49.07, "+Grid+Manager": 50.35}
GENERAL = ("vqav2", "okvqa", "gqa", "mmvet", "seed", "realworldqa")


def _report(tmp_path, variants=None):
    variants = variants or {name: [str(FIXTURES / folder)] for name, folder in VARIANTS.items()}
    return build_report(variants, tmp_path / "report")


def test_scores_are_read_in_the_papers_units(tmp_path):
    report = _report(tmp_path)
    for name, expected in PAPER.items():
        assert report["scores"][name] == pytest.approx(expected, abs=1e-6)


def test_overall_reproduces_table_iv_and_text_rich_knowledge_reproduce_table_xi(tmp_path):
    summaries = _report(tmp_path)["summaries"]
    for name, overall in TABLE_IV_OVERALL.items():
        assert summaries[name]["Overall"].value == pytest.approx(overall, abs=0.006)
        assert summaries[name]["Overall"].present == 20
    for column, expected in TABLE_XI.items():
        for name, value in expected.items():
            assert summaries[name][column].value == pytest.approx(value, abs=0.006)


def test_general_is_computed_honestly_not_copied_from_table_xi(tmp_path):
    summaries = _report(tmp_path)["summaries"]
    for name, paper_table_xi in TABLE_XI_GENERAL.items():
        honest = statistics.mean(PAPER[name][key] for key in GENERAL)
        assert summaries[name]["General"].value == pytest.approx(honest, abs=1e-9)
        assert abs(honest - paper_table_xi) > 1.0  # the paper's General column does not follow from Table XII


def test_missing_dataset_is_shown_missing_and_not_averaged_as_zero(tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(FIXTURES / "baseline", partial)
    judged = json.loads((partial / "judged_results.json").read_text())
    del judged["results"]["mmvet"]
    (partial / "judged_results.json").write_text(json.dumps(judged))
    report = _report(tmp_path, {"Baseline": [str(FIXTURES / "baseline")], "Partial": [str(partial)]})
    overall = report["summaries"]["Partial"]["Overall"]
    expected = statistics.mean(v / (10 if k == "ocrbench" else 1) for k, v in PAPER["Baseline"].items() if k != "mmvet")
    assert (overall.present, overall.total) == (19, 20)
    assert overall.value == pytest.approx(expected, abs=1e-9)
    text = (report["out"] / "report.md").read_text()
    assert "* (19/20)" in text and "MMVet test" in text.split("## Missing datasets")[1]
    rows = list(csv.DictReader((report["out"] / "scores.csv").read_text().splitlines()))
    mmvet = next(r for r in rows if r["benchmark"] == "mmvet" and r["variant"] == "Partial")
    assert mmvet["score"] == "-" and mmvet["delta_vs_Baseline"] == "-"


def test_outputs_written_with_deltas(tmp_path):
    report = _report(tmp_path)
    out = report["out"]
    text = (out / "report.md").read_text()
    assert "51.67 (↑1.06)" in text and "55.21 (↑4.60)" in text
    assert (out / "report.png").stat().st_size > 10_000
    rows = list(csv.DictReader((out / "categories.csv").read_text().splitlines()))
    grid_overall = next(r for r in rows if r["category"] == "Overall" and r["variant"] == "+Grid")
    assert float(grid_overall["delta_vs_Baseline"]) == pytest.approx(3.26, abs=0.006)


def test_server_scores_file_adds_a_test_split_and_unknown_keys_fail(tmp_path):
    server = tmp_path / "server_results.json"
    server.write_text(json.dumps({"scores": {"docvqa": 80.0}}))
    with pytest.warns(UserWarning, match="docvqa = 80.00 replaces 51.40"):
        report = _report(tmp_path, {"A": [str(FIXTURES / "baseline"), str(server)]})
    assert report["scores"]["A"]["docvqa"] == 80.0
    server.write_text(json.dumps({"scores": {"docvqa_test": 80.0}}))
    with pytest.raises(ValueError, match="unknown benchmark keys"):
        _report(tmp_path, {"A": [str(server)]})


def test_task_lists_split_judged_from_rule_scored():
    assert len(BENCHMARKS) == 20
    assert set(judged_tasks()) == {
        "mmvet",
        "mathvista_testmini_format",
        "dc100_en",
        "live_bench_2407",
        "live_bench_2409",
        "llava_in_the_wild",
        "llava_wilder_small",
    }
    assert len(offline_tasks()) == 13 and not set(offline_tasks()) & set(judged_tasks())


def test_judge_failures_are_caught():
    from llava.eval.summary import judge_failures

    failed = {
        "results": {
            "llava_in_the_wild": {"gpt_eval_llava_all,none": 100.0},
            "mathvista_testmini_format_local": {"llm_as_judge_eval,none": None},
            "mmvet": {"gpt_eval_score,none": 23.1},
            "ai2d": {"exact_match,flexible-extract": 0.5},
        }
    }
    problems = judge_failures(failed)
    assert len(problems) == 2
    assert problems[0].startswith("mathvista_testmini_format_local") and problems[1].startswith("llava_in_the_wild")
    assert judge_failures({"results": {"llava_in_the_wild": {"gpt_eval_llava_all,none": 68.4}}}) == []


def test_runner_uses_accelerate_launch_for_several_processes():
    from llava.eval.run import lmms_eval_command, requested_tasks

    command = lmms_eval_command(["--tasks", "ai2d"], 8)
    assert command[1:5] == ["-m", "accelerate.commands.launch", "--num_processes=8", "-m"]
    assert command[5:] == ["lmms_eval", "--tasks", "ai2d"]
    assert lmms_eval_command(["--tasks", "ai2d"], 1)[1:3] == ["-m", "lmms_eval"]
    assert requested_tasks(["--tasks", "ai2d,mmmu_*,x.yaml,gqa"]) == ["ai2d", "gqa"]
