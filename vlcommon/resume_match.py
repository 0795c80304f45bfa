"""Is the checkpoint a run would resume from one of the model its flags build?

``--resume auto`` takes the newest good checkpoint of the output folder, as LLaVA-NeXT does. Relaunched with other
model flags into the same folder (the same run name, now with managers), a run would resume weights of another
architecture and die in ``load_state_dict`` minutes later, with a raw ``RuntimeError``. Each train entry compares
parameter names and shapes before it builds the model: the model to train is instantiated on the ``meta`` device
(no memory, no initialisation cost), the checkpoint is read from its config or its safetensors headers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from safetensors import safe_open

Shapes = dict[str, tuple[int, ...]]
MAX_LISTED = 5  # mismatched parameters named per kind; the rest are counted


def shapes_on_meta(build: Callable[[], torch.nn.Module]) -> Shapes:
    """Every state-dict entry of ``build()``'s model and its shape, the model built on the ``meta`` device."""
    with torch.device("meta"):
        model = build()
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


def saved_shapes(folder: str | Path) -> Shapes | None:
    """The shapes in ``folder``'s ``model.safetensors`` (or its shards) from the headers alone; None when the
    weights are not saved that way (a ZeRO-3 engine state, for instance)."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (folder / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        return None
    shapes: Shapes = {}
    for name in files:
        with safe_open(str(folder / name), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open has keys(), not iteration)
                shapes[key] = tuple(f.get_slice(key).get_shape())
    return shapes


def require_same_parameters(folder: str | Path, *, expected: Mapping, found: Mapping) -> None:
    """``ValueError`` naming ``folder``, the parameters that differ and the ways out, unless the checkpoint's
    parameters (``found``) are those of the model to train (``expected``)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    reshaped = [f"{k} {tuple(found[k])} (now {tuple(expected[k])})" for k in sorted(set(expected) & set(found))
                if tuple(found[k]) != tuple(expected[k])]  # fmt: skip
    kinds = (("missing from it", missing), ("not in the model", unexpected), ("of another shape", reshaped))
    parts = [_listed(what, names) for what, names in kinds if names]
    if not parts:
        return
    raise ValueError(
        f"{folder} is a checkpoint of another model than the one these flags build ("
        + "; ".join(parts)
        + "). Train into another --output_dir (the clean way out), or choose the start explicitly: --resume PATH (a "
        "checkpoint of this model) or --resume never (from step 0; the other model's checkpoints stay in the folder "
        "unless rotated, so a later --resume auto would meet them again: move them away)"
    )


def _listed(what: str, names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return f"{len(names)} parameter{'s' if len(names) > 1 else ''} {what}: {shown}{more}"
