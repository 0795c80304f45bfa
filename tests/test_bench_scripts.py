"""Benchmark scripts run at tiny sizes and print their tables (no timing assertions)."""

import importlib.util
from pathlib import Path


def _load(name: str):
    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_manager_overhead_prints_ratio_table(capsys):
    rows = _load("manager_overhead").main(["--sizes", "tiny", "--reps", "1"])
    out = capsys.readouterr().out
    assert "Baseline+Manager / Baseline" in out and "+Grid+Manager / +Grid" in out
    assert len(rows) == 4 and all(r[4] > 0 for r in rows)


def test_preprocessing_bench_times_transformers_and_checks_pixels(capsys):
    rows = _load("preprocessing").main(["--sizes", "200x150,500x120", "--reps", "1"])
    out = capsys.readouterr().out
    assert "| 200x150 | 2 | transformers PIL |" in out and "median speed-up over all sizes" in out
    assert all(row[-1] == "0.0e+00" for row in rows)  # identical pixels, or the speed-up would mean nothing
    assert all(float(row[5].removeprefix("x")) > 0 for row in rows)
