"""A bad flag, path or data file stops either train entry with one line naming the problem and exit status 2,
before any model is built; no traceback. One case per entry runs as users run it (``python -m``), the others
through the same ``main()`` in this process (an interpreter start costs 10-20 s here)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vlcommon.entry import USAGE_EXIT_STATUS

LLAVA, TOWER = "llava.train.train", "managertower.train.train"
CASES = {
    "llava_flag": (LLAVA, ["--data_path", "d.json", "--warmup_ratio", "2"], "warmup_ratio=2.0 must be"),
    "llava_data": (LLAVA, ["--data_path", "missing.json"], "dataset file missing.json: no such file"),
    "tower_flag": (TOWER, ["--data_root", ".", "--task", "vqa", "--init_from", "none"], "--init_from none: no config"),
    "tower_path": (
        TOWER,
        ["--data_root", ".", "--task", "vqa", "--tokenizer", "no/such/tok"],
        "--tokenizer no/such/tok",
    ),
}
AS_USERS_RUN = ("llava_flag", "tower_path")
# Files written into the test's folder first: a config part of the wrong type and two malformed JSON files.
FILES = {
    "types.json": '{"cross": {"layers": "six"}}',
    "broken.json": '{"text": {,}}',
    "ds.json": '{"zero_optimization": }',
}
CASES |= {
    "tower_types": (TOWER, ["--data_root", ".", "--task", "vqa", "--model_config", "types.json"],
                    "--model_config types.json: cross: a field has a value of the wrong type"),
    "tower_json": (TOWER, ["--data_root", ".", "--task", "vqa", "--model_config", "broken.json"],
                   "--model_config broken.json: Expecting property name"),
    "llava_deepspeed": (LLAVA, ["--data_path", "d.json", "--deepspeed", "ds.json"], "--deepspeed ds.json: Expecting"),
}  # fmt: skip


def _argv(case: str, out) -> tuple[str, list[str], str]:
    module, flags, expected = CASES[case]
    if module == LLAVA:
        flags = [*flags, "--model_name_or_path", "unused"]
    return module, [*flags, "--output_dir", str(out)], expected


def _check(returncode: int, stderr: str, expected: str) -> None:
    assert returncode == USAGE_EXIT_STATUS, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1 and expected in errors[0], stderr[-2000:]


@pytest.mark.parametrize("case", AS_USERS_RUN)
def test_python_m_prints_one_error_and_exits_2(case, tmp_path):
    module, argv, expected = _argv(case, tmp_path / "out")
    done = subprocess.run(
        [sys.executable, "-m", module, *argv], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )  # fmt: skip
    _check(done.returncode, done.stderr, expected)
    assert not (tmp_path / "out").exists()  # stopped before anything was written


@pytest.mark.parametrize("case", [c for c in CASES if c not in AS_USERS_RUN])
def test_main_prints_one_error_and_exits_2(case, tmp_path, monkeypatch, capsys):
    import importlib

    module, argv, expected = _argv(case, tmp_path / "out")
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [module, *argv])
    with pytest.raises(SystemExit) as stop:
        importlib.import_module(module).main()
    _check(stop.value.code, capsys.readouterr().err, expected)
    assert not (tmp_path / "out").exists()
