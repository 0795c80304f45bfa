"""The paper's four LLaVA-OV variants (Table XI): anyres grid images or not, managers or not. Their one home.

The training recipes (``llava.train.recipes``), the eval scripts, ``llava.tools.budget``, ``llava.analysis``, the
benches and the playground demo read this table. Standard library only: a bash script runs it by path to ask for a
variant without paying for a torch import (``python llava/variants.py variant grid``; ``python -m`` would import the
``llava`` package, and the model with it).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass


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


def main(argv: list[str] | None = None) -> int:
    """``variants``: a line per variant (key, grid 0/1, manager 0/1, label); ``variant KEY``: grid and manager."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["variants"]:
        print("\n".join(f"{v.key} {int(v.grid)} {int(v.manager)} {v.label}" for v in VARIANTS))
        return 0
    if len(args) == 2 and args[0] == "variant":
        try:
            v = variant(args[1])
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(int(v.grid), int(v.manager))
        return 0
    print("usage: python -m llava.variants variants | variant KEY", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
