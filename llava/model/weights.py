"""Read checkpoint weights without building a model: a single file, or a directory of shards."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of ``path``: a ``.safetensors``/``.bin`` file, or a directory holding ``*.safetensors`` (preferred,
    sharded or not) or ``*.bin`` files. Training checkpoints' optimizer files are not weights and are ignored."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(path.glob("*.safetensors")) or sorted(p for p in path.glob("*.bin") if p.name != "training_args.bin")
    else:
        raise ValueError(f"{path}: no such file or directory")
    if not files:
        raise ValueError(f"{path}: no *.safetensors or *.bin weights")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        if file.suffix == ".safetensors":
            state.update(load_file(file))
        else:
            state.update(torch.load(file, map_location="cpu", weights_only=True))
    return state
