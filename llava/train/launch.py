"""The launcher behind ``scripts/train/*.sh``: ``python -m llava.train.launch {stage1,stage1_5,stage2,curriculum}``.

It is the boundary where the environment the stage scripts document (docs/training.md) is read, once: the
variant, the paths, the recipe's overrides (``LR_STAGE2``, ``MANAGER_INJECT``, ...) as typed field replacements,
and this machine (``vlcommon.launch``). Every check runs before anything starts; the resolved
:class:`~llava.train.recipes.RunConfig` is written to ``<output>/run_config.json`` and the train entry runs under
``torchrun`` with ``--run_config`` that file, the paths, then the script's own arguments (which win over the
recipe). ``DRY_RUN=1`` prints the run config and the command instead.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from llava.model.anyres import parse_grid_pinpoints
from llava.model.manager_config import ManagerChoice, ManagerType
from llava.train.arguments import parse_expert_choice, parse_inject_choice
from llava.train.recipes import STAGES, RunConfig, StageRecipe, run_config, stage
from llava.variants import Variant, variant
from vlcommon import launch
from vlcommon.enums import member
from vlcommon.launch import Device, Env, LaunchError, Machine, Nodes
from vlcommon.runconfig import replace_fields

REPO = Path(__file__).resolve().parents[2]
PROGRAM = "llava-ovm"
LLM_HINT = "the LLM to start from: a local directory or a hub id such as Qwen/Qwen2-0.5B-Instruct"
TOWER_HINT = "the SigLIP tower: a local directory or a hub id such as google/siglip-so400m-patch14-384"


def note(message: str) -> None:
    print(f"[{PROGRAM}] {message}", file=sys.stderr, flush=True)


def with_overrides(config: RunConfig, recipe: StageRecipe, env: Env) -> RunConfig:
    """``config`` with the environment's overrides of ``recipe``'s stage, each a typed field replacement; a value
    that cannot be one stops here, naming its variable."""
    s, o, b = recipe.env, config.optimisation, config.batching
    lr = launch.env_float(env, f"LR_{s}", o.learning_rate)
    optimisation = replace_fields(
        o,
        where="optimisation",
        learning_rate=lr,
        vision_tower_lr=o.vision_tower_lr and launch.env_float(env, f"VISION_LR_{s}", o.vision_tower_lr),
        # The managers train at the stage's lr (an LR_ override included) unless MANAGER_LR_ says otherwise.
        manager_lr=config.managers and launch.env_float(env, f"MANAGER_LR_{s}", lr),
    )
    batching = replace_fields(
        b,
        where="batching",
        per_device=launch.env_int(env, f"BS_{s}", b.per_device, minimum=1),
        grad_accum=launch.env_int(env, f"GA_{s}", b.grad_accum, minimum=1),
        max_length=launch.env_int(env, f"MAX_LEN_{s}", b.max_length, minimum=1),
    )
    saving = replace_fields(
        config.saving,
        where="saving",
        steps=launch.env_int(env, recipe.save_steps_env, config.saving.steps, minimum=1),
        total_limit=launch.env_int(env, "SAVE_TOTAL_LIMIT", config.saving.total_limit, minimum=1),
    )
    images = config.images
    if images.grids and env.get(f"PINPOINTS_{s}"):
        images = replace_fields(images, where="images", grids=_grid_range(env, f"PINPOINTS_{s}"))
    managers = config.managers and _managers(env).over(config.managers)
    parts = {"optimisation": optimisation, "batching": batching, "saving": saving, "images": images}
    return replace_fields(config, managers=managers, **parts)


def _grid_range(env: Env, name: str) -> tuple[tuple[int, ...], ...]:
    """LLaVA-NeXT's range form, ``(1x1),...,(3x3)``, in crops (pixel lists depend on the tower: pass those with
    ``--image_grid_pinpoints`` after the script's name)."""
    value = env[name]
    if "x" not in value:
        raise LaunchError(f"{name}={value}: expected a range of grids like (1x1),...,(3x3)")
    try:
        return tuple(tuple(p) for p in parse_grid_pinpoints(value, 1))
    except ValueError as error:
        raise LaunchError(f"{name}={value}: {error}") from None


def _managers(env: Env) -> ManagerChoice:
    return ManagerChoice(
        type=member(ManagerType, env["MANAGER_TYPE"], "MANAGER_TYPE") if env.get("MANAGER_TYPE") else None,
        experts=parse_expert_choice(env["MANAGER_EXPERTS"], "MANAGER_EXPERTS") if env.get("MANAGER_EXPERTS") else None,
        inject=parse_inject_choice(env["MANAGER_INJECT"], "MANAGER_INJECT") if env.get("MANAGER_INJECT") else None,
    )


