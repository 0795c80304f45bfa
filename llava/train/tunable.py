"""Trainable parts, declared once.

``mm_tunable_parts`` (LLaVA-NeXT's flag, plus ``mm_manager``) names the parts a stage trains. That one declaration
drives:

* freezing: every parameter belongs to exactly one part (by module, not by name); parts not listed are frozen;
* optimizer groups: one learning rate per part (``mm_projector_lr``, ``mm_vision_tower_lr``, ``mm_manager_lr``,
  falling back to ``learning_rate``), each split into decay / no-decay (biases, norms and other 1-D parameters);
* what the stage saves: adapter-only stages (projector and/or managers) write just those weights
  (``mm_adapter.safetensors``) and the config; any other stage writes the full model.

``image_newline`` belongs to the projector part here (LLaVA-NeXT files it under the language model, so a stage-1
run that has it never trains it); it only exists with ``spatial_unpad``.
"""

from __future__ import annotations

import enum
import warnings
from dataclasses import dataclass

from torch import nn
from transformers.models.qwen2.modeling_qwen2 import Qwen2RMSNorm


class Part(str, enum.Enum):
    PROJECTOR = "mm_mlp_adapter"
    MANAGER = "mm_manager"
    VISION_TOWER = "mm_vision_tower"
    LANGUAGE_MODEL = "mm_language_model"


ADAPTER_PARTS = frozenset({Part.PROJECTOR, Part.MANAGER})
_NORMS = (nn.LayerNorm, nn.GroupNorm, Qwen2RMSNorm)


def parse_tunable_parts(
    value: str | None, *, tune_mm_mlp_adapter: bool = False, unfreeze_mm_vision_tower: bool = False
) -> frozenset[Part]:
    """``"mm_mlp_adapter,mm_manager"`` -> parts. ``None`` keeps LLaVA-NeXT's legacy flags: the adapter (and the
    managers) only with ``tune_mm_mlp_adapter``, else everything but the vision tower unless
    ``unfreeze_mm_vision_tower``."""
    if value is None:
        if tune_mm_mlp_adapter:
            return ADAPTER_PARTS
        legacy = {Part.PROJECTOR, Part.MANAGER, Part.LANGUAGE_MODEL}
        return frozenset(legacy | ({Part.VISION_TOWER} if unfreeze_mm_vision_tower else set()))
    names = [name.strip() for name in value.split(",") if name.strip()]
    valid = [p.value for p in Part]
    parts = set()
    for name in names:
        if name == "mm_vision_resampler":
            raise ValueError("mm_tunable_parts: mm_vision_resampler is not supported (LLaVA-OV has no resampler)")
        if name not in valid:
            raise ValueError(f"mm_tunable_parts: unknown part {name!r}; expected a comma list of {valid}")
        parts.add(Part(name))
    if not parts:
        raise ValueError("mm_tunable_parts: empty list")
    if tune_mm_mlp_adapter or unfreeze_mm_vision_tower:
        warnings.warn(
            "tune_mm_mlp_adapter / unfreeze_mm_vision_tower have no effect when mm_tunable_parts is given", stacklevel=2
        )
    return frozenset(parts)


def part_parameters(model) -> dict[Part, list[tuple[str, nn.Parameter]]]:
    """Every named parameter of a ``LlavaQwenForCausalLM``, by part (tied weights listed once)."""
    inner = model.get_model()
    owners: dict[int, Part] = {}
    # The language model first: the Trainer logs the first group's learning rate, which is then the base one.
    modules = {
        Part.LANGUAGE_MODEL: [inner.embed_tokens, inner.layers, inner.norm, model.lm_head],
        Part.VISION_TOWER: [inner.vision_tower],
        Part.PROJECTOR: [inner.mm_projector],
        Part.MANAGER: [inner.managers] if inner.managers is not None else [],
    }
    for part, members in modules.items():
        for module in members:
            for param in module.parameters():
                owners[id(param)] = part
    if inner.image_newline is not None:
        owners[id(inner.image_newline)] = Part.PROJECTOR
    grouped: dict[Part, list[tuple[str, nn.Parameter]]] = {part: [] for part in modules}
    for name, param in model.named_parameters():
        assert id(param) in owners, f"parameter {name} belongs to no trainable part"
        grouped[owners[id(param)]].append((name, param))
    return grouped


def apply_trainable_parts(model, parts: frozenset[Part]) -> dict[Part, int]:
    """Freeze everything outside ``parts`` and the weights no forward uses; returns the number of trainable
    elements per part."""
    unused = {id(p) for p in model.get_model().vision_tower.unused_parameters()}
    counts = {}
    for part, params in part_parameters(model).items():
        for _, param in params:
            param.requires_grad_(part in parts and id(param) not in unused)
        counts[part] = sum(p.numel() for _, p in params if p.requires_grad)
    if Part.MANAGER in parts and not part_parameters(model)[Part.MANAGER]:
        warnings.warn(
            "mm_tunable_parts lists mm_manager but the model has no managers (manager_type none)", stacklevel=2
        )
    return counts


def _no_decay_ids(model) -> set[int]:
    ids = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if isinstance(module, _NORMS) or name == "bias" or param.ndim < 2:
                ids.add(id(param))
    return ids


@dataclass(frozen=True, kw_only=True, slots=True)
class PartLearningRates:
    base: float
    projector: float | None = None
    vision_tower: float | None = None
    manager: float | None = None

    def for_part(self, part: Part) -> float:
        specific = {Part.PROJECTOR: self.projector, Part.VISION_TOWER: self.vision_tower, Part.MANAGER: self.manager}
        value = specific.get(part)
        return self.base if value is None else value


def optimizer_groups(model, parts: frozenset[Part], lrs: PartLearningRates, weight_decay: float) -> list[dict]:
    """Parameter groups for the trainable parts: per part, decay and no-decay; empty groups are left out."""
    no_decay = _no_decay_ids(model)
    groups = []
    for part, params in part_parameters(model).items():
        if part not in parts:
            continue
        trainable = [p for _, p in params if p.requires_grad]
        for decay in (True, False):
            members = [p for p in trainable if (id(p) not in no_decay) == decay]
            if members:
                groups.append(
                    {
                        "params": members,
                        "lr": lrs.for_part(part),
                        "weight_decay": weight_decay if decay else 0.0,
                        "name": f"{part.value}/" + ("decay" if decay else "no_decay"),
                    }
                )
    return groups


def saves_adapter_only(parts: frozenset[Part]) -> bool:
    return parts <= ADAPTER_PARTS


def adapter_parameter_names(model) -> list[str]:
    grouped = part_parameters(model)
    return [name for part in ADAPTER_PARTS for name, _ in grouped[part]]
