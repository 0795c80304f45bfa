"""The tables of ``docs/training.md`` rendered from the recipe registry (a test keeps the page equal to them).

python -m llava.tools.recipe_docs      # the variant table, then the stage table, in markdown
"""

from __future__ import annotations

from llava.train.recipes import PAPER_MANAGERS, STAGES, Images, StageRecipe
from llava.variants import VARIANTS


def _row(head: str, cells: list[str]) -> str:
    return f"| {head} | " + " | ".join(cells) + " |"


def _number(value: float) -> str:
    """``1e-3`` as the papers and LLaVA-NeXT's scripts write learning rates."""
    mantissa, exponent = f"{value:.6e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def grids_text(images: Images) -> str:
    """The anyres grids, ``(columns x rows)`` of crops, in the range form of LLaVA-NeXT's ``--image_grid_pinpoints``
    where it applies."""
    largest = max((max(g) for g in images.grids), default=0)
    if images.grids == tuple((c, r) for c in range(1, largest + 1) for r in range(1, largest + 1)):
        return f"(1x1),...,({largest}x{largest})"
    return ", ".join(f"{c}x{r}" for c, r in images.grids)


def _images_cell(images: Images, recipe: StageRecipe) -> str:
    cell = f"`{images.aspect_ratio}`"
    if images.grids:
        cell += f", grids of crops `{grids_text(images)}` (`PINPOINTS_{recipe.env}`)"
    return f"{cell}, `{images.merge_type}`"


def stage_table() -> str:
    plain = ", ".join(f"`{v.key}`" for v in VARIANTS if not v.grid)
    grid = ", ".join(f"`{v.key}`" for v in VARIANTS if v.grid)
    sampler = "`--group_by_modality_length True --dataloader_drop_last True`"
    lines = [
        _row("", [f"stage {s.number}" for s in STAGES]),
        "|---" * (len(STAGES) + 1) + "|",
        _row("template `--version`", [f"`{s.template}`" for s in STAGES]),
        _row("`--mm_tunable_parts` (manager variants add `,mm_manager`)",
             [f"`{','.join(p.value for p in s.tunable_parts)}`" for s in STAGES]),
        _row("`--learning_rate` (`LR_STAGE*`); projector lr", [_number(s.learning_rate) for s in STAGES]),
        _row("`--mm_manager_lr` (`MANAGER_LR_STAGE*`, manager variants)",
             [f"= stage lr, {_number(s.learning_rate)}" for s in STAGES]),
        _row("`--mm_vision_tower_lr` (`VISION_LR_STAGE*`)",
             [_number(s.vision_tower_lr) if s.vision_tower_lr else "(tower frozen)" for s in STAGES]),
        _row("per-device batch x GA (`BS_STAGE*`, `GA_STAGE*`)", [f"{s.batch_size} x {s.grad_accum}" for s in STAGES]),
        _row("global batch, 2 x 8 GPUs", [str(16 * s.batch_size * s.grad_accum) for s in STAGES]),
        _row("`--model_max_length` (`MAX_LEN_STAGE*`), tokens after image expansion",
             [str(s.max_length) for s in STAGES]),
        _row(f"{plain} images", [_images_cell(s.plain_images, s) for s in STAGES]),
        _row(f"{grid} images", [_images_cell(s.grid_images, s) for s in STAGES]),
        _row("sampler", [sampler if s.grouped_sampler else "random" for s in STAGES]),
        _row("`--save_steps`", [f"{s.save_steps} (`{s.save_steps_env}`)" for s in STAGES]),
    ]  # fmt: skip
    return "\n".join(lines)


def variant_table() -> str:
    later = [s for s in STAGES if s.stage != STAGES[0].stage]
    grid_images = ", ".join(f"stage {s.number} `{s.grid_images.aspect_ratio}`" for s in later)
    plain_images = ", ".join(sorted({f"`{s.plain_images.aspect_ratio}`" for s in later}))
    m = PAPER_MANAGERS
    managers = (
        f"`{m.type}` (`MANAGER_TYPE`), experts `{m.experts.preset}` (`MANAGER_EXPERTS`), "
        f"injected `{m.inject.preset}:{m.inject.n}` (`MANAGER_INJECT`)"
    )
    lines = ["| `VARIANT` | in the paper's tables | images (stages 1.5 and 2) | managers |", "|---|---|---|---|"]
    for v in VARIANTS:
        lines.append(
            _row(f"`{v.key}`", [v.label, grid_images if v.grid else plain_images, managers if v.manager else "none"])
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(variant_table() + "\n\n" + stage_table())
