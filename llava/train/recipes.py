"""The paper's four variants and the three curriculum stages, as typed data: the one home of both.

Every caller reads these tables: the stage scripts (``scripts/train/*.sh`` turn a recipe into the train entry's
flags), the eval scripts, ``llava.tools.budget``, ``llava.analysis`` and the playground demo. The environment
variables the scripts document (``LR_STAGE2``, ``BS_STAGE1``, ``MANAGER_TYPE``, ...) override the defaults here.

    python -m llava.train.recipes show stage2 --variant grid_manager   # what a stage runs, flag by flag
    python -m llava.train.recipes variants                              # key, grid, manager, label

The module needs nothing but the standard library, so the scripts run it by path (``python llava/train/recipes.py``)
without importing torch.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

StageName = Literal["stage1", "stage1_5", "stage2"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Variant:
    """One of the paper's Table XI rows: anyres grid images or not, managers or not."""

    key: str  # VARIANT of the scripts, the output folder name
    label: str  # as the paper's tables write it
    grid: bool
    manager: bool


VARIANTS: tuple[Variant, ...] = (
    Variant(key="baseline", label="Baseline", grid=False, manager=False),
    Variant(key="manager", label="+Manager", grid=False, manager=True),
    Variant(key="grid", label="+Grid", grid=True, manager=False),
    Variant(key="grid_manager", label="+Grid+Manager", grid=True, manager=True),
)
VARIANT_KEYS: tuple[str, ...] = tuple(v.key for v in VARIANTS)


def variant(name: str) -> Variant:
    """A variant by its key (``grid_manager``) or its label in the paper's tables (``+Grid+Manager``)."""
    for v in VARIANTS:
        if name in (v.key, v.label):
            return v
    raise ValueError(f"unknown variant {name!r}: expected one of {', '.join(VARIANT_KEYS)}")


def variant_of(*, grid: bool, manager: bool) -> Variant:
    """The variant a trained model is, from what its config says (never from a folder name)."""
    return next(v for v in VARIANTS if v.grid == grid and v.manager == manager)


@dataclass(frozen=True, kw_only=True, slots=True)
class Images:
    """How a stage feeds images: ``--image_aspect_ratio``, ``--image_grid_pinpoints``, ``--mm_patch_merge_type``."""

    aspect_ratio: str
    merge_type: str
    pinpoints: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class StageRecipe:
    """A curriculum stage's hyper-parameters. ``env`` names the suffix of its override variables (``LR_<env>``)."""

    name: StageName
    number: str  # as STAGES and the logs write it
    title: str
    env: str
    version: str  # conversation template
    tunable_parts: tuple[str, ...]
    learning_rate: str
    vision_tower_lr: str | None  # None: the tower is frozen in this stage
    batch_size: int  # per device
    grad_accum: int
    max_length: int  # tokens after image expansion
    save_steps_env: str
    save_steps: int
    plain_images: Images  # baseline, manager
    grid_images: Images  # grid, grid_manager
    grouped_sampler: bool  # --group_by_modality_length with drop_last


# LLaVA-OneVision's mid-stage pixel pinpoints for a 384 crop, and its single-image anyres_max_9 grid.
OV_MID_STAGE_PINPOINTS = "[(384, 768), (768, 384), (768, 768), (1152, 384), (384, 1152)]"
OV_SI_PINPOINTS = "(1x1),...,(6x6)"
_FULL = ("mm_vision_tower", "mm_mlp_adapter", "mm_language_model")

