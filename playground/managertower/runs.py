"""The Two-Tower runs of the demo, each one call of the real train entry (``managertower.train.train.train``) in this
process (a :mod:`playground.managertower.worker`): no DeepSpeed, the CPU, the flags a user would type.

Per variant: ``pretrain`` (MLM + ITM) from the two experts with ``--model_config`` (the shared base) and
``--preset``; then ``vqa`` and ``f30k`` from its ``backbone/`` with ``--init_from``, ``--do_eval True`` and
``--results_name <variant>``. A run is reused when it is finished: ``COMPLETE`` (the train entry's marker) and, for a
fine-tuning, its ``results.json`` (written after the marker, so a run killed in its evaluation is run again).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from managertower.config import ManagerTowerConfig
from managertower.evaluate import RESULTS_FILE
from managertower.train.train import BACKBONE_DIR
from managertower.train.trainer import LOSS_PARTS
from playground.managertower.settings import VARIANTS, Stage, TwoTowerDemoConfig
from playground.plots import loss_history
from vlcommon.checkpoints import is_marked

TASKS = ("pretrain", "vqa", "f30k")
BASE_CONFIG = "base_config.json"


def write_base_config(cfg: TwoTowerDemoConfig, config: ManagerTowerConfig) -> Path:
    path = cfg.runs / BASE_CONFIG
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config.to_dict(), indent=1) + "\n")
    return path


def finished(folder: Path, task: str) -> bool:
    done = folder.is_dir() and is_marked(folder)
    return done and (folder / (BACKBONE_DIR if task == "pretrain" else RESULTS_FILE)).exists()


def _stage(cfg: TwoTowerDemoConfig, task: str) -> Stage:
    return getattr(cfg.steps, task)


def argv(cfg: TwoTowerDemoConfig, variant: str, task: str) -> list[str]:
    """The train entry's flags for one run."""
    stage, out = _stage(cfg, task), cfg.run_dir(variant, task)
    flags = [
        "--data_root", str(cfg.arrow), "--task", task, "--tokenizer", str(cfg.tokenizer), "--output_dir", str(out),
        "--max_steps", str(stage.steps), "--per_device_train_batch_size", str(stage.batch),
        "--learning_rate", stage.lr, "--lr_mult_head", stage.head, "--lr_mult_cross_modal", stage.cross,
        "--weight_decay", str(stage.weight_decay), "--max_text_len", str(cfg.sizes.max_text_len),
        "--seed", str(cfg.seed), "--data_seed", str(cfg.seed), "--logging_steps", "5", "--report_to", "none",
        "--save_strategy", "no", "--dataloader_num_workers", "0", "--disable_tqdm", "True",
        # Generated data has no bad record; the ledger's minimum keeps a tiny run from stopping on a first one.
        "--bad_sample_min_seen", "1000",
    ]  # fmt: skip
    if task == "pretrain":
        return flags + [
            "--model_config", str(cfg.runs / BASE_CONFIG), "--preset", VARIANTS[variant].preset,
            "--text_expert", str(cfg.experts / "roberta"), "--vision_expert", str(cfg.experts / "clip"),
        ]  # fmt: skip
    return flags + [
        "--init_from", str(cfg.run_dir(variant, "pretrain") / BACKBONE_DIR), "--do_eval", "True",
        "--results_name", variant, "--k_test", str(cfg.steps.k_test),
    ]  # fmt: skip


def run(cfg: TwoTowerDemoConfig, variant: str, task: str) -> float | None:
    """Train one run unless it is finished; returns its seconds, or None when it was reused."""
    from managertower.train.train import train

    out = cfg.run_dir(variant, task)
    if finished(out, task):
        return None
    started = time.time()
    train(argv(cfg, variant, task))
    return time.time() - started


def run_variant(cfg: TwoTowerDemoConfig, variant: str) -> dict[str, float | None]:
    """The variant's three runs in order (each reused when finished): seconds per task, None where reused."""
    return {task: run(cfg, variant, task) for task in TASKS}


def losses(cfg: TwoTowerDemoConfig, variant: str, task: str) -> list[float]:
    """The training losses the Trainer logged (every 5 steps)."""
    return [loss for _, loss in loss_history(cfg.run_dir(variant, task))]


def loss_parts(cfg: TwoTowerDemoConfig, variant: str, task: str) -> dict[str, tuple[float, float]]:
    """Per logged loss part (``mlm_loss``, ``itm_loss``, ``itc_loss``; ``loss`` for VQA): its first and last value,
    each the mean over a 5-step logging window."""
    state = json.loads((cfg.run_dir(variant, task) / "trainer_state.json").read_text())
    logged = [entry for entry in state["log_history"] if "loss" in entry]
    names = [name for name in LOSS_PARTS if name in logged[0]] or ["loss"]
    return {name: (float(logged[0][name]), float(logged[-1][name])) for name in names}


def results(cfg: TwoTowerDemoConfig, variant: str, task: str) -> dict:
    return json.loads((cfg.run_dir(variant, task) / RESULTS_FILE).read_text())
