"""The paper's ManagerTower tables and Fig. 6 from fine-tuning results: ``python -m managertower.report``.

    python -m managertower.report runs/finetune [more/runs ...] --out runs/report

Every file named ``results.json`` under the given folders (searched recursively) is one fine-tuned run scored on
one task::

    {"name": "table1/aaum-fused", "task": "vqa", "metrics": {"test_dev": 76.65}, "n": {"test_dev": 107394},
     "seed": 0}

* ``name`` (required, a non-empty string) picks the table row; ``TABLES`` below is the one place that maps names
  to rows. Table III: ``meter``, ``bridgetower``, ``managertower``. Table I: ``table1/<row>`` with the rows ``bt``,
  ``sam-n1``, ``sam-nd``, ``saum-n1``, ``saum-nd``, ``aaum-own``, ``aaum-fused``, ``concat-attention-own``,
  ``concat-attention-fused``, ``cross-attention-own``, ``cross-attention-fused``. Table II: ``table2/bt-lc<L>`` and
  ``table2/mt-lc<L>`` for L_C in 2, 3, 4, 6, 8. Fig. 6 (L_C = 3): ``fig6/mt-n<N>`` for N in 2..8 and ``fig6/bt-lc3``
  (BridgeTower, whose N is its L_C). A run in no table is listed under the tables.
* ``task`` (required): ``vqa``, ``snli_ve``, ``nlvr2`` or ``f30k``.
* ``metrics`` (required, at least one; percent, 0-100), by task: vqa ``test_dev``, ``test_std``, ``val``; snli_ve
  ``dev``, ``test``; nlvr2 ``dev``, ``test_p``; f30k ``ir1``, ``ir5``, ``ir10``, ``tr1``, ``tr5``, ``tr10``,
  ``r_mean``. An f30k run with all six recalls and no ``r_mean`` gets their mean as ``r_mean``.
* ``n`` (optional): the number of evaluated examples per metric (a positive integer). A cell whose runs all give it
  shows the 95% Wilson interval of the accuracy. VQA's soft accuracy is scored like a proportion here, which is
  close but not exact. ``r_mean`` takes no ``n``: it averages recalls over two query sets (texts for IR, images
  for TR), so it has no single count.
* ``seed`` (optional integer): runs with one name and task and different seeds are averaged; the cell shows the
  mean and the min-max range over seeds. Two files with one name, task and seed are an error.

Any other key is an error. Writes into ``--out``: ``report.md`` (printed too), ``table1.csv``, ``table2.csv``,
``table3.csv``, ``fig6.csv`` (one line per cell: the row's labels, ``column``, ``value``, ``ci_low``, ``ci_high``,
``seeds``, ``min``, ``max``; empty where absent) and ``fig6.png`` when there are Fig. 6 runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from managertower.presets import FIG6_EXPERTS, TABLE_II_LAYERS
from vlcommon.intervals import wilson
from vlcommon.ledger import atomic_write
from vlcommon.plotting import plt, save_figure

TASK_METRICS: Mapping[str, tuple[str, ...]] = {
    "vqa": ("test_dev", "test_std", "val"),
    "snli_ve": ("dev", "test"),
    "nlvr2": ("dev", "test_p"),
    "f30k": ("ir1", "ir5", "ir10", "tr1", "tr5", "tr10", "r_mean"),
}
RECALLS = ("ir1", "ir5", "ir10", "tr1", "tr5", "tr10")
FIELDS = frozenset({"name", "task", "metrics", "n", "seed"})
MISSING = "-"
LEGEND = (
    "Cells are percentages, the mean over seeds. `[low, high]`: the 95% Wilson interval from `n`; "
    "`(k seeds: min–max)`: the range over seeds; `-`: no result."
)


@dataclass(frozen=True, kw_only=True)
class Run:
    """One validated ``results.json``."""

    path: Path
    name: str
    task: str
    metrics: Mapping[str, float]
    n: Mapping[str, int]
    seed: int | None


@dataclass(frozen=True, kw_only=True)
class Cell:
    value: float
    seeds: int = 1
    low: float | None = None  # the 95% Wilson interval, in percent
    high: float | None = None
    spread: tuple[float, float] | None = None  # min and max over seeds, when there are several
    signed: bool = False  # a difference between two of one row's runs


@dataclass(frozen=True, kw_only=True)
class Column:
    header: str
    task: str
    metric: str
    run: str = "run"  # which of the row's runs the cell reads
    minus: str | None = None  # set: the cell is ``run - minus``


@dataclass(frozen=True, kw_only=True)
class Row:
    labels: tuple[str, ...]
    runs: Mapping[str, str]  # the role a column names -> the run name


@dataclass(frozen=True, kw_only=True)
class TableSpec:
    key: str  # the CSV's file stem
    title: str
    label_headers: tuple[str, ...]
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]


@dataclass(frozen=True, kw_only=True)
class Table:
    spec: TableSpec
    cells: tuple[tuple[Cell | None, ...], ...]  # one tuple per row, one cell per column


def _row(name: str, *labels: str) -> Row:
    return Row(labels=labels, runs={"run": name})


def _col(header: str, task: str, metric: str, *, run: str = "run", minus: str | None = None) -> Column:
    return Column(header=header, task=task, metric=metric, run=run, minus=minus)


_TEST_DEV, _R_MEAN = "VQAv2 Test-Dev (%)", "Flickr30K R_MEAN (%)"
_OWN, _FUSED = "C^V_{ℓ-1}", "C^V_{ℓ-1}, C^T_{ℓ-1}"

# Every table's rows in the paper's order, with the run names that fill them: the only name -> row mapping.
# fmt: off
TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        key="table1", title="Table I: types of managers and visual queries (no VLP)",
        label_headers=("Type", "Visual Query", "Weight"),
        columns=(_col(_TEST_DEV, "vqa", "test_dev"), _col(_R_MEAN, "f30k", "r_mean")),
        rows=(
            _row("table1/bt", "BT", "-", "N×1"),
            _row("table1/sam-n1", "SAM", "-", "N×1"),
            _row("table1/sam-nd", "SAM", "-", "N×D"),
            _row("table1/saum-n1", "SAUM", "-", "N×1"),
            _row("table1/saum-nd", "SAUM", "-", "N×D"),
            _row("table1/aaum-own", "AAUM", _OWN, "N×L"),
            _row("table1/aaum-fused", "AAUM", _FUSED, "N×L"),
            _row("table1/concat-attention-own", "Concat-Attention", f"V, {_OWN}", "N×L×D"),
            _row("table1/concat-attention-fused", "Concat-Attention", f"V, {_FUSED}", "N×L×D"),
            _row("table1/cross-attention-own", "Cross-Attention", _OWN, "N×L"),
            _row("table1/cross-attention-fused", "Cross-Attention", _FUSED, "N×L"),
        ),
    ),
    TableSpec(
        key="table2",
        title="Table II: BridgeTower (BT) and ManagerTower (Ours) by the number of cross-modal layers L_C (no VLP)",
        label_headers=("L_C",),
        columns=(
            _col("VQAv2 Test-Dev BT (%)", "vqa", "test_dev", run="bt"),
            _col("VQAv2 Test-Dev Ours (%)", "vqa", "test_dev", run="ours"),
            _col("VQAv2 Δ (Ours - BT)", "vqa", "test_dev", run="ours", minus="bt"),
            _col("Flickr30K R_MEAN BT (%)", "f30k", "r_mean", run="bt"),
            _col("Flickr30K R_MEAN Ours (%)", "f30k", "r_mean", run="ours"),
            _col("Flickr30K Δ (Ours - BT)", "f30k", "r_mean", run="ours", minus="bt"),
        ),
        rows=tuple(
            Row(labels=(str(lc),), runs={"bt": f"table2/bt-lc{lc}", "ours": f"table2/mt-lc{lc}"})
            for lc in TABLE_II_LAYERS
        ),
    ),
    TableSpec(
        key="table3", title="Table III: comparison after VLP on 4M images (base size)",
        label_headers=("Model",),
        columns=(
            _col(_TEST_DEV, "vqa", "test_dev"), _col("VQAv2 Test-Std (%)", "vqa", "test_std"),
            _col("SNLI-VE Dev (%)", "snli_ve", "dev"), _col("SNLI-VE Test (%)", "snli_ve", "test"),
            _col("NLVR2 Dev (%)", "nlvr2", "dev"), _col("NLVR2 Test-P (%)", "nlvr2", "test_p"),
            _col("Flickr30K IR@1 (%)", "f30k", "ir1"), _col("Flickr30K TR@1 (%)", "f30k", "tr1"),
        ),
        rows=(
            _row("meter", "METER-CLIP_BASE"),
            _row("bridgetower", "BridgeTower_BASE"),
            _row("managertower", "ManagerTower_BASE (Ours)"),
        ),
    ),
    TableSpec(
        key="fig6", title="Fig. 6: VQAv2 Test-Dev by N, the number of top unimodal layers used (L_C = 3, no VLP)",
        label_headers=("Model", "L_C", "N"),
        columns=(_col(_TEST_DEV, "vqa", "test_dev"),),
        rows=(
            *(_row(f"fig6/mt-n{n}", "ManagerTower", "3", str(n)) for n in FIG6_EXPERTS),
            _row("fig6/bt-lc3", "BridgeTower", "3", "3"),
        ),
    ),
)
# fmt: on


def _per_metric(path: Path, field: str, raw: object, task: str) -> dict[str, float]:
    """``metrics`` (percentages) or ``n`` (positive counts), keyed by the task's metric names."""
    if not isinstance(raw, dict) or (field == "metrics" and not raw):
        kind = "a non-empty object" if field == "metrics" else "an object"
        raise ValueError(f"{path}: field {field!r}: expected {kind} keyed by metric, got {raw!r}")
    values: dict[str, float] = {}
    for metric, value in raw.items():
        where = f"{path}: field '{field}.{metric}'"
        if metric not in TASK_METRICS[task]:
            raise ValueError(f"{where}: unknown metric for task {task!r}; expected one of {TASK_METRICS[task]}")
        # bool is an int to Python, but a true/false here is a broken writer, not a number; Python's json reads
        # NaN and Infinity, which no score or count is.
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not numeric or (isinstance(value, float) and not math.isfinite(value)):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        if field == "metrics" and not 0 <= value <= 100:
            raise ValueError(f"{where}: {value} is not a percentage in 0..100")
        if field == "n" and metric == "r_mean":
            raise ValueError(f"{where}: r_mean averages recalls over two query sets and has no single count")
        if field == "n" and (not isinstance(value, int) or value <= 0):
            raise ValueError(f"{where}: expected a positive integer count, got {value!r}")
        values[metric] = value
    return values


