"""Managers train under DeepSpeed ZeRO-2 and ZeRO-3 for real: 2 CPU processes, gloo."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed", reason="DeepSpeed is in the dev/train extras")


@pytest.mark.slow
@pytest.mark.parametrize("stage", [2, 3])
def test_managers_train_under_zero(tmp_path, stage):
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu", PYTHONPATH=str(root))
    env.setdefault("TORCH_EXTENSIONS_DIR", str(root / ".cache" / "torch_extensions"))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port",
        str(29500 + stage),
        str(root / "tests" / "_zero_worker.py"),
        str(stage),
        str(tmp_path),
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["losses"] == ranks[1]["losses"], "both ranks see the same batch"
    assert ranks[0]["losses"][-1] < ranks[0]["losses"][0], "training makes progress"
    assert all(w > 0 for w in ranks[0]["manager_abs_sums"]), "zero-initialised managers received updates"
    assert ranks[0]["manager_abs_sums"] == ranks[1]["manager_abs_sums"]
    assert [r["partitioned"] for r in ranks] == [stage == 3] * 2, "ZeRO-3 leaves each rank an empty shell per weight"
