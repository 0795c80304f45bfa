"""The paper's Two-Tower recipes (Tables IX and XIV, the released scripts) as typed data: their one home.

    python -m managertower.train.recipes show vqa                    # the recipe, field by field
    python -m managertower.train.recipes args vqa --world-size 64    # the train entry's flags for that many processes
    python -m managertower.train.recipes list                        # the recipes' names

The launcher (``python -m managertower.train.launch``, behind ``scripts/managertower/``) reads the recipe from here
and replaces single fields from the environment (``LR``, ``BATCH_SIZE``, ``EPOCHS``, ...) as typed values. Every
model variant (METER, BridgeTower, each manager) runs the same recipe: the paper's comparisons change the model,
not the optimisation.

Batch sizes are global: gradient accumulation = batch // (per-device batch x processes), rounded down as the
original does (a warning says when the product is not the batch).
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import sys
from dataclasses import dataclass

from managertower.data.arrow import Task
from managertower.data.transforms import TransformKind
from managertower.train.optim import LrScale
from vlcommon.launch import Machine
from vlcommon.runconfig import replace_fields


@dataclass(frozen=True, kw_only=True, slots=True)
class Recipe:
    task: Task  # the train entry's --task
    image_size: int
    lr: float
    lr_mult_head: LrScale
    lr_mult_cross_modal: LrScale
    batch_size: int  # global
    per_device: int
    epochs: int = 0  # 0: train for max_steps
    max_steps: int = -1
    warmup: float = 0.1  # a fraction of the steps
    weight_decay: float = 0.01
    head_hidden_scale: int = 1
    transform: TransformKind = TransformKind.ALBEF_RANDAUG_WC
    max_text_len: int = 50
    k_test: int = 128
    vlp: bool = True  # fine-tuned from the pre-trained backbone (else from the raw experts)

    def __post_init__(self) -> None:
        if (self.epochs > 0) == (self.max_steps > 0):
            raise ValueError(f"give epochs or max_steps, not both (epochs={self.epochs}, max_steps={self.max_steps})")


_X5, _X10, _X50 = (LrScale(multiplier=m) for m in (5, 10, 50))
_T = Task
_WOHF, _CLIP = TransformKind.ALBEF_RANDAUG_WOHF, TransformKind.CLIP

RECIPES: dict[str, Recipe] = {
    # Table IX: 100k steps of 4,096 pairs (64 GPUs x 8 x accumulation 8), MLM + ITM, 288 px.
    "pretrain": Recipe(task=_T.PRETRAIN, image_size=288, lr=1e-5, lr_mult_head=_X5, lr_mult_cross_modal=_X5,
                       batch_size=4096, per_device=8, max_steps=100_000, transform=_CLIP),
    # Table XIV (ftfpt-base-*.sh): fine-tuning after VLP.
    "vqa": Recipe(task=_T.VQA, image_size=576, lr=9e-6, lr_mult_head=_X50, lr_mult_cross_modal=_X5, batch_size=504,
                  per_device=4, epochs=10, weight_decay=0.06, head_hidden_scale=2, transform=_WOHF),
    "snli_ve": Recipe(task=_T.SNLI_VE, image_size=384, lr=3e-6, lr_mult_head=_X10, lr_mult_cross_modal=_X5,
                      batch_size=64, per_device=8, epochs=4, warmup=0.06, head_hidden_scale=2),
    "nlvr2": Recipe(task=_T.NLVR2, image_size=384, lr=1.4e-5, lr_mult_head=_X10, lr_mult_cross_modal=_X5,
                    batch_size=256, per_device=4, epochs=5),
    "f30k": Recipe(task=_T.F30K, image_size=384, lr=6e-6, lr_mult_head=_X5, lr_mult_cross_modal=_X5, batch_size=512,
                   per_device=8, epochs=20, max_text_len=40),
    # Tables I, II and Fig. 6: VQAv2 and Flickr30K without VLP, from the raw experts (ftfs-base-vqa.sh).
    "vqa_novlp": Recipe(task=_T.VQA, image_size=576, lr=2e-5, lr_mult_head=_X50, lr_mult_cross_modal=_X5,
                        batch_size=512, per_device=4, epochs=10, transform=_WOHF, vlp=False),
    "f30k_novlp": Recipe(task=_T.F30K, image_size=384, lr=6e-6, lr_mult_head=_X5, lr_mult_cross_modal=_X5,
                         batch_size=512, per_device=8, epochs=20, max_text_len=40, vlp=False),
}  # fmt: skip

# The fields the recipes CLI replaces (``--batch-size 64``); recipe() replaces any field.
CLI_OVERRIDES = {"lr": float, "batch_size": int, "per_device": int, "epochs": int, "max_steps": int,
                 "image_size": int, "warmup": float, "weight_decay": float}  # fmt: skip


def recipe(name: str, **overrides) -> Recipe:
    """``name``'s recipe with some fields replaced by typed values (``recipe("vqa", lr=2e-5)``); an unknown field
    or a value of the wrong type is a ``ValueError`` naming the field. ``max_steps`` replaces the epochs and
    ``epochs`` the steps."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}: expected one of {', '.join(RECIPES)}")
    if "max_steps" in overrides and "epochs" not in overrides:
        overrides["epochs"] = 0
    elif "epochs" in overrides and "max_steps" not in overrides:
        overrides["max_steps"] = -1
    return replace_fields(RECIPES[name], where=f"recipe {name}", **overrides)


