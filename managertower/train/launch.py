"""The launcher behind ``scripts/managertower/*.sh``: ``python -m managertower.train.launch RECIPE [flags]`` (a recipe
of ``managertower/train/recipes.py``: pretrain, vqa, snli_ve, nlvr2, f30k, vqa_novlp, f30k_novlp) or
``python -m managertower.train.launch ablation [flags]`` (every row of an ablation, then the report).

It is where the environment the scripts document is read, once, into typed values; every check runs before
anything starts. The recipe, with the environment's overrides as typed field replacements, becomes a
:class:`~managertower.train.recipes.RunConfig` written to ``<output>/run_config.json``; the train entry runs under
``torchrun`` with ``--run_config`` that file, the paths, then the script's own arguments (which win over the
recipe). ``DRY_RUN=1`` prints the run config and the command, one argument per line, instead of running them.

Environment (docs/managertower_training.md, "Scripts"):
  DATA_ROOT      the folder of .arrow tables (python -m managertower.data.build)                        (required)
  MODEL          a preset: meter | bridgetower | managertower | table1/... | table2/... | fig6/...
                 (default: managertower; the ablation sets it per row)
  MODEL_CONFIG   a ManagerTowerConfig config.json the preset is applied to    (default: the base-size config)
  TEXT_EXPERT    RoBERTa weights, VISION_EXPERT CLIP weights: pre-training and the no-VLP recipes start from them
                 (required there; ALLOW_RANDOM_EXPERTS=1 starts from random encoders instead, for tests)
  INIT_FROM      fine-tuning after VLP starts from this backbone      (default: $OUTPUT_ROOT/$MODEL/pretrain/backbone)
  TOKENIZER      a tokenizer folder or name                                                 (default: roberta-base)
  NUM_GPUS       processes per node                        (default: the CUDA devices visible; required on CPU)
  NNODES         nodes (default 1); with NNODES > 1, NODE_RANK (or RANK), MASTER_ADDR and MASTER_PORT are required
  OUTPUT_ROOT    runs go to $OUTPUT_ROOT/<model>/<recipe>                 (default: <repo>/outputs/managertower)
  DEEPSPEED      a DeepSpeed config, or "none" for DDP                          (default: scripts/zero2.json)
  PRECISION      fp32 (default: the original's) | bf16 | fp16 | auto;  COMPILE=1 compiles the model
  SEED           (default 0); REPORT_TO (default wandb, offline unless WANDB_MODE is set); NUM_WORKERS (default 8)
  LR, BATCH_SIZE, PER_DEVICE, EPOCHS, MAX_STEPS, IMAGE_SIZE, WARMUP, WEIGHT_DECAY
                 replace the recipe's field (python -m managertower.train.recipes show vqa)
  ABLATION       ablation only: table1 | table2 | fig6 (required); ROWS a space-separated subset of its presets
                 (default: all of managertower.presets.ABLATIONS); TASKS a subset of "vqa_novlp f30k_novlp"
  DRY_RUN        1 prints the run config and the command instead of running it
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from managertower.presets import ABLATIONS, PRESETS, Ablation
from managertower.train.recipes import RECIPES, Recipe, RunConfig, accumulation, recipe
from vlcommon.launch import (
    Device,
    Env,
    LaunchError,
    Machine,
    Nodes,
    env_choice,
    env_float,
    env_int,
    env_switch,
    require,
    run_launcher,
    start_run,
)

REPO = Path(__file__).resolve().parents[2]
PROGRAM = "managertower"
NOVLP_TASKS = ("vqa_novlp", "f30k_novlp")
# Variable -> (recipe field, its type); integers must be >= 1.
OVERRIDES = {"LR": ("lr", float), "BATCH_SIZE": ("batch_size", int), "PER_DEVICE": ("per_device", int),
             "EPOCHS": ("epochs", int), "MAX_STEPS": ("max_steps", int), "IMAGE_SIZE": ("image_size", int),
             "WARMUP": ("warmup", float), "WEIGHT_DECAY": ("weight_decay", float)}  # fmt: skip


def note(message: str) -> None:
    print(f"[{PROGRAM}] {message}", file=sys.stderr, flush=True)


def recipe_from_env(name: str, env: Env) -> Recipe:
    """``name``'s recipe with the environment's overrides, each a typed field replacement; a value that cannot be
    one stops here, naming its variable."""
    overrides = {}
    for var, (field, kind) in OVERRIDES.items():
        if env.get(var):
            overrides[field] = env_int(env, var, minimum=1) if kind is int else env_float(env, var, 0.0)
    try:
        return recipe(name, **overrides)
    except ValueError as error:
        given = ", ".join(f"{var}={env[var]}" for var in OVERRIDES if env.get(var))
        raise LaunchError(f"{given}: {error}" if given else str(error)) from None


@dataclass(frozen=True, kw_only=True)
class Common:
    """What every run of one launch shares, checked once."""

    nodes: Nodes
    machine: Machine
    data_root: str
    tokenizer: str
    root: Path  # OUTPUT_ROOT
    seed: int

    @classmethod
    def from_env(cls, env: Env) -> Common:
        data_root = require(env, "DATA_ROOT", "the folder of .arrow tables (python -m managertower.data.build ...)")
        if not Path(data_root).is_dir():
            raise LaunchError(f"DATA_ROOT={data_root} is not a directory")
        seed = env_int(env, "SEED", 0)
        device = Device.probe()
        nodes = Nodes.from_env(env, device)
        # fp32 unless PRECISION says otherwise, and no TF32 matmuls: the original's precision.
        precision = {**env, "PRECISION": env.get("PRECISION") or "fp32"}
        machine = Machine.from_env(precision, device, deepspeed=REPO / "scripts" / "zero2.json", num_workers=8,
                                   attention=False)  # fmt: skip
        return cls(nodes=nodes, machine=replace(machine, tf32=False), data_root=data_root,
                   tokenizer=env.get("TOKENIZER") or "roberta-base", seed=seed,
                   root=Path(env.get("OUTPUT_ROOT") or REPO / "outputs" / "managertower"))  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Launch:
    """One run, checked: its run config, where it writes, and the flags for its paths."""

    config: RunConfig
    output: Path
    flags: list[str]


def model_flags(env: Env, name: str, r: Recipe, model: str, folder: Path) -> tuple[str | None, list[str]]:
    """The preset and the flags saying where the weights come from: the pre-trained backbone (fine-tuning after
    VLP), or the preset on the raw experts (pre-training, the no-VLP recipes)."""
    if r.vlp and name != "pretrain":
        init = Path(env.get("INIT_FROM") or folder / "pretrain" / "backbone")
        if not (init / "config.json").is_file():
            raise LaunchError(f"INIT_FROM={init} has no config.json: pre-train MODEL={model} first (pretrain.sh), "
                              "or set INIT_FROM")  # fmt: skip
        if not ((init.parent / "COMPLETE").is_file() or (init / "COMPLETE").is_file()):
            raise LaunchError(f"INIT_FROM={init}: its run has no COMPLETE marker (unfinished)")
        return None, ["--init_from", str(init)]
    flags = []
    if env.get("MODEL_CONFIG"):
        if not Path(env["MODEL_CONFIG"]).is_file():
            raise LaunchError(f"MODEL_CONFIG={env['MODEL_CONFIG']}: no such file")
        flags += ["--model_config", env["MODEL_CONFIG"]]
    for var, flag in (("TEXT_EXPERT", "--text_expert"), ("VISION_EXPERT", "--vision_expert")):
        if env.get(var):
            if not Path(env[var]).exists():
                raise LaunchError(f"{var}={env[var]} does not exist")
            flags += [flag, env[var]]
        elif env_switch(env, "ALLOW_RANDOM_EXPERTS"):
            note(f"{var} is not set: that encoder starts from random weights (ALLOW_RANDOM_EXPERTS=1)")
        else:
            raise LaunchError(f"{var} is not set: recipe {name} starts from the pre-trained experts (RoBERTa, CLIP); "
                              "ALLOW_RANDOM_EXPERTS=1 starts from random encoders")  # fmt: skip
    return model, flags


def plan(env: Env, common: Common, name: str, model: str) -> Launch:
    """Recipe ``name`` for preset ``model``, every setting checked."""
    if model not in PRESETS:
        raise LaunchError(f"MODEL={model} is not a preset: choose from {', '.join(PRESETS)}")
    r = recipe_from_env(name, env)
    try:
        grad_accum = accumulation(r, common.nodes.world_size)
    except ValueError as error:
        raise LaunchError(f"recipe {name} on {common.nodes.world_size} processes: {error}") from None
    folder = model.replace("/", "_")  # table1/aaum-fused -> table1_aaum-fused
    preset, weights = model_flags(env, name, r, model, common.root / folder)
    out = common.root / folder / name
    config = RunConfig(name=name, recipe=r, grad_accum=grad_accum, preset=preset, seed=common.seed,
                       results_name=None if name == "pretrain" else model, machine=common.machine)  # fmt: skip
    flags = ["--data_root", common.data_root, "--tokenizer", common.tokenizer, *weights, "--output_dir", str(out),
             "--run_name", f"{folder}-{name}-seed{common.seed}"]  # fmt: skip
    return Launch(config=config, output=out, flags=flags)


def start(env: Env, nodes: Nodes, launch: Launch, user: list[str]) -> int:
    """Run one launch (or print it, with ``DRY_RUN=1``); its exit status."""
    notes = [f"{launch.config.preset or 'backbone'} {launch.config.name}"]
    return start_run(env, nodes, module="managertower.train.train", config=launch.config, output=launch.output,
                     args=[*launch.flags, *user], project="managertower", notes=notes, note=note)  # fmt: skip


def ablation_runs(env: Env) -> list[tuple[str, str]]:
    """(preset, recipe) pairs of ``ABLATION``, every name checked before the first run: a typo must not surface
    hours into the ablation."""
    require(env, "ABLATION", "table1, table2 or fig6")
    chosen = env_choice(env, "ABLATION", Ablation, Ablation.TABLE1)
    rows = tuple(env["ROWS"].split()) if env.get("ROWS") else ABLATIONS[chosen]
    unknown = [row for row in rows if row not in PRESETS]
    if unknown:
        raise LaunchError(f"ROWS: {unknown} are not presets (managertower/presets.py)")
    tasks = (env.get("TASKS") or " ".join(NOVLP_TASKS)).split()
    for task in tasks:
        if task not in NOVLP_TASKS:
            raise LaunchError(f"TASKS: {task} is not one of {', '.join(NOVLP_TASKS)}")
    return [(row, task) for row in rows for task in tasks]


def main(argv: list[str] | None = None, env: Env | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    if not argv or argv[0] not in (*RECIPES, "ablation"):
        raise LaunchError(f"usage: python -m managertower.train.launch {{{','.join(RECIPES)},ablation}} [flags]")
    job, user = argv[0], argv[1:]
    runs = ablation_runs(env) if job == "ablation" else [(env.get("MODEL") or "managertower", job)]
    common = Common.from_env(env)
    launches = [plan(env, common, name, model) for model, name in runs]  # all checked before any runs
    for launch in launches:
        status = start(env, common.nodes, launch, user)
        if status != 0:
            return status
    if job == "ablation" and not env_switch(env, "DRY_RUN"):
        report = [sys.executable, "-m", "managertower.report", str(common.root), "--out", str(common.root / "report")]
        return subprocess.run(report, check=False).returncode
    return 0


if __name__ == "__main__":
    run_launcher(main, program=PROGRAM)
