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
    assert [r[2] for r in rows] == ["train step", "prefill", "decode tokens/s"] * 2
    assert all(r[4] > 0 for r in rows)


def test_preprocessing_bench_times_transformers_and_checks_pixels(capsys):
    rows = _load("preprocessing").main(["--sizes", "200x150,500x120", "--reps", "1"])
    out = capsys.readouterr().out
    assert "| 200x150 | 2 | transformers PIL |" in out
    assert "median speed-up over the fastest backend of each size" in out
    assert all(row[-1] == "0.0e+00" for row in rows)  # identical pixels, or the speed-up would mean nothing
    assert all(float(row[5].removeprefix("x")) > 0 for row in rows)


def test_vs_transformers_bench_checks_outputs_before_timing(capsys):
    rows = _load("vs_transformers").main(["--sizes", "tiny", "--reps", "1", "--new-tokens", "2"])
    out = capsys.readouterr().out
    assert "| tiny | Baseline |" in out and "| tiny | +Grid |" in out
    assert {r[3] for r in rows} == {"prefill latency ours/theirs", "generate tokens/s ours/theirs"}
    assert all(r[5] > 0 for r in rows)
    assert all(r[-1] < 1e-4 for r in rows)  # same logits, or the two models would be doing different work


def test_dataloader_bench_times_loader_and_step(capsys):
    argv = ["--reps", "1", "--batches", "1", "--batch-size", "1", "--workers", "0,1", "--image-sizes", "200x150"]
    rows = _load("dataloader").main(argv)
    out = capsys.readouterr().out
    assert "loader/step" in out and "\nBaseline " in out and "\n+Grid " in out
    assert [(r[0], r[1]) for r in rows] == [("Baseline", 0), ("Baseline", 1), ("+Grid", 0), ("+Grid", 1)]
    assert all(rate > 0 for r in rows for rate in r[4:7])  # loader, step and their ratio


def test_memory_bench_prints_peak_ratios_and_checks_its_tracker_with_known_allocations(capsys):
    rows = _load("memory").main(["--sizes", "tiny", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "| tiny | Baseline+Manager / Baseline | train step |" in out
    assert "| tiny | +Grid+Manager / +Grid | prefill |" in out and "worst peak ratio" in out
    assert {(r[1], r[2]) for r in rows} == {
        (f"{v}+Manager / {v}", p) for v in ("Baseline", "+Grid") for p in ("train step", "prefill")
    }
    assert all(r[5] > 0 and r[8] > 0 for r in rows)
    # A 100 MB block held through a measured prefill raises its peak by exactly the block, and a dropped block
    # leaves the count (allocating it twice peaks at one block, not two).
    block = 100 * 2**20
    assert f"a block of {block} B held through a prefill raises its peak by {block} B;" in out
    assert f"allocated again it peaks at {block} B above resident" in out


def test_analysis_memory_bench_shows_the_probe_bounded_by_one_layer_map(capsys):
    rows = _load("analysis_memory").main(["--sizes", "tiny", "--image", "300x200", "--reps", "1", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "memory probe / eager" in out and "time probe / eager" in out
    (row,) = rows
    peaks = row["peaks"]
    # Memory is deterministic, so the bound is a test, not a benchmark: the probe costs an eager forward plus less
    # than one layer's map, and storing every layer's map costs more.
    assert peaks["eager"] <= peaks["probe"] < peaks["eager"] + row["one_map"]
    assert peaks["all maps"] > peaks["probe"] > peaks["forward"]
    assert all(ratio > 0 for ratio in row["time"].values())


def test_packing_bench_prints_its_tables_and_the_attention_flops_equality(capsys):
    (result,) = _load("packing").main(["--tiny-run"])
    out = capsys.readouterr().out
    # The packed row spends exactly its samples' attention FLOPs: no compute on attention across samples.
    assert "attention FLOPs packed / sum of samples = 1.000" in out
    assert "| tiny | steps/epoch | padding |" in out and "| packed rows | " in out and "packed / best padded" in out
    assert "| tiny: where a step goes |" in out
    assert set(result["rates"]) == set(result["stats"]) and len(result["stats"]) == 4
    assert result["stats"]["packed rows"]["padding"] == 0 and all(r[0] > 0 for r in result["rates"].values())