def accumulation(r: Recipe, world_size: int) -> int:
    per_step = r.per_device * world_size
    if per_step < 1 or r.batch_size < per_step:
        raise ValueError(f"batch_size={r.batch_size} is smaller than per_device x processes = {per_step}")
    steps = r.batch_size // per_step
    if steps * per_step != r.batch_size:
        print(f"warning: batch {r.batch_size} is not a multiple of {per_step}: trains with {steps * per_step}",
              file=sys.stderr)  # fmt: skip
    return steps


def recipe_values(r: Recipe, grad_accum: int) -> dict:
    """The train entry's flags (by their ``dest``) that the recipe sets, as typed values."""
    values = {"task": r.task, "image_size": r.image_size, "learning_rate": r.lr, "lr_mult_head": r.lr_mult_head,
              "lr_mult_cross_modal": r.lr_mult_cross_modal, "per_device_train_batch_size": r.per_device,
              "gradient_accumulation_steps": grad_accum, "warmup_steps": r.warmup, "weight_decay": r.weight_decay,
              "head_hidden_scale": r.head_hidden_scale, "transform": r.transform, "max_text_len": r.max_text_len,
              "k_test": r.k_test}  # fmt: skip
    if r.epochs > 0:
        values["num_train_epochs"] = r.epochs
    else:
        values["max_steps"] = r.max_steps
    return values


def train_args(r: Recipe, world_size: int) -> list[str]:
    """The train entry's flags for this recipe on ``world_size`` processes, spelled for a command line."""
    values = recipe_values(r, accumulation(r, world_size))
    return [text for dest, value in values.items() for text in (f"--{dest}", _spelled(value))]


@dataclass(frozen=True, kw_only=True, slots=True)
class RunConfig:
    """What one run trains, as the launcher resolved it: the recipe with the environment's overrides, its gradient
    accumulation on the run's processes, the model's preset, the evaluation and this machine. Paths (data,
    tokenizer, weights, output) stay command-line flags beside ``--run_config``."""

    name: str  # the recipe's name in RECIPES
    recipe: Recipe
    grad_accum: int
    preset: str | None  # None: the model comes from --init_from, which carries its config
    results_name: str | None  # evaluated into results.json under this name after training; None: not evaluated
    seed: int = 0
    machine: Machine | None = None  # None: the train entry's own defaults

    def flag_defaults(self) -> dict:
        """The train entry's flags this config sets, as typed values (the parser's defaults)."""
        values = recipe_values(self.recipe, self.grad_accum)
        values.update(preset=self.preset, do_eval=self.results_name is not None, results_name=self.results_name,
                      seed=self.seed, save_strategy="epoch", logging_steps=50)  # fmt: skip
        if self.machine is not None:
            values.update(self.machine.training_arguments())
        return values


def shown(r: Recipe) -> list[str]:
    """``field=value`` lines, each value as the train entry's command line spells it."""
    return [f"{f.name}={_spelled(getattr(r, f.name))}" for f in dataclasses.fields(r)]


def _spelled(value) -> str:
    if isinstance(value, LrScale):
        return value.flag()
    return str(value.value) if isinstance(value, enum.Enum) else str(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m managertower.train.recipes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("command", choices=("show", "args", "list"))
    parser.add_argument("name", nargs="?")
    parser.add_argument("--world-size", type=int, default=1)
    for key, kind in CLI_OVERRIDES.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=kind, default=None, help=f"replaces the recipe's {key}")
    args = parser.parse_args(argv)
    if args.command == "list":
        print("\n".join(RECIPES))
        return
    if args.name is None:
        parser.error(f"{args.command} needs a recipe name: {', '.join(RECIPES)}")
    overrides = {k: getattr(args, k) for k in CLI_OVERRIDES if getattr(args, k) is not None}
    try:
        chosen = recipe(args.name, **overrides)
        lines = shown(chosen) if args.command == "show" else train_args(chosen, args.world_size)
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