@dataclass(frozen=True, kw_only=True)
class StageLaunch:
    """One stage, checked: its run config, where it writes, and the flags for its paths."""

    recipe: StageRecipe
    config: RunConfig
    output: Path
    paths: list[str]


def output_dir(env: Env, recipe: StageRecipe, var: Variant) -> Path:
    root = Path(env.get("OUTPUT_ROOT") or REPO / "outputs")
    return Path(env.get(f"{recipe.env}_DIR") or root / var.key / recipe.stage.value)


def _data_flags(env: Env, recipe: StageRecipe) -> list[str]:
    """``--data_path`` (a .json/.jsonl file or a .yaml mixture; a brace list ``dir/{a,b}.json`` passes unchecked)
    and ``--image_folder`` (``IMAGE_FOLDER_<STAGE>``, else ``IMAGE_FOLDER``; only a mixture may go without)."""
    name = f"DATA_{recipe.env}"
    data = launch.require(env, name, "the training data: a LLaVA .json/.jsonl file or a .yaml mixture")
    if "{" not in data and not Path(data).is_file():
        raise LaunchError(f"{name}={data}: no such file")
    folder = env.get(f"IMAGE_FOLDER_{recipe.env}") or env.get("IMAGE_FOLDER") or ""
    if not folder:
        if not data.endswith((".yaml", ".yml")):
            raise LaunchError(f"IMAGE_FOLDER (or IMAGE_FOLDER_{recipe.env}) is not set: the folder that the image "
                              f"paths of {data} are relative to")  # fmt: skip
        return ["--data_path", data]
    if not Path(folder).is_dir():
        raise LaunchError(f"image folder of stage {recipe.number}: {folder} is not a directory")
    return ["--data_path", data, "--image_folder", folder]


def check_stage(env: Env, recipe: StageRecipe, var: Variant, machine: Machine) -> StageLaunch:
    """What a stage needs from the environment, checked; the outputs of earlier stages are checked by
    :func:`stage_inputs` when the stage starts (a curriculum checks every stage first, then runs them)."""
    models = []
    if recipe.stage.value != "stage2":
        models = ["--model_name_or_path", launch.model_dir(env, "LLM", LLM_HINT),
                  "--vision_tower", launch.model_dir(env, "VISION_TOWER", TOWER_HINT)]  # fmt: skip
    out = output_dir(env, recipe, var)
    config = replace(with_overrides(run_config(recipe, var), recipe, env), machine=machine)
    prefix = env.get("RUN_NAME_PREFIX") or "llava-ovm"
    paths = [*models, *_data_flags(env, recipe), "--output_dir", str(out),
             "--run_name", f"{prefix}-{var.key}-{recipe.stage}"]  # fmt: skip
    return StageLaunch(recipe=recipe, config=config, output=out, paths=paths)


def require_complete(env: Env, nodes: Nodes, folder: Path, what: str, hint: str) -> None:
    """``folder`` is a finished stage output (it holds the ``COMPLETE`` marker the train entry writes last). Nodes
    other than 0 of a multi-node run wait up to ``STAGE_WAIT_S`` seconds (default 600) for node 0 to write it;
    ``REQUIRE_COMPLETE=0`` accepts a folder without it (a checkpoint trained elsewhere)."""
    if not launch.env_switch(env, "REQUIRE_COMPLETE", True):
        return
    limit = launch.env_int(env, "STAGE_WAIT_S", 600) if nodes.node_rank > 0 else 0
    waited = 0
    while not (folder / "COMPLETE").is_file() and waited < limit:
        if waited == 0:
            note(f"waiting up to {limit} s for node 0 to finish {what} ({folder}/COMPLETE)")
        time.sleep(10)
        waited += 10
    if not folder.is_dir():
        raise LaunchError(f"{what} is missing: {folder} does not exist ({hint})")
    if not (folder / "COMPLETE").is_file():
        raise LaunchError(f"{what} is incomplete: {folder} has no COMPLETE marker (the run was interrupted or is "
                          "still running; re-run that stage to finish it, or set REQUIRE_COMPLETE=0 for a checkpoint "
                          "trained elsewhere)")  # fmt: skip


