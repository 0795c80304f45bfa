"""The GPU acceptance script's smoke run: on a CPU, the tiny config through the same code paths (no FA2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_smoke_run_prints_its_table():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "bench/gpu_check.py",
        "--size",
        "tiny",
        "--device",
        "cpu",
        "--budget",
        "8192",
        "--steps",
        "1",
    ]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    for key in ("train step padded: supervised tok/s", "train step packed: padding share (expanded tokens)",
                "prefill ours", "generate transformers"):  # fmt: skip
        assert any(line.startswith(key) for line in lines), (key, done.stdout)
    packed = next(line for line in lines if line.startswith("train step packed: padding share"))
    assert packed.split()[-1] == "0.0%"  # a packed row has no padding
