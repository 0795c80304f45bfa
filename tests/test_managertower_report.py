"""managertower.report: the paper's own numbers come back as the paper's tables, and bad results files are refused."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from managertower.report import TABLES, build_report, main
from vlcommon.intervals import wilson

FIXTURE = Path(__file__).parent / "fixtures" / "managertower_paper"
# The deltas Table II prints in parentheses, "(↑ 0.61)" etc. (paper line 148): L_C -> (VQAv2, Flickr30K R_MEAN).
PAPER_DELTAS = {2: (0.61, 0.86), 3: (0.71, 0.91), 4: (0.52, 0.83), 6: (0.74, 0.64), 8: (0.58, 0.62)}


def _write(root: Path, folder: str, record: object) -> Path:
    path = root / folder / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _line(markdown: str, label: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith(f"| {label} |"))


def test_paper_numbers_render_as_the_hand_typed_tables(tmp_path):
    # The fixture's results.json files and expected.md were transcribed from the paper separately.
    markdown = build_report([FIXTURE], tmp_path)
    assert markdown == (FIXTURE / "expected.md").read_text(encoding="utf-8")
    assert (tmp_path / "report.md").read_text(encoding="utf-8") == markdown
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "fig6.csv", "report.md", "table1.csv", "table2.csv", "table3.csv"
    ]  # fmt: skip


def test_table2_delta_is_ours_minus_bt_as_the_paper_prints_it(tmp_path):
    build_report([FIXTURE], tmp_path)
    rows = _csv(tmp_path / "table2.csv")
    for lc, (vqa, f30k) in PAPER_DELTAS.items():
        cells = {row["column"]: float(row["value"]) for row in rows if row["L_C"] == str(lc)}
        assert cells["VQAv2 Test-Dev Ours (%)"] - cells["VQAv2 Test-Dev BT (%)"] == pytest.approx(vqa, abs=1e-9)
        assert cells["VQAv2 Δ (Ours - BT)"] == pytest.approx(vqa, abs=1e-9)
        assert cells["Flickr30K Δ (Ours - BT)"] == pytest.approx(f30k, abs=1e-9)


def test_table_rows_are_the_training_presets():
    # The run names a report expects are the preset names the fine-tuning runs are launched with.
    from managertower.presets import PRESETS

    specs = {spec.key: spec for spec in TABLES}
    names = {
        name for key in ("table1", "table2", "table3", "fig6") for row in specs[key].rows for name in row.runs.values()
    }
    assert names == set(PRESETS)


def test_seeds_are_averaged_with_their_range(tmp_path):
    for seed, value in ((0, 79.0), (1, 79.5)):
        record = {"name": "managertower", "task": "vqa", "metrics": {"test_dev": value}, "seed": seed}
        _write(tmp_path / "runs", f"seed{seed}", record)
    markdown = build_report([tmp_path / "runs"], tmp_path / "out")
    ours = "ManagerTower_BASE (Ours)"
    assert _line(markdown, ours).startswith(f"| {ours} | 79.25 (2 seeds: 79.00–79.50) | - |")
    rows = _csv(tmp_path / "out" / "table3.csv")
    row = next(row for row in rows if row["Model"] == ours and row["column"] == "VQAv2 Test-Dev (%)")
    assert (row["value"], row["seeds"], row["min"], row["max"]) == ("79.25", "2", "79.0", "79.5")


def test_wilson_interval_when_n_is_given(tmp_path):
    record = {"name": "meter", "task": "nlvr2", "metrics": {"dev": 82.33, "test_p": 83.05}, "n": {"dev": 6982}}
    _write(tmp_path / "runs", "meter", record)
    markdown = build_report([tmp_path / "runs"], tmp_path / "out")
    interval = wilson(0.8233 * 6982, 6982).scaled(100)
    assert 0 < interval.low < 82.33 < interval.high < 100
    # NLVR2 dev carries its interval; test-P, without an n, does not.
    assert f"| 82.33 [{interval.low:.2f}, {interval.high:.2f}] | 83.05 |" in _line(markdown, "METER-CLIP_BASE")


def test_flickr_r_mean_is_derived_from_six_recalls(tmp_path):
    recalls = {"ir1": 70.0, "ir5": 90.0, "ir10": 95.0, "tr1": 85.0, "tr5": 97.0, "tr10": 99.0}
    _write(tmp_path / "runs", "bt", {"name": "table1/bt", "task": "f30k", "metrics": recalls})
    markdown = build_report([tmp_path / "runs"], tmp_path / "out")
    assert _line(markdown, "BT") == "| BT | - | N×1 | - | 89.33 |"


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"task": "vqa", "metrics": {"test_dev": 76.0}}, "name"),
        ({"name": " ", "task": "vqa", "metrics": {"test_dev": 76.0}}, "name"),
        ({"name": "meter", "task": "gqa", "metrics": {"test_dev": 76.0}}, "task"),
        ({"name": "meter", "task": "vqa", "metrics": {"dev": 76.0}}, "metrics.dev"),
        ({"name": "meter", "task": "vqa", "metrics": {"test_dev": "76.0"}}, "metrics.test_dev"),
        ({"name": "meter", "task": "vqa", "metrics": {"test_dev": True}}, "metrics.test_dev"),
        ({"name": "meter", "task": "vqa", "metrics": {"test_dev": float("nan")}}, "metrics.test_dev"),
        ({"name": "meter", "task": "vqa", "metrics": {"test_dev": 0.76}, "n": {"test_dev": 1.5}}, "n.test_dev"),
        ({"name": "meter", "task": "vqa", "metrics": {"test_dev": 176.0}}, "metrics.test_dev"),
        ({"name": "meter", "task": "vqa", "metrics": {}}, "metrics"),
        ({"name": "meter", "task": "f30k", "metrics": {"r_mean": 93.0}, "n": {"r_mean": 1000}}, "n.r_mean"),
        ({"name": "meter", "task": "vqa", "metrics": {"test_dev": 76.0}, "seed": "0"}, "seed"),
        ({"name": "meter", "task": "vqa", "metric": {"test_dev": 76.0}}, "metric"),
    ],
)
def test_bad_file_names_the_file_and_field(tmp_path, record, field):
    path = _write(tmp_path, "bad", record).resolve()
    with pytest.raises(ValueError, match=re.escape(f"{path}: field '{field}'")):
        build_report([tmp_path], tmp_path / "out")


def test_invalid_json_and_twin_seeds_name_the_files(tmp_path):
    broken = tmp_path / "broken" / "results.json"
    broken.parent.mkdir()
    broken.write_text("{not json")
    with pytest.raises(ValueError, match=re.escape(f"{broken.resolve()}: not valid JSON")):
        build_report([broken.parent], tmp_path / "out")
    record = {"name": "meter", "task": "vqa", "metrics": {"test_dev": 76.0}, "seed": 0}
    first, second = (_write(tmp_path / "twins", folder, record).resolve() for folder in ("a", "b"))
    with pytest.raises(ValueError, match=re.escape(f"{second}: field 'seed'") + ".*" + re.escape(str(first))):
        build_report([tmp_path / "twins"], tmp_path / "out")


def test_fig6_png_is_drawn_and_unknown_runs_are_listed(tmp_path):
    for n, value in ((2, 75.6), (3, 75.8), (6, 76.04)):
        _write(tmp_path / "runs", f"mt{n}", {"name": f"fig6/mt-n{n}", "task": "vqa", "metrics": {"test_dev": value}})
    bridge = {"name": "fig6/bt-lc3", "task": "vqa", "metrics": {"test_dev": 75.33}, "n": {"test_dev": 107394}}
    _write(tmp_path / "runs", "bt", bridge)
    _write(tmp_path / "runs", "other", {"name": "sweep/lr-1e-5", "task": "snli_ve", "metrics": {"dev": 80.0}})
    markdown = build_report([tmp_path / "runs"], tmp_path / "out")
    png = (tmp_path / "out" / "fig6.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    assert "![Fig. 6](fig6.png)" in markdown
    assert "| ManagerTower | 3 | 6 | 76.04 |" in markdown and "| ManagerTower | 3 | 5 | - |" in markdown
    assert "- `sweep/lr-1e-5` (snli_ve)" in markdown.split("## Runs in no table")[1]


def test_cli_prints_the_report(tmp_path, capsys):
    main([str(FIXTURE), "--out", str(tmp_path)])
    assert capsys.readouterr().out == (FIXTURE / "expected.md").read_text(encoding="utf-8")
    with pytest.raises(SystemExit, match="no such results folder"):
        main([str(tmp_path / "absent"), "--out", str(tmp_path)])