def stage_inputs(env: Env, nodes: Nodes, planned: StageLaunch, var: Variant) -> list[str]:
    """The flags naming the previous stage's output, which must be complete."""
    previous = {"stage1_5": STAGES[0], "stage2": STAGES[1]}.get(planned.recipe.stage.value)
    if previous is None:
        return []
    folder = output_dir(env, previous, var)
    hint = f"run {previous.stage}.sh for VARIANT={var.key} first, or set {previous.env}_DIR"
    if previous is STAGES[0]:
        adapter = env.get("STAGE1_ADAPTER")
        if not adapter:
            require_complete(env, nodes, folder, "the stage 1 output", hint + " / STAGE1_ADAPTER")
            adapter = str(folder / "mm_adapter.safetensors")
        if not Path(adapter).is_file():
            raise LaunchError(f"stage 1 output missing: {adapter} does not exist ({hint} / STAGE1_ADAPTER)")
        if not (Path(adapter).parent / "config.json").is_file():
            note(f"no config.json beside {adapter}: the multimodal settings come from the recipe and flags alone")
        return ["--pretrain_mm_mlp_adapter", adapter]
    require_complete(env, nodes, folder, "the stage 1.5 output", hint)
    for pattern, what in (("config.json", "config.json"), ("*.safetensors", "model weights"),
                          ("tokenizer_config.json", "tokenizer")):  # fmt: skip
        if not any(folder.glob(pattern)) and not (what == "model weights" and any(folder.glob("pytorch_model*.bin"))):
            raise LaunchError(f"stage 1.5 output incomplete: no {what} in {folder} ({hint})")
    return ["--model_name_or_path", str(folder)]


def _last(args: list[str], flag: str, default: int) -> int:
    values = [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]
    return int(values[-1]) if values and values[-1].isdigit() else default


def start(env: Env, nodes: Nodes, planned: StageLaunch, var: Variant, user: list[str]) -> int:
    """Run one stage (its previous stage's output checked first); its exit status."""
    m, b = planned.config.machine, planned.config.batching
    batch = _last(user, "--per_device_train_batch_size", b.per_device)
    accum = _last(user, "--gradient_accumulation_steps", b.grad_accum)
    where = f"stage {planned.recipe.number}, variant {var.key}, node {nodes.node_rank} of {nodes.nnodes}"
    notes = [
        f"{where}, {nodes.processes} processes per node, {m.precision}, {m.attention}",
        f"global batch = {nodes.nnodes} nodes x {nodes.processes} x {batch} per device x {accum} accumulation = "
        + str(nodes.world_size * batch * accum),
    ]
    args = [*stage_inputs(env, nodes, planned, var), *planned.paths, *user]
    # torchrun would set 1 thread per process and warn; LLaVA-OneVision's scripts use 8.
    threads = {"OMP_NUM_THREADS": env.get("OMP_NUM_THREADS") or "8"}
    return launch.start_run(
        env, nodes, module="llava.train.train", config=planned.config, output=planned.output, args=args,
        project="llava-ov-manager", notes=notes, note=note, extra_env=threads,
    )  # fmt: skip


def stages_to_run(env: Env, job: str) -> list[StageRecipe]:
    if job != "curriculum":
        return [stage(job)]
    names = (env.get("STAGES") or "1 1.5 2").split()
    if not names:
        raise LaunchError("STAGES is empty")
    unknown = [n for n in names if n not in ("1", "1.5", "1_5", "2")]
    if unknown:
        raise LaunchError(f"STAGES: unknown stage '{unknown[0]}' (expected 1, 1.5 or 2)")
    return [stage(n.replace("_", ".")) for n in names]


def main(argv: list[str] | None = None, env: Env | None = None) -> int:
    import os

    argv = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    if not argv or argv[0] not in ("stage1", "stage1_5", "stage2", "curriculum"):
        raise LaunchError("usage: python -m llava.train.launch {stage1,stage1_5,stage2,curriculum} [flags]")
    job, user = argv[0], argv[1:]
    key = launch.require(
        env, "VARIANT", "one of the variants of llava/variants.py: baseline, manager, grid, grid_manager"
    )
    try:
        var = variant(key)
    except ValueError as error:
        raise LaunchError(f"VARIANT={key}: {error}") from None
    device = Device.probe()
    nodes = Nodes.from_env(env, device)
    machine = Machine.from_env(env, device, deepspeed=REPO / "scripts" / "zero3.json", num_workers=4)
    plan = [check_stage(env, r, var, machine) for r in stages_to_run(env, job)]  # all checked before any runs
    for planned in plan:
        if job == "curriculum":
            note(f"curriculum {var.key}: stage {planned.recipe.number} ({planned.output})")
        began = time.monotonic()
        status = start(env, nodes, planned, var, user)
        if status != 0:
            return status
        if job == "curriculum":
            note(f"curriculum {var.key}: stage {planned.recipe.number} finished in {time.monotonic() - began:.0f} s")
    if job == "curriculum":
        note(f"curriculum {var.key} done (stages: {' '.join(p.recipe.number for p in plan)})")
    return 0


if __name__ == "__main__":
    launch.run_launcher(main, program=PROGRAM)
