"""The demo's multi-seed summary: mean and spread over seeds from each seed's scores.csv, and --seeds parsing."""

from __future__ import annotations

import argparse
import csv

import pytest

from playground.demo import _seeds
from playground.seeds import summarise


def _scores(folder, rows):
    folder.mkdir(parents=True)
    with open(folder / "scores.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["benchmark", "name", "split", "variant", "score", "delta_vs_Baseline"])
        writer.writerows(rows)


def test_mean_and_spread_over_seeds(tmp_path):
    _scores(
        tmp_path / "s0",
        [["k", "Colour", "test", "Baseline", "20.00", "0.00"], ["k", "Colour", "test", "+Grid", "30.00", "10.00"]],
    )
    _scores(
        tmp_path / "s1",
        [["k", "Colour", "test", "Baseline", "40.00", "0.00"], ["k", "Colour", "test", "+Grid", "-", "-"]],
    )
    path = summarise({0: tmp_path / "s0", 1: tmp_path / "s1"}, tmp_path / "report")
    assert "| Colour | 30.0 ± 14.1 | 30.0 ± 0.0 |" in path.read_text()  # stdev of 20, 40 = 14.14
    with open(tmp_path / "report" / "seeds.csv") as handle:
        rows = {row["variant"]: row for row in csv.DictReader(handle)}
    assert rows["Baseline"]["seeds"] == "2" and float(rows["Baseline"]["std"]) == pytest.approx(14.1421, abs=1e-3)
    assert rows["+Grid"]["seeds"] == "1", "an unscored seed is left out, not counted as 0"


def test_seeds_option_parsing():
    assert _seeds("0,1,2") == (0, 1, 2)
    for bad in ("0,0", "a", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            _seeds(bad)
