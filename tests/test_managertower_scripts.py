"""The ManagerTower scripts: typed recipes turned into flags and run configs, the launcher's clear errors, a real
tiny pre-training -> VQA fine-tuning through pretrain.sh and finetune_vqa.sh (one CPU process), and the ablation
runner's plan."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from managertower.data.arrow import Task
from managertower.data.transforms import TransformKind
from managertower.presets import ABLATIONS, MAIN, PRESETS, Ablation
from managertower.testing import tiny_arrow, tiny_config, tiny_tokenizer
from managertower.train import launch
from managertower.train.optim import LrScale
from managertower.train.recipes import RECIPES, RunConfig, accumulation, recipe, train_args
from vlcommon import runconfig
from vlcommon.launch import LaunchError

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts" / "managertower"


def _bash(script: str, env: dict, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
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


def test_recipes_are_typed_and_overrides_name_the_field():
    vqa = recipe("vqa", lr=2e-5)
    assert vqa.lr == 2e-5 and vqa.task is Task.VQA and vqa.transform is TransformKind.ALBEF_RANDAUG_WOHF
    assert vqa.lr_mult_head == LrScale(multiplier=50) and RECIPES["vqa"].lr == 9e-6
    assert recipe("pretrain", epochs=2).max_steps == -1
    for overrides, named in (({"lr": "2e-5"}, "lr: expected float"), ({"lr_mult": 5}, "lr_mult: unknown field"),
                             ({"epochs": 2.5}, "epochs: expected int"),
                             ({"lr_mult_head": "5"}, "lr_mult_head")):  # fmt: skip
        with pytest.raises(ValueError, match=named):
            recipe("vqa", **overrides)
    with pytest.raises(ValueError, match="unknown recipe 'vqa2'"):
        recipe("vqa2")


def test_ablations_are_typed_memberships_of_presets():
    assert set(ABLATIONS) == set(Ablation)
    assert ABLATIONS[Ablation.TABLE2] == tuple(f"table2/{m}-lc{n}" for m in ("bt", "mt") for n in (2, 3, 4, 6, 8))
    members = [name for rows in ABLATIONS.values() for name in rows]
    assert len(members) == len(set(members)) and set(members) | set(MAIN) == set(PRESETS)


def test_the_run_config_gives_the_train_entrys_defaults_and_flags_still_win(tmp_path):
    from managertower.train.train import parse_args

    config = RunConfig(name="vqa", recipe=recipe("vqa", lr=2e-5), grad_accum=3, preset="bridgetower",
                       results_name="bridgetower", seed=4)  # fmt: skip
    path = runconfig.write(tmp_path / "run_config.json", config)
    assert runconfig.read(path, RunConfig) == config
    base = ["--run_config", str(path), "--data_root", str(tmp_path), "--output_dir", str(tmp_path / "out")]
    model, data, args = parse_args(base)
    assert (data.task, data.transform, data.max_text_len) == (Task.VQA, TransformKind.ALBEF_RANDAUG_WOHF, 50)
    assert (model.preset, model.head_hidden_scale) == ("bridgetower", 2)
    assert (args.learning_rate, args.weight_decay, args.num_train_epochs, args.gradient_accumulation_steps) == (
        2e-5, 0.06, 10, 3)  # fmt: skip
    assert args.head_lr_scale == LrScale(multiplier=50) and args.cross_lr_scale == LrScale(multiplier=5)
    assert args.do_eval and args.results_name == "bridgetower" and args.seed == 4 and args.lr_mult_head == "50"
    _, data, args = parse_args([*base, "--lr_mult_head", "5.0", "--learning_rate", "1e-4", "--task", "f30k"])
    assert args.head_lr_scale == LrScale(absolute=5.0) and args.learning_rate == 1e-4 and data.task is Task.F30K
    bad = runconfig.to_dict(config)
    bad["recipe"]["lr_mult_head"]["multiplier"] = "50"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"bad.json: recipe.lr_mult_head.multiplier: expected int"):
        runconfig.read(tmp_path / "bad.json", RunConfig)


def _launch(capsys, job: str, env: dict, *user: str) -> str:
    """The launcher in this process (an interpreter start costs 10-30 s here) with DRY_RUN=1: what it prints."""
    assert launch.main([job, *user], env={"NUM_GPUS": "8", "DRY_RUN": "1", "REPORT_TO": "none", **env}) == 0
    return capsys.readouterr().out


def test_the_launcher_reads_the_environment_once_into_typed_values(capsys, tmp_path):
    env = {"DATA_ROOT": str(tmp_path), "ALLOW_RANDOM_EXPERTS": "1", "MODEL": "table1/sam-n1", "LR": "3e-5",
           "EPOCHS": "2", "SEED": "7", "OUTPUT_ROOT": str(tmp_path / "out")}  # fmt: skip
    printed = _launch(capsys, "vqa_novlp", env, "--max_text_len", "12")
    config = runconfig.from_dict(RunConfig, json.loads(printed[: printed.index("\n}\n") + 2]))
    assert config.recipe == recipe("vqa_novlp", lr=3e-5, epochs=2) and config.grad_accum == 512 // (4 * 8)
    assert (config.preset, config.results_name, config.seed) == ("table1/sam-n1", "table1/sam-n1", 7)
    command = printed.splitlines()[printed.splitlines().index("--run_config") - 2 :]
    out = tmp_path / "out" / "table1_sam-n1" / "vqa_novlp"
    assert command[2:5] == ["--run_config", str(out / "run_config.json"), "--data_root"]
    assert command[-2:] == ["--max_text_len", "12"] and "--preset" not in command
    for var, value, named in (("LR", "fast", "LR=fast must be a number"),
                              ("EPOCHS", "0", "EPOCHS=0 must be an integer >= 1"),
                              ("BATCH_SIZE", "16", "on 8 processes: batch_size=16 is smaller"),
                              ("MODEL", "table1/nope", "MODEL=table1/nope is not a preset"),
                              ("SEED", "-1", "SEED=-1 must be")):  # fmt: skip
        with pytest.raises(LaunchError, match=named):
            launch.main(["vqa_novlp"], env={"NUM_GPUS": "8", "DRY_RUN": "1", **env, var: value})
    with pytest.raises(LaunchError, match="EPOCHS=2, MAX_STEPS=5: recipe vqa_novlp: give epochs or max_steps"):
        launch.main(["vqa_novlp"], env={"NUM_GPUS": "8", **env, "MAX_STEPS": "5"})


def test_finetuning_needs_a_finished_pretraining(tmp_path):
    result = _bash("finetune_nlvr2.sh", {"DATA_ROOT": str(tmp_path), "NUM_GPUS": "1", "OUTPUT_ROOT": str(tmp_path)})
    assert result.returncode != 0 and "pre-train MODEL=managertower first" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "managertower" / "nlvr2").exists()


def test_pretraining_needs_the_experts_and_ablations_check_their_names_first(tmp_path):
    base = {"DATA_ROOT": str(tmp_path), "NUM_GPUS": "1", "DRY_RUN": "1"}
    result = _bash("pretrain.sh", base)
    assert result.returncode != 0 and "TEXT_EXPERT is not set" in result.stderr and "Traceback" not in result.stderr
    result = _bash("ablation.sh", {**base, "ABLATION": "table1", "ROWS": "table1/aaum-fused table1/aaum-fusd"})
    assert result.returncode != 0 and "table1/aaum-fusd" in result.stderr and '"preset"' not in result.stdout
    assert "Traceback" not in result.stderr


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
    presets = re.findall(r'^  "preset": "(.*)",$', result.stdout, re.MULTILINE)
    assert presets == [f"table2/{m}-lc{n}" for m in ("bt", "mt") for n in (2, 3, 4, 6, 8)]
    commands = [line for line in result.stdout.splitlines() if line == "managertower.train.train"]
    assert len(commands) == len(presets)


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