STAGES: tuple[StageRecipe, ...] = (
    StageRecipe(
        name="stage1",
        number="1",
        title="language-image alignment (LCS-558K)",
        env="STAGE1",
        version="plain",
        tunable_parts=("mm_mlp_adapter",),
        learning_rate="1e-3",
        vision_tower_lr=None,
        batch_size=16,
        grad_accum=1,
        max_length=8192,
        save_steps_env="SAVE_STEPS_STAGE1",
        save_steps=2000,
        plain_images=Images(aspect_ratio="square", merge_type="flat"),
        grid_images=Images(aspect_ratio="square", merge_type="flat"),
        grouped_sampler=False,
    ),
    StageRecipe(
        name="stage1_5",
        number="1.5",
        title="high-quality knowledge (the 4M mid-stage mixture)",
        env="STAGE1_5",
        version="qwen_1_5",
        tunable_parts=_FULL,
        learning_rate="1e-5",
        vision_tower_lr="2e-6",
        batch_size=4,
        grad_accum=1,
        max_length=16384,
        save_steps_env="SAVE_STEPS",
        save_steps=1000,
        plain_images=Images(aspect_ratio="pad", merge_type="spatial_unpad"),
        grid_images=Images(aspect_ratio="anyres", merge_type="spatial_unpad", pinpoints=OV_MID_STAGE_PINPOINTS),
        grouped_sampler=True,
    ),
    StageRecipe(
        name="stage2",
        number="2",
        title="single-image instructions (the 3.2M SI mixture)",
        env="STAGE2",
        version="qwen_1_5",
        tunable_parts=_FULL,
        learning_rate="1e-5",
        vision_tower_lr="2e-6",
        batch_size=1,
        grad_accum=2,
        max_length=16384,
        save_steps_env="SAVE_STEPS",
        save_steps=1000,
        plain_images=Images(aspect_ratio="pad", merge_type="spatial_unpad"),
        grid_images=Images(aspect_ratio="anyres_max_9", merge_type="spatial_unpad", pinpoints=OV_SI_PINPOINTS),
        grouped_sampler=True,
    ),
)
STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)


def stage(name: str) -> StageRecipe:
    for s in STAGES:
        if name in (s.name, s.number):
            return s
    raise ValueError(f"unknown stage {name!r}: expected one of {', '.join(STAGE_NAMES)}")


def final_images(var: Variant) -> Images:
    """How the trained model of a variant sees images: the last stage's setting."""
    return STAGES[-1].grid_images if var.grid else STAGES[-1].plain_images


@dataclass(frozen=True, kw_only=True, slots=True)
class Shared:
    """What every stage shares. The comments name the variables that override a default."""

    fixed: tuple[str, ...] = (
        "--mm_projector_type", "mlp2x_gelu",
        "--mm_vision_select_layer", "-2",
        "--gradient_checkpointing", "True",
        "--weight_decay", "0.",
        "--warmup_ratio", "0.03",
        "--lr_scheduler_type", "cosine",
        "--logging_steps", "1",
        "--num_train_epochs", "1",
        "--save_strategy", "steps",
    )  # fmt: skip
    save_total_limit: int = 1  # SAVE_TOTAL_LIMIT
    num_workers: int = 4  # NUM_WORKERS
    manager_type: str = "saum"  # MANAGER_TYPE
    manager_experts: str = "top_half"  # MANAGER_EXPERTS
    manager_inject: str = "count:6"  # MANAGER_INJECT


SHARED = Shared()


class RecipeError(ValueError):
    """An override variable holds something its flag cannot take."""


def _int(env: Mapping[str, str], name: str, default: int) -> str:
    value = env.get(name) or str(default)
    if not value.isdigit():
        raise RecipeError(f"{name}={value} must be a non-negative integer")
    return value


