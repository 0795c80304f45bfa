"""The Two-Tower model: unimodal experts, their projected layer stacks, a fusion's inputs, the co-attention layers.

    model = ManagerTowerModel(config)
    out = model(input_ids, attention_mask, pixel_values)  # text_features, image_features, cls_feats

One forward serves METER, BridgeTower and ManagerTower (``config.fusion``); ``output_managers=True`` also returns
every manager's weights and its aggregated unimodal and cross-modal parts (paper Figs. 4, 7, 23-25).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from managertower.config import ManagerTowerConfig
from managertower.cross import CrossLayer, additive_mask
from managertower.encoders import TextEncoder, VisionEncoder
from managertower.inputs import ManagedInputs, build_inputs
from managertower.managers import ManagerOutput
from vlcommon.ledger import atomic_write

CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"


@dataclass(frozen=True, slots=True)
class ManagerTowerOutput:
    text_features: torch.Tensor  # (B, Lt, D): the last cross-modal text layer
    image_features: torch.Tensor  # (B, Lv, D)
    cls_feats: torch.Tensor  # (B, 2D): tanh-pooled first tokens, text then image
    text_top: torch.Tensor  # (B, Lt, Dt): the last unimodal text layer (ITC uses its first token)
    image_top: torch.Tensor  # (B, Lv, Dv): the last unimodal image layer after ln_post
    managers: tuple[tuple[ManagerOutput, ManagerOutput], ...] | None = None  # per layer: (text, image)


class Pooler(nn.Module):
    """Linear + tanh on the first token (transformers' ``BridgeTowerPooler``, the original's ``heads.Pooler``)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))


class ManagerTowerModel(nn.Module):
    def __init__(self, config: ManagerTowerConfig) -> None:
        super().__init__()
        self.config = config  # validated when it was built
        hidden, attention = config.cross.hidden_size, config.attention
        self.text_model = TextEncoder(config.text, attention=attention)
        self.vision_model = VisionEncoder(config.vision)
        self.text_layers = config.expert_layers(config.text.layers)
        self.image_layers = config.expert_layers(config.vision.layers)
        self.cross_modal_text_transform = nn.Linear(config.text.hidden_size, hidden)
        self.cross_modal_image_transform = nn.Linear(config.vision.hidden_size, hidden)
        self.token_type_embeddings = nn.Embedding(config.token_types, hidden)
        self.text_inputs = build_inputs(config, config.text.layers)
        self.image_inputs = build_inputs(config, config.vision.layers)
        self.cross_modal_text_layers = nn.ModuleList(
            CrossLayer(config.cross, attention=attention) for _ in range(config.cross.layers)
        )
        self.cross_modal_image_layers = nn.ModuleList(
            CrossLayer(config.cross, attention=attention) for _ in range(config.cross.layers)
        )
        self.cross_modal_text_pooler = Pooler(hidden)
        self.cross_modal_image_pooler = Pooler(hidden)
        self._init_new_modules()

    def _init_new_modules(self) -> None:
        """N(0, init_std) Linear/Embedding weights, zero biases, LN (1, 0) for everything but the encoders (the
        original's ``init_weights``); managers' raw parameters keep their hand-set values."""
        encoders = {id(m) for m in (*self.text_model.modules(), *self.vision_model.modules())}
        for module in self.modules():
            if id(module) in encoders:
                continue
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=self.config.init_std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def unimodal_stacks(self, input_ids, attention_mask, pixel_values, image_token_type: int):
        """Projected expert stacks with type (and, for managers, layer) embeddings: (B, N, Lt, D), (B, N, Lv, D),
        and the raw top layers."""
        text = self.text_model(input_ids, attention_mask, self.text_layers)
        image = self.vision_model(pixel_values, self.image_layers)
        types = self.token_type_embeddings.weight
        text_stack = self.cross_modal_text_transform(text) + types[0]
        image_stack = self.cross_modal_image_transform(image) + types[image_token_type]
        if isinstance(self.text_inputs, ManagedInputs):
            text_stack, image_stack = self.text_inputs.embed(text_stack), self.image_inputs.embed(image_stack)
        return text_stack, image_stack, text[:, -1], image[:, -1]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        *,
        image_token_type: int = 1,
        output_managers: bool = False,
    ) -> ManagerTowerOutput:
        """``input_ids``, ``attention_mask``: (B, Lt); ``pixel_values``: (B, 3, S, S) at ``config.vision.image_size``.
        ``image_token_type``: 1, or 2 for NLVR2's second image (with ``token_types=3``)."""
        if pixel_values is None:
            raise ValueError("ManagerTowerModel.forward needs pixel_values")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if not 1 <= image_token_type < self.config.token_types:
            raise ValueError(f"image_token_type={image_token_type} needs token_types > {image_token_type}")
        text_stack, image_stack, text_top, image_top = self.unimodal_stacks(
            input_ids, attention_mask, pixel_values, image_token_type
        )
        x, y, cls, managers = self.fuse(text_stack, image_stack, attention_mask, output_managers=output_managers)
        return ManagerTowerOutput(x, y, cls, text_top, image_top, managers)

    def fuse(self, text_stack, image_stack, attention_mask, *, output_managers: bool = False):
        """The co-attention layers on projected stacks (B, N, Lt, D), (B, N, Lv, D) (from :meth:`unimodal_stacks`;
        retrieval pairs a text's stack with other images' without rerunning the experts) -> the last text and image
        layers, ``cls_feats`` and, with ``output_managers``, every manager's record."""
        image_mask = torch.ones(image_stack.shape[0], image_stack.shape[2], dtype=attention_mask.dtype,
                                device=image_stack.device)  # fmt: skip
        text_add, image_add = (
            additive_mask(attention_mask, text_stack.dtype),
            additive_mask(image_mask, image_stack.dtype),
        )
        texts, images, records = [], [], []
        for layer in range(1, self.config.cross.layers + 1):
            x_in, text_record = self.text_inputs(layer, text_stack, texts, other=images[-1] if images else None)
            y_in, image_record = self.image_inputs(
                layer, image_stack, images, other=texts[-1] if texts else None, other_mask=attention_mask
            )
            texts.append(self.cross_modal_text_layers[layer - 1](x_in, y_in, text_add, image_add))
            images.append(self.cross_modal_image_layers[layer - 1](y_in, x_in, image_add, text_add))
            records.append((text_record, image_record))
        x, y = texts[-1], images[-1]
        cls = torch.cat([self.cross_modal_text_pooler(x), self.cross_modal_image_pooler(y)], dim=-1)
        managers = tuple(records) if output_managers and records[0][0] is not None else None
        return x, y, cls, managers

    def save_pretrained(self, path: str | Path) -> Path:
        """``config.json`` and ``model.safetensors``, written to a temporary name and renamed (atomic)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        atomic_write(
            path / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(self.config.to_dict(), indent=1) + "\n")
        )
        atomic_write(path / WEIGHTS_NAME, lambda tmp: save_file(_contiguous(self.state_dict()), tmp))
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path) -> ManagerTowerModel:
        path = Path(path)
        config = ManagerTowerConfig.from_dict(json.loads((path / CONFIG_NAME).read_text()))
        model = cls(config)
        model.load_state_dict(load_file(str(path / WEIGHTS_NAME)), strict=True)
        return model


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous() for k, v in state.items()}
