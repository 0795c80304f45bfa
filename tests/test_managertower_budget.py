"""``python -m managertower.budget`` (paper Table VI): counts on the meta device equal counts of a real forward."""

from __future__ import annotations

import torch

from managertower import ManagerTowerModel
from managertower.budget import ROWS, budget, configs, count_macs, main
from managertower.testing import tiny_config


def test_meta_counts_equal_a_real_forward_and_the_rows_differ_where_the_managers_do():
    base = tiny_config(depth=6, experts=3)
    rows = {row["model"]: row for row in budget(base, text_tokens=6)}
    assert list(rows) == list(ROWS)
    for name, config in configs(base).items():
        torch.manual_seed(0)
        real = ManagerTowerModel(config)
        assert rows[name]["params"] == sum(p.numel() for p in real.parameters()), name
        assert rows[name]["macs"] == count_macs(real, 6), name
    bridge, fused = rows["BridgeTower"], rows["ManagerTower AAUM (fused query)"]
    assert rows["METER"]["macs"] < bridge["macs"] < fused["macs"]  # link towers are elementwise; the fused query is not
    assert rows["ManagerTower SAUM"]["macs"] == bridge["macs"]  # static weighted sums are not multiply-adds counted


def test_cli_prints_the_table_with_timings(capsys):
    main(["--tiny", "--time", "--reps", "1", "--text-tokens", "5"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| model | params (M)") and len(lines) == 2 + len(ROWS)
    assert all(line.count("|") == 6 and not line.endswith("| - |") for line in lines[2:])
