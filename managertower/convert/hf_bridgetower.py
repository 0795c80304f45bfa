"""transformers' ``BridgeTowerModel`` -> our model in ``Fusion.BRIDGETOWER`` mode, weight for weight.

    from managertower.convert import from_hf_bridgetower
    ours = from_hf_bridgetower(BridgeTowerModel.from_pretrained(...))

The mapping is :class:`HFBridgeTowerAdapter` (the protocol of ``vlcommon.state_dict``). Only the wiring transformers
implements is accepted: one shared transform per modality, a link tower per layer, the shared ``ln_post``; anything
else is refused with the field named. The text model's pooler is not used by BridgeTower and is dropped. Task models
(``BridgeTowerForMaskedLM``, ...) are refused here, so that no head is dropped unseen:
``managertower.convert.hf_bridgetower_tasks`` converts them with their heads.
"""

from __future__ import annotations

import re

from managertower.config import (
    CrossModalConfig,
    Fusion,
    LinkType,
    ManagerTowerConfig,
    TextEncoderConfig,
    VisionEncoderConfig,
)
from managertower.model import ManagerTowerModel
from vlcommon.state_dict import StateDict

# (transformers' prefix, ours), first match wins; the layer index is kept.
_PREFIXES = (
    (r"text_model\.pooler\.", None),
    (r"text_model\.", "text_model.model."),
    (r"vision_model\.", "vision_model.model."),
    (r"cross_modal_(text|image)_layers\.(\d+)\.", r"cross_modal_\1_layers.\2.layer."),
    (r"cross_modal_text_layernorm\.", "text_inputs.first_norm."),
    (r"cross_modal_image_layernorm\.", "image_inputs.first_norm."),
    (r"cross_modal_text_link_tower\.(\d+)\.", r"text_inputs.links.\1."),
    (r"cross_modal_image_link_tower\.(\d+)\.", r"image_inputs.links.\1."),
    (r"(cross_modal_(text|image)_(transform|pooler)|token_type_embeddings)\.", r"\1."),
)


def hf_key_map(key: str) -> str | None:
    """Our parameter name for a transformers BridgeTowerModel key (None: dropped); ValueError if unknown."""
    for pattern, target in _PREFIXES:
        match = re.match(pattern, key)
        if match:
            return None if target is None else match.expand(target) + key[match.end() :]
    raise ValueError(f"no ManagerTower parameter for transformers BridgeTower key {key!r}")


def config_from_hf_bridgetower(hf_config) -> ManagerTowerConfig:
    text, vision = hf_config.text_config, hf_config.vision_config
    refused = {
        "share_cross_modal_transformer_layers": (hf_config.share_cross_modal_transformer_layers, True),
        "share_link_tower_layers": (hf_config.share_link_tower_layers, False),
        "vision_config.share_layernorm": (vision.share_layernorm, True),
        "vision_config.remove_last_layer": (vision.remove_last_layer, False),
        "text_config.hidden_act": (text.hidden_act, "gelu"),  # the cross layers' activation (ours is fixed)
    }
    for name, (value, supported) in refused.items():
        if value != supported:
            raise ValueError(f"BridgeTower {name}={value} is not supported (only {supported})")
    if text.num_hidden_layers != vision.num_hidden_layers:
        raise ValueError(
            f"transformers' BridgeTower splits both encoders at the text depth: text layers ({text.num_hidden_layers}) "
            f"!= vision layers ({vision.num_hidden_layers})"
        )
    return ManagerTowerConfig(
        text=TextEncoderConfig(
            vocab_size=text.vocab_size, hidden_size=text.hidden_size, layers=text.num_hidden_layers,
            heads=text.num_attention_heads, intermediate_size=text.intermediate_size,
            max_positions=text.max_position_embeddings, pad_token_id=text.pad_token_id,
            layer_norm_eps=text.layer_norm_eps, dropout=text.hidden_dropout_prob,
        ),
        vision=VisionEncoderConfig(
            hidden_size=vision.hidden_size, layers=vision.num_hidden_layers, patch_size=vision.patch_size,
            image_size=vision.image_size, layer_norm_eps=vision.layer_norm_eps,
        ),
        # transformers builds the cross-modal layers from the text config
        cross=CrossModalConfig(
            layers=hf_config.num_hidden_layers, hidden_size=text.hidden_size, heads=text.num_attention_heads,
            intermediate_size=text.intermediate_size, layer_norm_eps=text.layer_norm_eps,
            input_norm_eps=hf_config.layer_norm_eps, dropout=text.hidden_dropout_prob,
        ),
        fusion=Fusion.BRIDGETOWER,
        link=LinkType(hf_config.link_tower_type),
        mlm_norm_eps=hf_config.layer_norm_eps,  # what BridgeTowerForMaskedLM's head would be built with
    )  # fmt: skip


class HFBridgeTowerAdapter:
    """transformers' ``BridgeTowerModel`` -> ours in ``Fusion.BRIDGETOWER`` mode: every key renamed by
    :func:`hf_key_map` (the text pooler dropped, an unknown key an error), the config by
    :func:`config_from_hf_bridgetower`."""

    def config_to_ours(self, hf_config) -> ManagerTowerConfig:
        return config_from_hf_bridgetower(hf_config)

    def to_ours(self, state_dict: StateDict) -> StateDict:
        state = {}
        for key, value in state_dict.items():
            target = hf_key_map(key)
            if target is not None:
                state[target] = value
        return state


def from_hf_bridgetower(hf_model) -> ManagerTowerModel:
    """A ``Fusion.BRIDGETOWER`` model holding ``hf_model``'s weights (strict: every tensor placed, none missing)."""
    if hasattr(hf_model, "bridgetower"):
        raise ValueError(
            f"{type(hf_model).__name__} is a BridgeTower task model: task_from_hf_bridgetower(model) converts it with "
            "its heads, from_hf_bridgetower(model.bridgetower) its backbone alone"
        )
    adapter = HFBridgeTowerAdapter()
    model = ManagerTowerModel(adapter.config_to_ours(hf_model.config))
    state = adapter.to_ours(hf_model.state_dict())
    ours = model.state_dict()
    missing, unexpected = sorted(set(ours) - set(state)), sorted(set(state) - set(ours))
    if missing or unexpected:
        raise ValueError(f"BridgeTower conversion: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for key, value in state.items():
        if value.shape != ours[key].shape:
            raise ValueError(
                f"BridgeTower conversion: {key} has shape {tuple(value.shape)}, ours {tuple(ours[key].shape)}"
            )
    model.load_state_dict(state, strict=True)
    return model.to(next(hf_model.parameters()).dtype)
