"""The original ManagerTower Lightning checkpoints (``ManagerTower_pt_base.ckpt``, ``..._ftfpt_base_*.ckpt``) onto our
model: ``load_original(model, "ManagerTower_pt_base.ckpt")``, through :class:`OriginalAdapter` (the protocol of
``vlcommon.state_dict``).

The weights are under ``ckpt["state_dict"]`` with the original's names. The managers there are SAUE (layer 1) and
AAUE (layers 2-6) with the fused query. ``original_config()`` is the config that computes what the original code
does with them (its noise, its unmasked fused query, BERT's 1e-12 in the co-attention layers);
``preset("table1/aaum-fused")`` loads the same weights with the paper's definitions instead. The unused
``softmax_temperature_cross`` of every manager and the task heads (the objectives load those) come back as
unused keys, as do CLIP's text-side leftovers and RoBERTa's pooler.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import torch

from managertower.config import Fusion, Generator, ManagerKind, ManagerTowerConfig, Query
from managertower.convert.encoders import OpenAIClipAdapter, load_into, read_state
from managertower.managers import AdaptiveManager
from managertower.model import ManagerTowerModel
from vlcommon.state_dict import PartialStateDictAdapter, StateDict

_ONE_TO_ONE = ("cross_modal_text_transform.", "cross_modal_image_transform.", "token_type_embeddings.",
               "cross_modal_text_pooler.", "cross_modal_image_pooler.")  # fmt: skip


def original_config(base: ManagerTowerConfig | None = None, *, image_size: int = 288) -> ManagerTowerConfig:
    """The released code's behaviour on top of ``base`` (base size by default) at the checkpoint's resolution."""
    base = base or ManagerTowerConfig()
    manager = replace(base.manager, type=ManagerKind.AAUM, query=Query.FUSED, generator=Generator.LINEAR,
                      static_noise=True, noise_per_channel=True, mask_fused_query=False)  # fmt: skip
    cross = replace(base.cross, layer_norm_eps=1e-12, input_norm_eps=1e-5)
    vision = replace(base.vision, image_size=image_size)
    return replace(base, fusion=Fusion.MANAGERTOWER, manager=manager, cross=cross, vision=vision)


def _manager_key(model: ManagerTowerModel, modality: str, index: int, rest: str, value: torch.Tensor):
    """(our key, tensor) for the original manager parameter ``rest``, or None when it has no counterpart."""
    inputs = model.text_inputs if modality == "text" else model.image_inputs
    manager, prefix = inputs.managers[index], f"{modality}_inputs.managers.{index}."
    experts = model.config.manager.experts
    norm = re.fullmatch(r"LayerNorm\.(\d+)\.(weight|bias)", rest)
    if norm:
        i = int(norm[1])
        adaptive_previous = isinstance(manager, AdaptiveManager) and i == experts
        return prefix + (f"previous_norm.{norm[2]}" if adaptive_previous else f"norms.{i}.{norm[2]}"), value
    if rest == "layer_scores":  # [1, K, 1, D or 1]: the N expert scores, then the previous output's (SAUE, l > 1)
        scores = value[0, :, 0, :]
        if len(scores) == experts:
            return prefix + "scores", scores
        return [(prefix + "scores", scores[:experts]), (prefix + "cross_scores", scores[experts:])]
    renames = {
        "softmax_temperature": "temperature.value",
        "layer_scores_cross": "cross_weight",
        "extra_query_LayerNorm.weight": "other_norm.weight",
        "extra_query_LayerNorm.bias": "other_norm.bias",
    }
    if rest in renames:
        return prefix + renames[rest], value.reshape(1, -1) if rest == "layer_scores_cross" else value
    if rest.startswith(("linear_controller.", "fusion_attention.")):
        return prefix + rest.replace("linear_controller.", "controller."), value
    return None  # softmax_temperature_cross: created by the original, never used


class OriginalAdapter(PartialStateDictAdapter):
    """The original's ``state_dict`` -> ``model``'s: the managers are mapped onto ``model``'s own (which of them are
    adaptive, how many experts) and CLIP's position table is resized to ``model``'s grid."""

    def __init__(self, model: ManagerTowerModel) -> None:
        self.model = model

    def split(self, state_dict: StateDict) -> tuple[StateDict, list[str]]:
        state, unused, visual = {}, [], {}
        for key, value in state_dict.items():
            if key.startswith("vit_model.visual."):  # CLIP in OpenAI's names, mapped by its own adapter below
                visual["visual." + key.removeprefix("vit_model.visual.")] = value
                continue
            mapped = self._map(key, value)
            if mapped is None:
                unused.append(key)
                continue
            for target, tensor in mapped if isinstance(mapped, list) else [mapped]:
                state[target] = tensor
        clip, leftovers = OpenAIClipAdapter(self.model.config.vision.tokens).split(visual)
        unused += [f"vit_model.{k}" for k in leftovers]
        state.update({f"vision_model.model.visual.{k}": v for k, v in clip.items()})
        return state, unused

    def _map(self, key: str, value: torch.Tensor):
        """(our key, tensor), a list of them, or None when the original's ``key`` has no counterpart here."""
        manager = re.fullmatch(r"cross_modal_(text|image)_manager_tower\.(\d+)\.(.+)", key)
        layer = re.fullmatch(r"cross_modal_(text|image)_layers\.(\d+)\.(.+)", key)
        if manager:
            return _manager_key(self.model, manager[1], int(manager[2]), manager[3], value)
        if layer:
            return f"cross_modal_{layer[1]}_layers.{layer[2]}.layer.{layer[3]}", value
        if key.startswith("layer_embeddings_"):
            return key.replace("layer_embeddings_text.", "text_inputs.layer_embeddings.").replace(
                "layer_embeddings_image.", "image_inputs.layer_embeddings."), value  # fmt: skip
        if key.startswith(_ONE_TO_ONE):
            return key, value
        if key.startswith("text_transformer.") and not key.startswith("text_transformer.pooler."):
            return "text_model.model." + key.removeprefix("text_transformer."), value
        return None


def load_original(model: ManagerTowerModel, source: str | Path | StateDict) -> list[str]:
    """Load an original checkpoint (a Lightning .ckpt file, or its ``state_dict``) in place; returns unused keys."""
    if isinstance(source, (str, Path)):
        raw = torch.load(source, map_location="cpu", weights_only=False)
        raw = raw.get("state_dict", raw)
    else:
        raw = read_state(source)
    if model.config.fusion is not Fusion.MANAGERTOWER or model.config.manager.generator is not Generator.LINEAR:
        raise ValueError(
            f"an original ManagerTower checkpoint needs fusion='managertower' and generator='linear', not "
            f"{model.config.fusion!r} / {model.config.manager.generator!r} (see original_config())"
        )
    state, unused = OriginalAdapter(model).split(raw)
    return unused + load_into(model, state, "ManagerTower checkpoint")
