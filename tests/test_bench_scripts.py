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