def parse_run(path: Path, data: object) -> Run:
    """Validate one parsed ``results.json``; a ValueError names the file and the field."""
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    if unknown := sorted(set(data) - FIELDS):
        raise ValueError(f"{path}: field {unknown[0]!r}: unknown; the fields are {sorted(FIELDS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{path}: field 'name': missing or not a non-empty string ({name!r})")
    task = data.get("task")
    if task not in TASK_METRICS:
        raise ValueError(f"{path}: field 'task': unknown task {task!r}; expected one of {sorted(TASK_METRICS)}")
    metrics = _per_metric(path, "metrics", data.get("metrics"), task)
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"{path}: field 'seed': expected an integer, got {seed!r}")
    if task == "f30k" and "r_mean" not in metrics and all(r in metrics for r in RECALLS):
        metrics["r_mean"] = statistics.fmean(metrics[r] for r in RECALLS)
    n = {metric: int(count) for metric, count in _per_metric(path, "n", data.get("n", {}), task).items()}
    return Run(path=path, name=name, task=task, metrics=metrics, n=n, seed=seed)


def load_runs(folders: Iterable[str | Path]) -> list[Run]:
    """Every ``results.json`` under ``folders`` (a file path is read as it is), each file once."""
    paths: dict[Path, None] = {}  # ordered and without repeats, for folders that overlap
    for folder in map(Path, folders):
        if not folder.exists():
            raise ValueError(f"{folder}: no such results folder")
        found = sorted(folder.rglob("results.json")) if folder.is_dir() else [folder]
        paths.update((path.resolve(), None) for path in found)
    runs = []
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from error
        runs.append(parse_run(path, data))
    return runs


