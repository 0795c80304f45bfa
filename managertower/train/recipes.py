"""The paper's Two-Tower recipes (Tables IX and XIV, the released scripts) as typed data: their one home.

    python managertower/train/recipes.py show vqa                    # the recipe, field by field
    python managertower/train/recipes.py args vqa --world-size 64    # the train entry's flags for that many processes

The scripts in ``scripts/managertower/`` read the flags from here; the environment variables they document (``LR``,
``BATCH_SIZE``, ``EPOCHS``, ...) override single fields. Every model variant (METER, BridgeTower, each manager)
runs the same recipe: the paper's comparisons change the model, not the optimisation. The module needs nothing but
the standard library, so the scripts run it by path without importing torch.

Batch sizes are global: gradient accumulation = batch // (per-device batch x processes), rounded down as the
original does (a warning says when the product is not the batch).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True, kw_only=True, slots=True)
class Recipe:
    task: str  # the train entry's --task
    image_size: int
    lr: float
    lr_mult_head: str  # an integer multiplies lr; a float is an absolute lr
    lr_mult_cross_modal: str
    batch_size: int  # global
    per_device: int
    epochs: int = 0  # 0: train for max_steps
    max_steps: int = -1
    warmup: float = 0.1  # a fraction of the steps
    weight_decay: float = 0.01
    head_hidden_scale: int = 1
    transform: str = "albef_randaug_wc"
    max_text_len: int = 50
    k_test: int = 128
    vlp: bool = True  # fine-tuned from the pre-trained backbone (else from the raw experts)

    def __post_init__(self) -> None:
        if (self.epochs > 0) == (self.max_steps > 0):
            raise ValueError(f"recipe {self.task}: give epochs or max_steps, not both")


RECIPES: dict[str, Recipe] = {
    # Table IX: 100k steps of 4,096 pairs (64 GPUs x 8 x accumulation 8), MLM + ITM, 288 px.
    "pretrain": Recipe(task="pretrain", image_size=288, lr=1e-5, lr_mult_head="5", lr_mult_cross_modal="5",
                       batch_size=4096, per_device=8, max_steps=100_000, transform="clip"),
    # Table XIV (ftfpt-base-*.sh): fine-tuning after VLP.
    "vqa": Recipe(task="vqa", image_size=576, lr=9e-6, lr_mult_head="50", lr_mult_cross_modal="5", batch_size=504,
                  per_device=4, epochs=10, weight_decay=0.06, head_hidden_scale=2, transform="albef_randaug_wohf"),
    "snli_ve": Recipe(task="snli_ve", image_size=384, lr=3e-6, lr_mult_head="10", lr_mult_cross_modal="5",
                      batch_size=64, per_device=8, epochs=4, warmup=0.06, head_hidden_scale=2),
    "nlvr2": Recipe(task="nlvr2", image_size=384, lr=1.4e-5, lr_mult_head="10", lr_mult_cross_modal="5",
                    batch_size=256, per_device=4, epochs=5),
    "f30k": Recipe(task="f30k", image_size=384, lr=6e-6, lr_mult_head="5", lr_mult_cross_modal="5", batch_size=512,
                   per_device=8, epochs=20, max_text_len=40),
    # Tables I, II and Fig. 6: VQAv2 and Flickr30K without VLP, from the raw experts (ftfs-base-vqa.sh).
    "vqa_novlp": Recipe(task="vqa", image_size=576, lr=2e-5, lr_mult_head="50", lr_mult_cross_modal="5",
                        batch_size=512, per_device=4, epochs=10, transform="albef_randaug_wohf", vlp=False),
    "f30k_novlp": Recipe(task="f30k", image_size=384, lr=6e-6, lr_mult_head="5", lr_mult_cross_modal="5",
                         batch_size=512, per_device=8, epochs=20, max_text_len=40, vlp=False),
}  # fmt: skip

_OVERRIDES = {"lr": float, "batch_size": int, "per_device": int, "epochs": int, "max_steps": int,
              "image_size": int, "warmup": float, "weight_decay": float}  # fmt: skip


def recipe(name: str, **overrides) -> Recipe:
    """``name``'s recipe with some fields replaced; ``max_steps`` replaces the epochs and ``epochs`` the steps."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}: expected one of {', '.join(RECIPES)}")
    if "max_steps" in overrides and "epochs" not in overrides:
        overrides["epochs"] = 0
    elif "epochs" in overrides and "max_steps" not in overrides:
        overrides["max_steps"] = -1
    return replace(RECIPES[name], **overrides)


def accumulation(r: Recipe, world_size: int) -> int:
    per_step = r.per_device * world_size
    if per_step < 1 or r.batch_size < per_step:
        raise ValueError(f"batch_size={r.batch_size} is smaller than per_device x processes = {per_step}")
    steps = r.batch_size // per_step
    if steps * per_step != r.batch_size:
        print(f"warning: batch {r.batch_size} is not a multiple of {per_step}: trains with {steps * per_step}",
              file=sys.stderr)  # fmt: skip
    return steps


def train_args(r: Recipe, world_size: int) -> list[str]:
    """The train entry's flags for this recipe on ``world_size`` processes."""
    flags = ["--task", r.task, "--image_size", r.image_size, "--learning_rate", r.lr,
             "--lr_mult_head", r.lr_mult_head, "--lr_mult_cross_modal", r.lr_mult_cross_modal,
             "--per_device_train_batch_size", r.per_device,
             "--gradient_accumulation_steps", accumulation(r, world_size),
             "--warmup_steps", r.warmup, "--weight_decay", r.weight_decay, "--head_hidden_scale", r.head_hidden_scale,
             "--transform", r.transform, "--max_text_len", r.max_text_len, "--k_test", r.k_test]  # fmt: skip
    flags += ["--num_train_epochs", r.epochs] if r.epochs > 0 else ["--max_steps", r.max_steps]
    return [str(f) for f in flags]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python managertower/train/recipes.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("command", choices=("show", "args", "list"))
    parser.add_argument("name", nargs="?")
    parser.add_argument("--world-size", type=int, default=1)
    for key, kind in _OVERRIDES.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=kind, default=None, help=f"replaces the recipe's {key}")
    args = parser.parse_args(argv)
    if args.command == "list":
        print("\n".join(RECIPES))
        return
    if args.name is None:
        parser.error(f"{args.command} needs a recipe name: {', '.join(RECIPES)}")
    overrides = {k: getattr(args, k) for k in _OVERRIDES if getattr(args, k) is not None}
    try:
        chosen = recipe(args.name, **overrides)
        lines = [f"{k}={v}" for k, v in asdict(chosen).items()] if args.command == "show" else train_args(
            chosen, args.world_size)  # fmt: skip
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
