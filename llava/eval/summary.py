"""From lmms-eval results files to the paper's per-dataset scores and category averages (Tables IV, XI-XIII).

* A score is the lmms-eval value times the benchmark's ``scale`` (percent; OCRBench as a count out of 1000).
* Averages divide OCRBench by 10 and count MM-LiveBench's two months as two datasets, so the overall score is the
  mean of 20 scores (Table IV).
* A missing dataset stays missing: an average is taken over the datasets present and says how many those are.
"""

from __future__ import annotations

import json
import math
import statistics
import warnings
from dataclasses import dataclass
from pathlib import Path

from llava.eval.benchmarks import BENCHMARKS, Benchmark, Capability, ImageCategory, Resolution

Scores = dict[str, float]  # benchmark key -> score in the paper's unit


@dataclass(frozen=True, slots=True)
class Average:
    value: float | None
    present: int
    total: int

    @property
    def complete(self) -> bool:
        return self.present == self.total


def result_files(paths: list[str | Path]) -> list[Path]:
    """Results files named directly or found under directories (``*_results.json``), oldest first."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(path.rglob("*_results.json"))
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"{path}: no such results file or directory")
    return sorted(set(files), key=lambda p: (p.stat().st_mtime, str(p)))


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def scores_from_file(path: Path, benches: tuple[Benchmark, ...] = BENCHMARKS) -> Scores:
    """Scores in one file: an lmms-eval results JSON, or ``{"scores": {key: value}}`` (e.g. server results for
    DocVQA/InfoVQA test) in the paper's unit."""
    data = json.loads(path.read_text())
    if "scores" in data:
        unknown = sorted(set(data["scores"]) - {b.key for b in benches})
        if unknown:
            raise ValueError(f"{path}: unknown benchmark keys {unknown}; known: {[b.key for b in benches]}")
        return {key: float(value) for key, value in data["scores"].items() if _number(value) is not None}
    if "results" not in data:
        raise ValueError(f"{path}: neither an lmms-eval results file ('results') nor a scores file ('scores')")
    scores = {}
    for bench in benches:
        for task in bench.task_names:
            value = _number(data["results"].get(task, {}).get(bench.metric))
            if value is not None:
                scores[bench.key] = value * bench.scale
    return scores


def judge_failures(data: dict) -> list[str]:
    """Scores that lmms-eval 0.7.3 produces when the GPT judge failed, instead of an error.

    LLaVA-W and LLaVA-Wilder score every failed judgement as ``[-1, -1]``, which aggregates to exactly 100.0; an
    aggregate of ``None`` means no judgement succeeded (MathVista at 0 %, LiveBench). MMVet and ImageDC count
    failures as 0 and cannot be told apart from wrong answers: read the judge log.
    """
    problems = []
    for bench in (b for b in BENCHMARKS if b.judged):
        for task in bench.task_names:
            if task not in data.get("results", {}):
                continue
            value = data["results"][task].get(bench.metric)
            if value is None or (bench.metric == "gpt_eval_llava_all,none" and value == 100.0):
                problems.append(f"{task}: {bench.metric} = {value!r} (the judge failed)")
    return problems


def collect_scores(paths: list[str | Path], benches: tuple[Benchmark, ...] = BENCHMARKS) -> Scores:
    """Merge the scores of several files; a later file wins, with a warning when it changes a value."""
    merged: Scores = {}
    for path in result_files(paths):
        for key, value in scores_from_file(path, benches).items():
            if key in merged and not math.isclose(merged[key], value):
                warnings.warn(
                    f"{path}: {key} = {value:.2f} replaces {merged[key]:.2f} from an older file", stacklevel=2
                )
            merged[key] = value
    return merged


def average(scores: Scores, keys: list[str], benches: tuple[Benchmark, ...] = BENCHMARKS) -> Average:
    divisors = {b.key: b.average_divisor for b in benches}
    values = [scores[key] / divisors[key] for key in keys if key in scores]
    return Average(statistics.fmean(values) if values else None, len(values), len(keys))


def category_keys(benches: tuple[Benchmark, ...] = BENCHMARKS) -> dict[str, list[str]]:
    """Column name -> benchmark keys, in Table XI's order; categories no benchmark belongs to are left out."""
    columns = {"Overall": [b.key for b in benches]}
    for enum, field in ((Capability, "capability"), (ImageCategory, "image"), (Resolution, "resolution")):
        for member in enum:
            keys = [b.key for b in benches if getattr(b, field) == member]
            if keys:
                columns[member.value] = keys
    return columns


def summarise(scores: Scores, benches: tuple[Benchmark, ...] = BENCHMARKS) -> dict[str, Average]:
    return {column: average(scores, keys, benches) for column, keys in category_keys(benches).items()}