def group_runs(runs: Iterable[Run]) -> dict[tuple[str, str], list[Run]]:
    """Runs by (name, task): the seeds of one cell group."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        group = groups.setdefault((run.name, run.task), [])
        if twin := next((other for other in group if other.seed == run.seed), None):
            raise ValueError(
                f"{run.path}: field 'seed': {run.name!r} on {run.task!r} with seed {run.seed} is also in {twin.path}"
            )
        group.append(run)
    return groups


def summarise(runs: Sequence[Run], metric: str) -> Cell | None:
    """The mean of ``metric`` over the seeds that report it, with its range and, given ``n``, its interval."""
    scored = [run for run in runs if metric in run.metrics]
    if not scored:
        return None
    values = [run.metrics[metric] for run in scored]
    mean = statistics.fmean(values)
    spread = (min(values), max(values)) if len(values) > 1 else None
    if any(metric not in run.n for run in scored):
        return Cell(value=mean, seeds=len(values), spread=spread)
    # The seeds are scored on one evaluation set, so the interval is that set's sampling error around the mean;
    # where the seeds' counts differ, the smallest gives the widest (most cautious) interval.
    n = min(run.n[metric] for run in scored)
    interval = wilson(min(n, mean / 100 * n), n).scaled(100)
    return Cell(value=mean, seeds=len(values), low=interval.low, high=interval.high, spread=spread)


def build_table(spec: TableSpec, groups: Mapping[tuple[str, str], Sequence[Run]]) -> Table:
    rows = []
    for row in spec.rows:
        cells: list[Cell | None] = []
        for column in spec.columns:
            cell = summarise(groups.get((row.runs[column.run], column.task), ()), column.metric)
            if column.minus is not None:
                base = summarise(groups.get((row.runs[column.minus], column.task), ()), column.metric)
                cell = None if cell is None or base is None else Cell(value=cell.value - base.value, signed=True)
            cells.append(cell)
        rows.append(tuple(cells))
    return Table(spec=spec, cells=tuple(rows))


def format_cell(cell: Cell | None) -> str:
    if cell is None:
        return MISSING
    text = f"{cell.value:+.2f}" if cell.signed else f"{cell.value:.2f}"
    if cell.low is not None and cell.high is not None:
        text += f" [{cell.low:.2f}, {cell.high:.2f}]"
    if cell.spread is not None:
        text += f" ({cell.seeds} seeds: {cell.spread[0]:.2f}–{cell.spread[1]:.2f})"
    return text


def render_table(table: Table) -> str:
    header = [*table.spec.label_headers, *(column.header for column in table.spec.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, cells in zip(table.spec.rows, table.cells, strict=True):
        lines.append("| " + " | ".join([*row.labels, *map(format_cell, cells)]) + " |")
    return "\n".join(lines)


def render_markdown(tables: Sequence[Table], *, figure: str | None, unplaced: Sequence[Run]) -> str:
    parts = ["# ManagerTower results", LEGEND]
    for table in tables:
        parts += [f"## {table.spec.title}", render_table(table)]
        if table.spec.key == "fig6":
            parts.append(f"![Fig. 6]({figure})" if figure else "No Fig. 6 runs, so no figure.")
    if unplaced:
        listed = "\n".join(f"- `{run.name}` ({run.task}): {run.path}" for run in unplaced)
        parts += ["## Runs in no table", listed]
    return "\n\n".join(parts) + "\n"


def write_csv(table: Table, path: Path) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([*table.spec.label_headers, "column", "value", "ci_low", "ci_high", "seeds", "min", "max"])
            for row, cells in zip(table.spec.rows, table.cells, strict=True):
                for column, cell in zip(table.spec.columns, cells, strict=True):
                    writer.writerow([*row.labels, column.header, *_csv_numbers(cell)])

    atomic_write(path, write)


def _csv_numbers(cell: Cell | None) -> list[str]:
    def number(value: float | None) -> str:
        # Six decimals of a percent is far below any reported precision and keeps 75.47 - 74.86 from printing
        # as 0.6099999999999994.
        return "" if value is None else str(round(value, 6))

    if cell is None:
        return [""] * 6
    least, most = cell.spread or (None, None)
    return [number(cell.value), number(cell.low), number(cell.high), str(cell.seeds), number(least), number(most)]


def _error_bar(cell: Cell) -> tuple[float, float]:
    """Below and above the point: the Wilson interval if there is one, else the seeds' range."""
    if cell.low is not None and cell.high is not None:
        return cell.value - cell.low, cell.high - cell.value
    if cell.spread is not None:
        return cell.value - cell.spread[0], cell.spread[1] - cell.value
    return 0.0, 0.0


