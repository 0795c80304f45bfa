"""Checkpoints under analysis: ``[LABEL=]PATH`` arguments, their paper variant (read from the config), loading.

The variant is what the config says -- ``image_aspect_ratio`` anyres or not, a manager block or not -- never the
directory name. Without a label a checkpoint is called by its variant (``Baseline``, ``+Manager``, ``+Grid``,
``+Grid+Manager``); two checkpoints with the same name need labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from llava import variants
from llava.model.config import LlavaQwenConfig, MultimodalSpec
from llava.model.loading import read_llava_config
from llava.model.manager_config import ManagerConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True, kw_only=True, slots=True)
class Checkpoint:
    label: str
    path: Path
    grid: bool  # anyres image_aspect_ratio (the paper's "+Grid")
    manager: ManagerConfig

    @property
    def variant(self) -> str:
        return variants.variant_of(grid=self.grid, manager=self.manager.enabled).label

    @property
    def inject_layers(self) -> tuple[int, ...]:
        """1-based decoder layers that receive a manager's output (the paper's "[1, 5, ..., 21]")."""
        return tuple(i + 1 for i in self.manager.inject_layers)


def variant_of(config: LlavaQwenConfig) -> tuple[bool, ManagerConfig]:
    spec = MultimodalSpec.from_config(config)
    return spec.aspect_ratio.is_anyres, spec.manager


def parse_checkpoints(arguments: list[str]) -> list[Checkpoint]:
    """``["Base=runs/a", "runs/b"]`` -> checkpoints; a missing directory or an ambiguous name is a ``ValueError``."""
    if not arguments:
        raise ValueError("--checkpoint: give at least one checkpoint directory")
    found = []
    for argument in arguments:
        label, _, path = argument.rpartition("=")
        path = Path(path)
        if not (path / "config.json").is_file():
            raise ValueError(f"--checkpoint {argument!r}: {path} is not a checkpoint directory (no config.json)")
        grid, manager = variant_of(read_llava_config(path))
        found.append(Checkpoint(label=label, path=path, grid=grid, manager=manager))
    named = [c if c.label else Checkpoint(label=c.variant, path=c.path, grid=c.grid, manager=c.manager) for c in found]
    labels = [c.label for c in named]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"--checkpoint: several checkpoints are called {duplicates}; name them LABEL=PATH")
    return named


def load(checkpoint: Checkpoint, *, device: str, dtype: str):
    """``(tokenizer, model, image_processor)`` in eval mode on ``device``."""
    from llava.model.builder import load_pretrained_model

    if dtype not in DTYPES:
        raise ValueError(f"--dtype {dtype!r} is not one of {tuple(DTYPES)}")
    tokenizer, model, image_processor, _ = load_pretrained_model(
        str(checkpoint.path), None, "llava_qwen", device_map=None, torch_dtype=DTYPES[dtype]
    )
    return tokenizer, model.to(device).eval(), image_processor
