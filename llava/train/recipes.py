"""The three curriculum stages as typed recipes, and the run config a stage resolves into: their one home.

A :class:`StageRecipe` holds a stage's hyper-parameters; :func:`run_config` turns it, for one variant
(``llava.variants``), into the :class:`RunConfig` that the launcher (``llava.train.launch``, behind
``scripts/train/*.sh``) hands to the train entry as typed values (``--run_config``, ``vlcommon.runconfig``).
Overrides are typed field replacements (:func:`vlcommon.runconfig.replace_fields`), with errors naming the field.

    python -m llava.train.recipes show stage2 --variant grid_manager   # what a stage runs, field by field
    python -m llava.tools.recipe_docs                                   # the docs' tables, from this registry
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass

from llava.model.anyres import AspectRatio, AspectRatioMode
from llava.model.config import MergeType
from llava.model.manager_config import ExpertChoice, InjectChoice, ManagerChoice, ManagerType
from llava.train.tunable import Part
from llava.variants import VARIANT_KEYS, Variant, variant
from vlcommon.enums import StrEnum
from vlcommon.launch import Machine
from vlcommon.runconfig import to_dict


class Stage(StrEnum):
    STAGE1 = "stage1"
    STAGE1_5 = "stage1_5"
    STAGE2 = "stage2"


class Template(StrEnum):
    """The conversation template (``--version``)."""

    PLAIN = "plain"
    QWEN_1_5 = "qwen_1_5"


@dataclass(frozen=True, kw_only=True, slots=True)
class Images:
    """How a stage feeds images (``--image_aspect_ratio``, ``--mm_patch_merge_type``, the anyres grid)."""

    aspect_ratio: AspectRatioMode  # str() is LLaVA-NeXT's value: square | pad | anyres | anyres_max_N
    merge_type: MergeType
    # anyres: the candidate grids, (columns, rows) of crops; the pixel pinpoints are these times the crop size.
    grids: tuple[tuple[int, ...], ...] = ()


def grid_range(largest: int) -> tuple[tuple[int, int], ...]:
    """LLaVA-NeXT's ``(1x1),...,(NxN)``: every grid of 1..N columns and 1..N rows, columns outer."""
    return tuple((c, r) for c in range(1, largest + 1) for r in range(1, largest + 1))


@dataclass(frozen=True, kw_only=True, slots=True)
class StageRecipe:
    """A curriculum stage's hyper-parameters. ``env`` is the suffix of its override variables (``LR_<env>``)."""

    stage: Stage
    number: str  # as STAGES and the logs write it
    title: str
    env: str
    template: Template
    tunable_parts: tuple[Part, ...]
    learning_rate: float
    vision_tower_lr: float | None  # None: the tower is frozen in this stage
    batch_size: int  # per device
    grad_accum: int
    max_length: int  # tokens after image expansion
    save_steps_env: str
    save_steps: int
    plain_images: Images  # baseline, manager
    grid_images: Images  # grid, grid_manager
    grouped_sampler: bool  # --group_by_modality_length with drop_last


# LLaVA-OneVision's mid-stage grids (its pixel pinpoints for a 384 crop) and its single-image anyres_max_9 range.
OV_MID_STAGE_GRIDS = ((1, 2), (2, 1), (2, 2), (3, 1), (1, 3))
OV_SI_GRIDS = grid_range(6)
_FULL = (Part.VISION_TOWER, Part.PROJECTOR, Part.LANGUAGE_MODEL)
_SQUARE = AspectRatioMode(name=AspectRatio.SQUARE)
_PAD = Images(aspect_ratio=AspectRatioMode(name=AspectRatio.PAD), merge_type=MergeType.SPATIAL_UNPAD)

STAGES: tuple[StageRecipe, ...] = (
    StageRecipe(stage=Stage.STAGE1, number="1", title="language-image alignment (LCS-558K)", env="STAGE1",
                template=Template.PLAIN, tunable_parts=(Part.PROJECTOR,), learning_rate=1e-3, vision_tower_lr=None,
                batch_size=16, grad_accum=1, max_length=8192, save_steps_env="SAVE_STEPS_STAGE1", save_steps=2000,
                plain_images=Images(aspect_ratio=_SQUARE, merge_type=MergeType.FLAT),
                grid_images=Images(aspect_ratio=_SQUARE, merge_type=MergeType.FLAT), grouped_sampler=False),
    StageRecipe(stage=Stage.STAGE1_5, number="1.5", title="high-quality knowledge (the 4M mid-stage mixture)",
                env="STAGE1_5", template=Template.QWEN_1_5, tunable_parts=_FULL, learning_rate=1e-5,
                vision_tower_lr=2e-6, batch_size=4, grad_accum=1, max_length=16384, save_steps_env="SAVE_STEPS",
                save_steps=1000, plain_images=_PAD,
                grid_images=Images(aspect_ratio=AspectRatioMode(name=AspectRatio.ANYRES),
                                   merge_type=MergeType.SPATIAL_UNPAD, grids=OV_MID_STAGE_GRIDS),
                grouped_sampler=True),
    StageRecipe(stage=Stage.STAGE2, number="2", title="single-image instructions (the 3.2M SI mixture)",
                env="STAGE2", template=Template.QWEN_1_5, tunable_parts=_FULL, learning_rate=1e-5,
                vision_tower_lr=2e-6, batch_size=1, grad_accum=2, max_length=16384, save_steps_env="SAVE_STEPS",
                save_steps=1000, plain_images=_PAD,
                grid_images=Images(aspect_ratio=AspectRatioMode(name=AspectRatio.ANYRES_MAX, max_num_crops=9),
                                   merge_type=MergeType.SPATIAL_UNPAD, grids=OV_SI_GRIDS),
                grouped_sampler=True),
)  # fmt: skip
STAGE_NAMES: tuple[str, ...] = tuple(s.stage.value for s in STAGES)
# The paper's managers (Sec. V-B2): SAUM, experts from the top half of the tower, 6 managers every 4 layers.
PAPER_MANAGERS = ManagerChoice(type=ManagerType.SAUM, experts=ExpertChoice(), inject=InjectChoice())


