"""What a LLaVA-OV checkpoint is and how its pieces reach a model: one home for the inference loader
(``llava.model.builder``) and the training one (``llava.train.model_init``), so that a checkpoint that loads for
evaluation loads for training too.

* ``is_llava_checkpoint`` / ``read_config_dict`` / ``read_llava_config``: the config, whatever ``model_type`` the
  writer chose (``llava_qwen`` ours, ``llava`` released OneVision checkpoints, ``qwen2`` LLaVA-NeXT training);
* ``load_weights``: a state dict into a model, with unknown keys an error and missing ones checked
  (``check_missing_keys``: only managers may be absent, and start at zero);
* ``overlay_weights``: a partial state dict (a stage-1 adapter, a ``model_base`` overlay) over a built model, keys
  and shapes checked.

The image processor a config needs (``image_processor_for``) is preprocessing's: ``llava.processing``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from llava.model.config import LlavaQwenConfig

LLAVA_MODEL_TYPES = ("llava_qwen", "llava", "qwen2")
# A Qwen2 config with any of these is a LLaVA checkpoint; without, a plain LLM.
MULTIMODAL_KEYS = ("mm_vision_tower", "mm_projector_type", "mm_hidden_size", "vision_config")
MANAGER_PREFIX = "model.managers."


def read_config_dict(path: str | Path) -> dict:
    """``config.json`` of a model directory, as written."""
    file = Path(path) / "config.json"
    if not file.is_file():
        raise ValueError(f"{path}: no config.json (is this a model directory?)")
    return json.loads(file.read_text())


def is_llava_checkpoint(raw: dict) -> bool:
    return raw.get("model_type") in LLAVA_MODEL_TYPES and any(key in raw for key in MULTIMODAL_KEYS)


def read_llava_config(model_path: str | Path, overwrite_config: dict | None = None) -> LlavaQwenConfig:
    """The ``LlavaQwenConfig`` of a LLaVA-OV checkpoint whatever its ``model_type`` says."""
    raw = read_config_dict(model_path)
    if raw.get("model_type") == "llava_onevision":
        raise ValueError(
            f"{model_path} is in transformers' LlavaOnevision format; convert it first: "
            f"python -m llava.model.convert from-hf {model_path} OUT_DIR"
        )
    if not is_llava_checkpoint(raw):
        raise ValueError(
            f"{model_path}: model_type={raw.get('model_type')!r} with mm fields "
            f"{[k for k in MULTIMODAL_KEYS if k in raw]} is not a LLaVA-OneVision Qwen2 checkpoint (expected "
            f"model_type in {LLAVA_MODEL_TYPES} and mm_* fields)"
        )
    raw.pop("model_type")
    raw.update(overwrite_config or {})
    return LlavaQwenConfig(**raw)


def check_missing_keys(model: nn.Module, missing: list[str], source) -> None:
    """Managers absent from a checkpoint start at zero (warm start from a baseline); anything else missing is an
    error, since transformers would otherwise leave it randomly initialised with only a log line."""
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    managers = [key for key in missing if key.startswith(MANAGER_PREFIX)]
    others = sorted(set(missing) - set(managers) - tied)
    if others:
        raise ValueError(f"{source}: {len(others)} weights missing from the checkpoint, e.g. {others[:3]}")
    if managers:
        warnings.warn(
            f"{source} has no manager weights: {len(managers)} manager parameters start at zero (warm start from a "
            "baseline checkpoint; the model is exactly the baseline until the managers are trained)",
            stacklevel=3,
        )


def load_weights(
    model: nn.Module,
    weights: dict[str, torch.Tensor],
    source,
    allowed_missing: Callable[[str], bool] = lambda key: False,
) -> None:
    """All of a model's weights: a key the model lacks is an error, a missing one too unless ``allowed_missing``
    (modules a stage creates fresh) or a manager (``check_missing_keys``)."""
    result = model.load_state_dict(weights, strict=False)
    if result.unexpected_keys:
        raise ValueError(
            f"{source}: {len(result.unexpected_keys)} weights the model does not have, e.g. "
            f"{sorted(result.unexpected_keys)[:3]}"
        )
    check_missing_keys(model, [k for k in result.missing_keys if not allowed_missing(k)], source)


def overlay_weights(model: nn.Module, weights: dict[str, torch.Tensor], source) -> None:
    """Part of a model's weights over the rest: every key must be the model's, at the model's shape."""
    own = model.state_dict()
    unknown = sorted(set(weights) - set(own))
    if unknown:
        raise ValueError(f"{source}: {len(unknown)} keys not in the model, e.g. {unknown[:3]}")
    for key, tensor in weights.items():
        if tensor.shape != own[key].shape:
            raise ValueError(f"{source}: {key} has shape {tuple(tensor.shape)}, the model {tuple(own[key].shape)}")
    model.load_state_dict(weights, strict=False)
