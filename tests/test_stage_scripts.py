"""The bash stage scripts: syntax, up-front checks with clear messages, and the tiny curriculum end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts" / "train"


def _bash(script: str, env: dict, *args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    full_env = {
        k: v for k, v in os.environ.items() if k not in ("VARIANT", "LLM", "NNODES", "NODE_RANK", "RANK", "MASTER_ADDR")
    }
    full_env.update(PYTHON=sys.executable, **env)
    return subprocess.run(
        ["bash", str(SCRIPTS / script), *args], env=full_env, capture_output=True, text=True, timeout=timeout
    )


def _shell_scripts() -> list[str]:
    """Every tracked shell script: ``*.sh`` and the extension-less entries (``run``, ``.ci/run``)."""
    listed = subprocess.run(["git", "ls-files", "*.sh", "run", ".ci/run"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:  # not a git checkout (an unpacked release): the files on disk
        return sorted(
            p.relative_to(ROOT).as_posix()
            for p in [*ROOT.rglob("*.sh"), ROOT / "run", ROOT / ".ci/run"]
            if ".venv" not in p.parts
        )
    return sorted(listed.stdout.split())


@pytest.mark.parametrize("script", _shell_scripts())
def test_every_script_is_strict_from_its_first_command(script):
    lines = [line.strip() for line in (ROOT / script).read_text().splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    assert commands[0] == "set -euo pipefail", "strict mode before any command runs"
    assert "exit 0" not in lines, "a bare exit 0 turns a crashed step into success"
    assert subprocess.run(["bash", "-n", str(ROOT / script)]).returncode == 0


def test_the_script_list_covers_every_folder():
    folders = {Path(s).parent.as_posix() for s in _shell_scripts()}
    assert {"scripts/train", "scripts/eval", "scripts/analysis", "tests/upstream", ".", ".ci"} <= folders


@pytest.mark.parametrize(
    "script,env,message",
    [
        ("stage1.sh", {}, "VARIANT"),
        ("stage1.sh", {"VARIANT": "huge"}, "huge"),
        ("stage1.sh", {"VARIANT": "baseline", "NNODES": "2", "NUM_GPUS": "2"}, "NODE_RANK"),
        ("stage1.sh", {"VARIANT": "baseline", "NNODES": "2", "NUM_GPUS": "2", "NODE_RANK": "1"}, "MASTER_ADDR"),
        (
            "stage2.sh",
            {
                "VARIANT": "grid",
                "NUM_GPUS": "2",
                "DATA_STAGE2": "{tmp}/mix.yaml",
                "LLM": "/nonexistent",
                "VISION_TOWER": "/nonexistent",
                "STAGE1_5_DIR": "/nonexistent/stage1_5",
            },
            "stage 1.5",
        ),
    ],
)
def test_scripts_fail_early_with_a_clear_message(tmp_path, script, env, message):
    (tmp_path / "mix.yaml").write_text("datasets: []\n")
    result = _bash(script, {k: v.format(tmp=tmp_path) for k, v in env.items()})
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, "the check runs before any training starts"


@pytest.mark.slow
def test_tiny_curriculum_runs_all_three_stages(tmp_path):
    # COMPILE=1 as LLaVA-NeXT's later stages run (torch.compile under ZeRO-3); aot_eager captures the graphs without
    # inductor's C++ build, which the upstream-script test covers.
    env = {
        "VARIANT": "grid_manager",
        "WORK": str(tmp_path),
        "MASTER_PORT": "29631",
        "MAX_STEPS": "2",
        "TINY_COUNT": "8",
        "SAVE_STEPS": "2",
        "SAVE_STEPS_STAGE1": "2",
        "COMPILE": "1",
        "COMPILE_BACKEND": "aot_eager",
    }
    result = _bash("tiny_curriculum.sh", env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert result.stdout.count("blocks compiled in place") >= 3, "every stage compiled (stage 1.5 and 2: 2 ranks each)"
    runs = tmp_path / "runs" / "grid_manager"
    assert (runs / "stage1" / "mm_adapter.safetensors").is_file()
    for stage in ("stage1", "stage1_5", "stage2"):
        assert (runs / stage / "COMPLETE").is_file(), stage
        assert json.loads((runs / stage / "bad_samples.json").read_text())["skipped"] == 0
    config = json.loads((runs / "stage2" / "config.json").read_text())
    assert config["image_aspect_ratio"] == "anyres_max_9" and config["manager"]["type"] == "saum"


def test_the_device_probe_matches_torch():
    import torch

    from vlcommon.launch import Device

    device = Device.probe()
    assert device.cuda_count == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert (device.cuda_major > 0) == (device.cuda_count > 0) and (device.bf16 is False or device.cuda_count > 0)


def test_a_hub_id_that_cannot_be_found_is_named(monkeypatch, tmp_path):
    from vlcommon.launch import LaunchError, model_dir

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(LaunchError, match="LLM=nobody/no-such-model: neither in the Hugging Face cache"):
        model_dir({"LLM": "nobody/no-such-model"}, "LLM", "the LLM")
    with pytest.raises(LaunchError, match="neither a local model directory"):
        model_dir({"LLM": str(tmp_path)}, "LLM", "the LLM")