def stage(name: str) -> StageRecipe:
    for s in STAGES:
        if name in (s.stage.value, s.number):
            return s
    raise ValueError(f"unknown stage {name!r}: expected one of {', '.join(STAGE_NAMES)}")


def final_images(var: Variant) -> Images:
    """How the trained model of a variant sees images: the last stage's setting."""
    return STAGES[-1].grid_images if var.grid else STAGES[-1].plain_images


@dataclass(frozen=True, kw_only=True, slots=True)
class Optimisation:
    learning_rate: float  # the projector's too
    vision_tower_lr: float | None  # None: the tower is frozen
    manager_lr: float | None  # None: no managers
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    scheduler: str = "cosine"
    epochs: float = 1.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Batching:
    per_device: int
    grad_accum: int
    max_length: int  # tokens after image expansion
    grouped_sampler: bool  # group by modality and length, drop the last incomplete batch


@dataclass(frozen=True, kw_only=True, slots=True)
class Saving:
    steps: int
    total_limit: int = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class RunConfig:
    """What one stage of one variant runs: the recipe resolved, overrides applied, with this machine's settings.
    Paths (models, data, output) stay command-line flags: the launcher passes them beside ``--run_config``."""

    stage: Stage
    variant: str
    template: Template
    tunable_parts: tuple[Part, ...]
    images: Images
    managers: ManagerChoice | None  # None: no managers (the variant has none)
    optimisation: Optimisation
    batching: Batching
    saving: Saving
    machine: Machine | None = None  # None: the train entry's own defaults
    projector_type: str = "mlp2x_gelu"
    vision_select_layer: int = -2
    gradient_checkpointing: bool = True

    def flag_defaults(self) -> dict:
        """The train entry's flags this config sets, as typed values (the parser's defaults). The tunable parts,
        the managers and the anyres grids do not go through flags: the entry takes them typed from here."""
        o, b, images = self.optimisation, self.batching, self.images
        values = {
            "version": self.template.value, "image_aspect_ratio": str(images.aspect_ratio),
            "mm_patch_merge_type": images.merge_type.value, "mm_projector_type": self.projector_type,
            "mm_vision_select_layer": self.vision_select_layer, "gradient_checkpointing": self.gradient_checkpointing,
            "learning_rate": o.learning_rate, "mm_vision_tower_lr": o.vision_tower_lr, "mm_manager_lr": o.manager_lr,
            "weight_decay": o.weight_decay, "warmup_ratio": o.warmup_ratio, "lr_scheduler_type": o.scheduler,
            "num_train_epochs": o.epochs, "per_device_train_batch_size": b.per_device,
            "gradient_accumulation_steps": b.grad_accum, "model_max_length": b.max_length,
            "group_by_modality_length": b.grouped_sampler, "dataloader_drop_last": b.grouped_sampler,
            "save_strategy": "steps", "save_steps": self.saving.steps, "save_total_limit": self.saving.total_limit,
            "logging_steps": 1,
        }  # fmt: skip
        if self.machine is not None:
            values.update(self.machine.training_arguments(), attn_implementation=self.machine.attention.value)
        return values


def run_config(recipe: StageRecipe, var: Variant) -> RunConfig:
    """``recipe`` for ``var``, as the paper runs it (the launcher applies the environment's overrides)."""
    return RunConfig(
        stage=recipe.stage,
        variant=var.key,
        template=recipe.template,
        tunable_parts=recipe.tunable_parts + ((Part.MANAGER,) if var.manager else ()),
        images=recipe.grid_images if var.grid else recipe.plain_images,
        managers=PAPER_MANAGERS if var.manager else None,
        optimisation=Optimisation(
            learning_rate=recipe.learning_rate,
            vision_tower_lr=recipe.vision_tower_lr,
            manager_lr=recipe.learning_rate if var.manager else None,  # the paper: managers at the stage's lr
        ),
        batching=Batching(
            per_device=recipe.batch_size,
            grad_accum=recipe.grad_accum,
            max_length=recipe.max_length,
            grouped_sampler=recipe.grouped_sampler,
        ),
        saving=Saving(steps=recipe.save_steps),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llava.train.recipes", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="the run config of a stage and variant, the environment's overrides applied")
    show.add_argument("stage", help=f"{', '.join(STAGE_NAMES)} (or 1, 1.5, 2)")
    show.add_argument("--variant", required=True, help=", ".join(VARIANT_KEYS))
    sub.add_parser("stages", help="one line per stage: name, number, title")
    args = parser.parse_args(argv)
    try:
        if args.command == "show":
            recipe = stage(args.stage)
            head = f"# stage {recipe.number}, {recipe.title}; variant {args.variant}. The stage script adds the paths"
            print(head + " and this machine's settings; the environment's overrides (docs/training.md) replace fields.")
            from llava.train.launch import with_overrides  # the launcher reads the environment: it imports us

            config = with_overrides(run_config(recipe, variant(args.variant)), recipe, os.environ)
            print(json.dumps(to_dict(config), indent=2))
        else:
            print("\n".join(f"{s.stage} {s.number} {s.title}" for s in STAGES))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
