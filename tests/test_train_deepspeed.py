"""The real train entry under DeepSpeed on 2 CPU processes (gloo): ZeRO-2 and ZeRO-3, and exact ZeRO-3 resume."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import losses, rewind_to, stage2_args

pytest.importorskip("deepspeed", reason="DeepSpeed is in the dev/train extras")
ROOT = Path(__file__).resolve().parents[1]


def _torchrun(argv: list[str], port: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu", PYTHONPATH=str(ROOT))
    env.setdefault("TORCH_EXTENSIONS_DIR", str(ROOT / ".cache" / "torch_extensions"))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port",
        str(port),
        "-m",
        "llava.train.train",
        *argv,
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-6000:]
    return result


def _argv(assets, out: Path, zero: int, steps: int, extra=()) -> list[str]:
    return stage2_args(
        assets,
        assets["llm"],
        out,
        steps=steps,
        extra=[
            "--vision_tower",
            str(assets["vision"]),
            "--image_aspect_ratio",
            "anyres_max_9",
            "--image_grid_pinpoints",
            "(1x1),...,(3x3)",
            "--mm_patch_merge_type",
            "spatial_unpad",
            "--manager_type",
            "saum",
            "--manager_inject_layers",
            "count:2",
            "--deepspeed",
            str(ROOT / "scripts" / "train" / f"zero{zero}.json"),
            "--group_by_modality_length",
            "True",
            "--mm_projector_lr",
            "2e-3",
            *extra,
        ],
    )


@pytest.mark.slow
def test_zero2_trains(assets, tmp_path):
    _torchrun(
        _argv(assets, tmp_path, zero=2, steps=4, extra=["--learning_rate", "3e-3", "--save_strategy", "no"]), port=29611
    )
    trajectory = losses(tmp_path)
    assert len(trajectory) == 4 and all(math.isfinite(v) for v in trajectory.values())
    assert trajectory[4] < trajectory[1], trajectory
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["manager"]["type"] == "saum" and (tmp_path / "model.safetensors").is_file()


@pytest.mark.slow
def test_zero3_trains_and_resumes_exactly(assets, tmp_path):
    argv = _argv(
        assets,
        tmp_path,
        zero=3,
        steps=4,
        extra=["--learning_rate", "3e-3", "--save_strategy", "steps", "--save_steps", "2"],
    )
    _torchrun(argv, port=29612)
    uninterrupted = losses(tmp_path)
    assert all(math.isfinite(v) for v in uninterrupted.values()) and uninterrupted[4] < uninterrupted[1], uninterrupted
    assert (tmp_path / "checkpoint-2" / "global_step2").is_dir(), "DeepSpeed engine checkpoint"
    rewind_to(tmp_path, 2)
    result = _torchrun(argv, port=29613)
    assert "checkpoint-2" in result.stdout + result.stderr
    resumed = losses(tmp_path)
    assert [resumed[s] for s in (3, 4)] == [uninterrupted[s] for s in (3, 4)], (resumed, uninterrupted)


@pytest.mark.slow
def test_zero3_packing_trains_and_resumes_exactly(assets, tmp_path):
    """Packed rows (text-only and multi-image samples among them) under ZeRO-3: the plan is replayed on resume."""
    extra = ["--learning_rate", "3e-3", "--save_strategy", "steps", "--save_steps", "2", "--packing", "True",
             "--packing_max_tokens", "1024", "--per_device_train_batch_size", "1"]  # fmt: skip
    argv = _argv(assets, tmp_path, zero=3, steps=4, extra=extra)
    done = _torchrun(argv, port=29614)
    assert "packing:" in done.stdout + done.stderr
    uninterrupted = losses(tmp_path)
    assert len(uninterrupted) == 4 and all(math.isfinite(v) for v in uninterrupted.values()), uninterrupted
    rewind_to(tmp_path, 2)
    _torchrun(argv, port=29615)
    resumed = losses(tmp_path)
    assert [resumed[s] for s in (3, 4)] == [uninterrupted[s] for s in (3, 4)], (resumed, uninterrupted)
