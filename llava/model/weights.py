"""Read checkpoint weights without building a model: a single file, a directory of shards, or a stage-1 adapter."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors.torch import load_file

# Stage-1 outputs: ours (projector, image_newline, managers) and LLaVA-NeXT's (projector only), written side by side.
ADAPTER_FILE = "mm_adapter.safetensors"
LLAVA_NEXT_ADAPTER_FILE = "mm_projector.bin"
PROJECTOR_PREFIX = "model.mm_projector."
logger = logging.getLogger(__name__)


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of ``path``: a ``.safetensors``/``.bin`` file, or a directory holding ``*.safetensors`` (preferred,
    sharded or not) or ``*.bin`` files. Training checkpoints' optimizer files are not weights and are ignored."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(path.glob("*.safetensors")) or sorted(
            p for p in path.glob("*.bin") if p.name != "training_args.bin"
        )
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


def read_adapter(path: str | Path) -> dict[str, torch.Tensor]:
    """A stage-1 adapter under the model's key names.

    LLaVA-NeXT scripts pass ``--pretrain_mm_mlp_adapter DIR/mm_projector.bin``. When our ``mm_adapter.safetensors``
    lies beside it (our stage 1 wrote both), that file is read instead: it holds the same projector plus the
    managers and ``image_newline``, which a manager variant needs. A LLaVA-NeXT file alone is read as LLaVA-NeXT's
    loader reads it: every key up to ``mm_projector.`` is replaced by ``model.mm_projector.``.
    """
    path = Path(path)
    ours = path.with_name(ADAPTER_FILE)
    if path.name == LLAVA_NEXT_ADAPTER_FILE and ours.is_file():
        logger.info("%s: reading %s beside it (the same projector, plus managers and image_newline)", path, ours.name)
        path = ours
    weights = read_weights(path)
    if path.name == ADAPTER_FILE:
        return weights
    renamed = {}
    for key, tensor in weights.items():
        _, found, rest = key.partition("mm_projector.")
        renamed[PROJECTOR_PREFIX + rest if found else key] = tensor
    return renamed
