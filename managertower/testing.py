"""Tiny random configs shared by the tests (and usable for quick experiments): seconds on a CPU."""

from __future__ import annotations

from dataclasses import replace

from managertower.config import (
    CrossModalConfig,
    ManagerConfig,
    ManagerTowerConfig,
    TextEncoderConfig,
    VisionEncoderConfig,
)


def tiny_config(
    *, depth: int = 4, cross_layers: int = 3, experts: int = 3, hidden: int = 32, **changes
) -> ManagerTowerConfig:
    """A ``depth``-layer RoBERTa and CLIP (vision width 64: CLIP's head width), ``cross_layers`` co-attention layers
    of width ``hidden``; ``changes`` replace top-level fields (``manager=`` may be a dict of manager fields)."""
    manager = changes.pop("manager", {})
    if isinstance(manager, dict):
        manager = ManagerConfig(**{"experts": experts, **manager})
    base = ManagerTowerConfig(
        text=TextEncoderConfig(vocab_size=99, hidden_size=hidden, layers=depth, heads=2, intermediate_size=37,
                               max_positions=40, dropout=0.0),
        vision=VisionEncoderConfig(hidden_size=64, layers=depth, patch_size=8, image_size=32),
        cross=CrossModalConfig(layers=cross_layers, hidden_size=hidden, heads=2, intermediate_size=37, dropout=0.0),
        manager=manager,
    )  # fmt: skip
    return replace(base, **changes)