def _number(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    try:
        float(value)
    except ValueError:
        raise RecipeError(f"{name}={value} must be a number (e.g. 1e-5)") from None
    return value


def _manager_args(recipe: StageRecipe, env: Mapping[str, str], learning_rate: str) -> list[str]:
    return [
        "--manager_type", env.get("MANAGER_TYPE") or SHARED.manager_type,
        "--manager_expert_layers", env.get("MANAGER_EXPERTS") or SHARED.manager_experts,
        "--manager_inject_layers", env.get("MANAGER_INJECT") or SHARED.manager_inject,
        "--mm_manager_lr", _number(env, f"MANAGER_LR_{recipe.env}", learning_rate),
    ]  # fmt: skip


def stage_argv(recipe: StageRecipe, var: Variant, env: Mapping[str, str] | None = None) -> list[str]:
    """The train-entry flags of one stage and variant, overrides from ``env`` (default: the process environment).

    Paths (models, data, output) and the machine's flags (DeepSpeed, precision, attention) are the stage scripts'.
    """
    env = os.environ if env is None else env
    s = recipe.env
    lr = _number(env, f"LR_{s}", recipe.learning_rate)
    images = recipe.grid_images if var.grid else recipe.plain_images
    parts = recipe.tunable_parts + (("mm_manager",) if var.manager else ())
    argv = ["--version", recipe.version, "--mm_tunable_parts", ",".join(parts)]
    argv += ["--image_aspect_ratio", images.aspect_ratio]
    if images.pinpoints is not None:
        argv += ["--image_grid_pinpoints", env.get(f"PINPOINTS_{s}") or images.pinpoints]
    argv += ["--mm_patch_merge_type", images.merge_type]
    if var.manager:
        argv += _manager_args(recipe, env, lr)
    argv += ["--learning_rate", lr]
    if recipe.vision_tower_lr is not None:
        argv += ["--mm_vision_tower_lr", _number(env, f"VISION_LR_{s}", recipe.vision_tower_lr)]
    argv += [
        "--per_device_train_batch_size", _int(env, f"BS_{s}", recipe.batch_size),
        "--gradient_accumulation_steps", _int(env, f"GA_{s}", recipe.grad_accum),
        "--model_max_length", _int(env, f"MAX_LEN_{s}", recipe.max_length),
    ]  # fmt: skip
    if recipe.grouped_sampler:
        argv += ["--group_by_modality_length", "True", "--dataloader_drop_last", "True"]
    argv += ["--save_steps", _int(env, recipe.save_steps_env, recipe.save_steps)]
    argv += [*SHARED.fixed, "--save_total_limit", _int(env, "SAVE_TOTAL_LIMIT", SHARED.save_total_limit)]
    argv += ["--dataloader_num_workers", _int(env, "NUM_WORKERS", SHARED.num_workers)]
    return argv


def _images_cell(images: Images, recipe: StageRecipe) -> str:
    cell = f"`{images.aspect_ratio}`"
    if images.pinpoints is not None:
        cell += f", pinpoints `{images.pinpoints}` (`PINPOINTS_{recipe.env}`)"
    return f"{cell}, `{images.merge_type}`"


def _row(head: str, cells: list[str]) -> str:
    return f"| {head} | " + " | ".join(cells) + " |"


def stage_table() -> str:
    """The docs' hyper-parameter table (docs/training.md), rendered from ``STAGES``: a test keeps them equal."""
    plain = ", ".join(f"`{v.key}`" for v in VARIANTS if not v.grid)
    grid = ", ".join(f"`{v.key}`" for v in VARIANTS if v.grid)
    lines = [
        _row("", [f"stage {s.number}" for s in STAGES]),
        "|---" * (len(STAGES) + 1) + "|",
        _row("template `--version`", [f"`{s.version}`" for s in STAGES]),
        _row(
            "`--mm_tunable_parts` (manager variants add `,mm_manager`)",
            [f"`{','.join(s.tunable_parts)}`" for s in STAGES],
        ),
        _row("`--learning_rate` (`LR_STAGE*`); projector lr", [s.learning_rate for s in STAGES]),
        _row(
            "`--mm_manager_lr` (`MANAGER_LR_STAGE*`, manager variants)",
            [f"= stage lr, {s.learning_rate}" for s in STAGES],
        ),
        _row("`--mm_vision_tower_lr` (`VISION_LR_STAGE*`)", [s.vision_tower_lr or "(tower frozen)" for s in STAGES]),
        _row("per-device batch x GA (`BS_STAGE*`, `GA_STAGE*`)", [f"{s.batch_size} x {s.grad_accum}" for s in STAGES]),
        _row("global batch, 2 x 8 GPUs", [str(16 * s.batch_size * s.grad_accum) for s in STAGES]),
        _row(
            "`--model_max_length` (`MAX_LEN_STAGE*`), tokens after image expansion", [str(s.max_length) for s in STAGES]
        ),
        _row(f"{plain} images", [_images_cell(s.plain_images, s) for s in STAGES]),
        _row(f"{grid} images", [_images_cell(s.grid_images, s) for s in STAGES]),
        _row(
            "sampler",
            [
                "`--group_by_modality_length True --dataloader_drop_last True`" if s.grouped_sampler else "random"
                for s in STAGES
            ],
        ),
        _row("`--save_steps`", [f"{s.save_steps} (`{s.save_steps_env}`)" for s in STAGES]),
    ]
    return "\n".join(lines)


def variant_table() -> str:
    """The docs' variant table (docs/training.md), rendered from ``VARIANTS`` and ``STAGES``."""
    later = [s for s in STAGES if s.name != "stage1"]
    grid_images = ", ".join(f"stage {s.number} `{s.grid_images.aspect_ratio}`" for s in later)
    plain_images = ", ".join(sorted({f"`{s.plain_images.aspect_ratio}`" for s in later}))
    managers = (
        f"`{SHARED.manager_type}` (`MANAGER_TYPE`), experts `{SHARED.manager_experts}` (`MANAGER_EXPERTS`), "
        f"injected `{SHARED.manager_inject}` (`MANAGER_INJECT`)"
    )
    lines = ["| `VARIANT` | in the paper's tables | images (stages 1.5 and 2) | managers |", "|---|---|---|---|"]
    for v in VARIANTS:
        lines.append(
            _row(f"`{v.key}`", [v.label, grid_images if v.grid else plain_images, managers if v.manager else "none"])
        )
    return "\n".join(lines)


def _show(recipe: StageRecipe, var: Variant) -> str:
    argv = stage_argv(recipe, var)
    pairs: list[str] = []
    for arg in argv:
        if arg.startswith("--"):
            pairs.append(arg)
        else:
            pairs[-1] += " " + shlex.quote(arg)
    head = f"# stage {recipe.number}, {recipe.title}; variant {var.key} ({var.label})"
    tail = (
        "# The stage script adds the paths (--model_name_or_path, --data_path, --image_folder, --output_dir, "
        "--run_name, ...)\n# and this machine's flags (--deepspeed, precision, --attn_implementation, compile, "
        f"--report_to),\n# then its own arguments. DRY_RUN=1 bash scripts/train/{recipe.name}.sh prints the whole "
        "command without running it."
    )
    body = [f"    {p} \\" for p in pairs[:-1]] + [f"    {pairs[-1]}"]
    return "\n".join([head, "python -m llava.train.train \\", *body, tail])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llava.train.recipes", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("show", "the flags a stage runs, readable"), ("argv", "the same, one per line (scripts)")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("stage", help=f"{', '.join(STAGE_NAMES)} (or 1, 1.5, 2)")
        cmd.add_argument("--variant", required=True, help=", ".join(VARIANT_KEYS))
    sub.add_parser("variants", help="one line per variant: key, grid (0/1), manager (0/1), label")
    sub.add_parser("variant", help="checks a variant key; prints grid and manager (0/1)").add_argument("key")
    sub.add_parser("tables", help="the docs' variant and hyper-parameter tables, in markdown")
    args = parser.parse_args(argv)
    try:
        if args.command in ("show", "argv"):
            recipe, var = stage(args.stage), variant(args.variant)
            print(_show(recipe, var) if args.command == "show" else "\n".join(stage_argv(recipe, var)))
        elif args.command == "variants":
            print("\n".join(f"{v.key} {int(v.grid)} {int(v.manager)} {v.label}" for v in VARIANTS))
        elif args.command == "variant":
            v = variant(args.key)
            print(int(v.grid), int(v.manager))
        else:
            print(variant_table() + "\n\n" + stage_table())
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
