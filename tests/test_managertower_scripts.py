"""The ManagerTower scripts: recipes turned into flags, clear errors, a real tiny pre-training -> VQA fine-tuning
through pretrain.sh and finetune_vqa.sh (one CPU process), and the ablation runner's plan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from managertower.testing import tiny_arrow, tiny_config, tiny_tokenizer
from managertower.train.recipes import RECIPES, accumulation, recipe, train_args

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts" / "managertower"


def _bash(script: str, env: dict, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("MODEL", "INIT_FROM", "NNODES", "RANK", "NUM_GPUS")}
    full.update(PYTHON=sys.executable, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **env)
    return subprocess.run(["bash", str(SCRIPTS / script), *args], env=full, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def test_recipes_give_the_papers_flags():
    flags = train_args(recipe("vqa"), world_size=8)
    pairs = dict(zip(flags[::2], flags[1::2], strict=True))
    assert pairs["--learning_rate"] == "9e-06" and pairs["--lr_mult_head"] == "50" and pairs["--weight_decay"] == "0.06"
    assert (
        pairs["--image_size"] == "576" and pairs["--head_hidden_scale"] == "2" and pairs["--num_train_epochs"] == "10"
    )
    assert pairs["--gradient_accumulation_steps"] == str(504 // 32)
    assert accumulation(recipe("pretrain"), world_size=64) == 8  # 4,096 = 64 GPUs x 8 x 8 (Table IX)
    assert recipe("f30k", max_steps=5).epochs == 0 and RECIPES["f30k"].max_text_len == 40
    with pytest.raises(ValueError, match="smaller than"):
        accumulation(recipe("snli_ve"), world_size=16)


def test_finetuning_needs_a_finished_pretraining(tmp_path):
    result = _bash("finetune_nlvr2.sh", {"DATA_ROOT": str(tmp_path), "NUM_GPUS": "1", "OUTPUT_ROOT": str(tmp_path)})
    assert result.returncode != 0 and "pre-train MODEL=managertower first" in result.stderr


def test_pretraining_needs_the_experts_and_ablations_check_their_names_first(tmp_path):
    base = {"DATA_ROOT": str(tmp_path), "NUM_GPUS": "1", "DRY_RUN": "1"}
    result = _bash("pretrain.sh", base)
    assert result.returncode != 0 and "TEXT_EXPERT is not set" in result.stderr
    result = _bash("ablation.sh", {**base, "ABLATION": "table1", "ROWS": "table1/aaum-fused table1/aaum-fusd"})
    assert result.returncode != 0 and "table1/aaum-fusd" in result.stderr and "--preset" not in result.stdout


def test_ablation_runner_plans_every_row(tmp_path):
    env = {
        "DATA_ROOT": str(tmp_path),
        "NUM_GPUS": "8",
        "DRY_RUN": "1",
        "ABLATION": "table2",
        "TASKS": "vqa_novlp",
        "ALLOW_RANDOM_EXPERTS": "1",
    }
    result = _bash("ablation.sh", env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    presets = [lines[i + 1] for i, line in enumerate(lines) if line == "--preset"]
    assert presets == [f"table2/{m}-lc{n}" for m in ("bt", "mt") for n in (2, 3, 4, 6, 8)]


@pytest.mark.slow
def test_pretrain_then_finetune_through_the_scripts(tmp_path):
    tiny_arrow(tmp_path / "arrow")
    tiny_tokenizer().save_pretrained(tmp_path / "tokenizer")
    (tmp_path / "config.json").write_text(json.dumps(tiny_config().to_dict()))
    env = {"DATA_ROOT": str(tmp_path / "arrow"), "NUM_GPUS": "1", "OUTPUT_ROOT": str(tmp_path / "out"),
           "DEEPSPEED": "none", "REPORT_TO": "none", "NUM_WORKERS": "0", "TOKENIZER": str(tmp_path / "tokenizer"),
           "MODEL_CONFIG": str(tmp_path / "config.json"), "MAX_STEPS": "2", "BATCH_SIZE": "4", "PER_DEVICE": "4",
           "IMAGE_SIZE": "32", "MASTER_PORT": "29641", "ALLOW_RANDOM_EXPERTS": "1"}  # fmt: skip
    done = _bash("pretrain.sh", env, "--max_text_len", "12", timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    backbone = tmp_path / "out" / "managertower" / "pretrain" / "backbone"
    assert (backbone / "config.json").is_file() and (backbone.parent / "COMPLETE").is_file()
    # Fine-tuning at another resolution: the position table is resized on load.
    done = _bash("finetune_vqa.sh", {**env, "IMAGE_SIZE": "48", "MASTER_PORT": "29642"}, "--max_text_len", "12",
                 timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads((tmp_path / "out" / "managertower" / "vqa" / "results.json").read_text())
    assert results["name"] == "managertower" and "val" in results["metrics"]
