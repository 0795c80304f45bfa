"""Run lmms-eval with the guards 0.7.3 lacks: ``python -m llava.eval.run [--num_processes N] -- <lmms-eval args>``.

lmms-eval 0.7.3 exits 0 when the evaluation fails (unless ``--verbosity DEBUG``) and silently prefers a built-in
task over an ``--include_path`` task of the same name (``reference/lmms_eval_spec.md`` §0). This runner:

1. refuses to start when a task named in ``--include_path`` shadows (or is shadowed by) a built-in task;
2. runs ``python -m lmms_eval`` (or ``accelerate launch -m lmms_eval`` with ``--num_processes`` > 1);
3. exits non-zero when lmms-eval did, when no new results file holds every requested task with samples, or when
   a judged score is one lmms-eval produces when the GPT judge failed (``llava.eval.summary.judge_failures``).

It prints the results file it checked, so scripts can pick it up.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from llava.eval.summary import judge_failures

_TASK_LINE = re.compile(r"^task:\s*['\"]?([A-Za-z0-9_\-.]+)['\"]?\s*$", re.MULTILINE)
_GROUP_LINE = re.compile(r"^group:\s*['\"]?([A-Za-z0-9_\-.]+)['\"]?\s*$", re.MULTILINE)


class EvalFailed(RuntimeError):
    pass


def _option(args: list[str], name: str) -> str | None:
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def local_task_names(include_path: str | Path) -> dict[str, Path]:
    """``task:``/``group:`` names declared by the YAMLs under ``include_path`` (read as text: they hold !function)."""
    names = {}
    for path in sorted(Path(include_path).rglob("*.yaml")):
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in (*_TASK_LINE.finditer(text), *_GROUP_LINE.finditer(text)):
            names[match.group(1)] = path
    return names


def check_no_shadowing(include_path: str | Path) -> None:
    from lmms_eval.tasks import TaskManager

    builtin = set(TaskManager().all_tasks)
    clashes = {name: path for name, path in local_task_names(include_path).items() if name in builtin}
    if clashes:
        listed = ", ".join(f"{name} ({path})" for name, path in sorted(clashes.items()))
        raise EvalFailed(
            f"local task names shadow built-in lmms-eval tasks and would be silently ignored: {listed}. "
            "Rename them (e.g. append _local)."
        )


def requested_tasks(args: list[str]) -> list[str]:
    tasks = _option(args, "--tasks")
    if not tasks:
        raise EvalFailed("lmms-eval arguments need --tasks")
    return [t for t in tasks.split(",") if t and not any(c in t for c in "*?[") and not t.endswith(".yaml")]


def newest_results(output_path: str | Path, since: float) -> Path | None:
    found = [p for p in Path(output_path).rglob("*_results.json") if p.stat().st_mtime >= since]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def check_results(path: Path | None, tasks: list[str]) -> dict:
    """The results file must exist and name every requested task (as a task or a group) with samples."""
    if path is None:
        raise EvalFailed("lmms-eval wrote no results file: the evaluation failed (see the log above)")
    data = json.loads(path.read_text())
    present = set(data.get("results", {})) | set(data.get("group_subtasks", {}))
    missing = [task for task in tasks if task not in present]
    if missing:
        raise EvalFailed(f"{path}: no results for {missing}")
    empty = [task for task, n in data.get("n-samples", {}).items() if not n.get("effective")]
    if empty:
        raise EvalFailed(f"{path}: tasks evaluated on no sample: {empty}")
    return data


def lmms_eval_command(lmms_args: list[str], num_processes: int) -> list[str]:
    if num_processes > 1:
        return [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            f"--num_processes={num_processes}",
            "-m",
            "lmms_eval",
            *lmms_args,
        ]
    return [sys.executable, "-m", "lmms_eval", *lmms_args]


def run(lmms_args: list[str], *, num_processes: int = 1) -> Path:
    output_path = _option(lmms_args, "--output_path")
    if output_path is None:
        raise EvalFailed("lmms-eval arguments need --output_path (the runner checks the results file)")
    tasks = requested_tasks(lmms_args)
    include_path = _option(lmms_args, "--include_path")
    if include_path:
        check_no_shadowing(include_path)
    started = time.time() - 1  # file times have a coarse resolution on some file systems
    code = subprocess.call(lmms_eval_command(lmms_args, num_processes))
    if code != 0:
        raise EvalFailed(f"lmms-eval exited with code {code}")
    path = newest_results(output_path, started)
    data = check_results(path, tasks)
    if "--predict_only" not in lmms_args:
        problems = judge_failures(data)
        if problems:
            raise EvalFailed(f"{path}: " + "; ".join(problems))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_processes", type=int, default=1, help="GPUs (processes) for accelerate launch")
    parser.add_argument("lmms_args", nargs=argparse.REMAINDER, help="arguments for lmms-eval, after --")
    args = parser.parse_args(argv)
    lmms_args = args.lmms_args[1:] if args.lmms_args[:1] == ["--"] else args.lmms_args
    try:
        path = run(lmms_args, num_processes=args.num_processes)
    except EvalFailed as error:
        print(f"llava.eval.run: FAILED: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"llava.eval.run: results {path}")


if __name__ == "__main__":
    main()