def draw_fig6(table: Table, path: Path) -> bool:
    """VQAv2 test-dev against N, one series per model; False (nothing drawn) without Fig. 6 runs."""
    model, experts = table.spec.label_headers.index("Model"), table.spec.label_headers.index("N")
    series: dict[str, list[tuple[int, Cell]]] = {}
    for row, (cell,) in zip(table.spec.rows, table.cells, strict=True):
        if cell is not None:
            series.setdefault(row.labels[model], []).append((int(row.labels[experts]), cell))
    if not series:
        return False
    fig, axis = plt.subplots(figsize=(5.5, 3.5))
    for label, points in series.items():
        xs, ys = [n for n, _ in points], [cell.value for _, cell in points]
        yerr = list(zip(*(_error_bar(cell) for _, cell in points), strict=True))  # (2, points): below, above
        axis.errorbar(xs, ys, yerr=yerr, marker="o", capsize=3, label=f"{label} (L_C = 3)")
    axis.set_xlabel("N, top unimodal layers per manager or bridge")
    axis.set_ylabel(_TEST_DEV)
    axis.set_xticks(FIG6_EXPERTS)
    axis.legend()
    save_figure(fig, path)
    return True


def build_report(folders: Iterable[str | Path], out: str | Path) -> str:
    """Load, tabulate, write ``report.md``, the CSVs and the figure into ``out``; returns the markdown."""
    out = Path(out)
    runs = load_runs(folders)
    groups = group_runs(runs)
    tables = [build_table(spec, groups) for spec in TABLES]
    out.mkdir(parents=True, exist_ok=True)
    for table in tables:
        write_csv(table, out / f"{table.spec.key}.csv")
    fig6 = next(table for table in tables if table.spec.key == "fig6")
    figure = "fig6.png" if draw_fig6(fig6, out / "fig6.png") else None
    if figure is None:
        (out / "fig6.png").unlink(missing_ok=True)  # an earlier report's figure would no longer match these runs
    shown = {(row.runs[c.run], c.task) for spec in TABLES for row in spec.rows for c in spec.columns}
    unplaced = [run for run in runs if (run.name, run.task) not in shown]
    markdown = render_markdown(tables, figure=figure, unplaced=unplaced)
    atomic_write(out / "report.md", lambda tmp: Path(tmp).write_text(markdown, encoding="utf-8"))
    return markdown


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m managertower.report",
        description="The paper's Tables I-III and Fig. 6 from results.json files (format: the module docstring).",
    )
    parser.add_argument("results", nargs="+", type=Path, help="folders searched recursively for results.json")
    parser.add_argument("--out", type=Path, required=True, help="folder for report.md, the CSVs and fig6.png")
    args = parser.parse_args(argv)
    try:
        markdown = build_report(args.results, args.out)
    except ValueError as error:
        # A bad results file is the user's input, not a bug: its message, without a traceback.
        sys.exit(f"managertower.report: {error}")
    print(markdown, end="")


if __name__ == "__main__":
    main()
