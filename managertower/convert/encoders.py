"""Loaders for the raw pre-trained experts the paper starts from: a RoBERTa checkpoint, and CLIP in OpenAI's layout
(the JIT ``ViT-B-16.pt`` or a plain state dict) or transformers' ``clip-vit-base-patch16`` layout.

    load_roberta(model, "roberta-base/")        # a transformers folder, a .safetensors / .bin file, or a state dict
    load_clip(model, "ViT-B-16.pt")             # OpenAI's JIT archive; or "clip-vit-base-patch16/"

Each reads the source through its format's adapter (``RobertaAdapter``, ``OpenAIClipAdapter``, ``HFClipAdapter``:
``vlcommon.state_dict``'s protocol), fills the encoder in place and returns the source keys it did not use (CLIP's
text tower, ``visual.proj``, RoBERTa's pooler and MLM head). A position table of another grid is resized once here,
bicubically with the class position kept apart, as the original did at load time (and as transformers'
``interpolate_pos_encoding`` does at every forward). open_clip is not used: it imports torchvision, which breaks
beside the CPU torch wheel.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors.torch import load_file

from managertower.model import ManagerTowerModel
from vlcommon.state_dict import PartialStateDictAdapter, StateDict


def read_state(source: str | Path | StateDict) -> StateDict:
    """A state dict from a dict, a transformers folder, a .safetensors file, a JIT archive or a torch.save file."""
    if isinstance(source, dict):
        return dict(source)
    path = Path(source)
    if path.is_dir():
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (path / name).is_file():
                return read_state(path / name)
        raise ValueError(f"{path} holds neither model.safetensors nor pytorch_model.bin")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
    except RuntimeError:  # not a TorchScript archive: a plain torch.save'd state dict
        return torch.load(path, map_location="cpu", weights_only=True)


# Buffers the modules rebuild themselves: a checkpoint need not hold them.
_REBUILT = ("position_ids", "token_type_ids")


def load_into(module: torch.nn.Module, state: StateDict, what: str) -> list[str]:
    """Load ``state`` into ``module`` (every tensor of the module must be there, in its shape, but the rebuilt id
    buffers); returns the mapped keys the module has no place for, so that nothing is dropped unreported."""
    ours = module.state_dict()
    state = {**{k: v for k, v in ours.items() if k.endswith(_REBUILT)}, **state}
    missing = sorted(set(ours) - set(state))
    if missing:
        raise ValueError(f"{what}: the checkpoint lacks {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    for key, value in state.items():
        if key in ours and value.shape != ours[key].shape:
            raise ValueError(f"{what}: {key} has shape {tuple(value.shape)}, the model {tuple(ours[key].shape)}")
    module.load_state_dict({k: state[k] for k in ours}, strict=True)
    return sorted(set(state) - set(ours))


class RobertaAdapter(PartialStateDictAdapter):
    """RoBERTa (``RobertaModel`` or ``RobertaForMaskedLM`` keys) -> our text encoder (``text_model.model``); the
    pooler and the MLM head are left out."""

    def split(self, state_dict: StateDict) -> tuple[StateDict, list[str]]:
        state, unused = {}, []
        for key, value in state_dict.items():
            name = key.removeprefix("roberta.")
            if name.startswith(("embeddings.", "encoder.")):
                state[name] = value
            else:
                unused.append(key)
        return state, unused


def load_roberta(model: ManagerTowerModel, source: str | Path | StateDict) -> list[str]:
    """RoBERTa weights (``RobertaModel`` or ``RobertaForMaskedLM`` keys) into the text encoder."""
    state, unused = RobertaAdapter().split(read_state(source))
    return unused + load_into(model.text_model.model, state, "RoBERTa")


_OPENAI = {"visual.conv1.weight": "embeddings.patch_embedding.weight",
           "visual.class_embedding": "embeddings.class_embedding",
           "visual.positional_embedding": "embeddings.position_embedding.weight"}  # fmt: skip
_HF_LAYER = re.compile(r"encoder\.layers\.(\d+)\.(.+)")
_HF_PARTS = {"self_attn.out_proj.": "attn.out_proj.", "layer_norm1.": "ln_1.", "layer_norm2.": "ln_2.",
             "mlp.fc1.": "mlp.c_fc.", "mlp.fc2.": "mlp.c_proj."}  # fmt: skip
_HF_TOP = {"embeddings.": "embeddings.", "pre_layrnorm.": "ln_pre.", "post_layernorm.": "ln_post."}


def resize_positions(table: torch.Tensor, tokens: int) -> torch.Tensor:
    """A (1 + g^2, D) CLIP position table -> (tokens, D): the g x g grid resized bicubically, the class row kept."""
    if len(table) == tokens:
        return table
    old, new = round((len(table) - 1) ** 0.5), round((tokens - 1) ** 0.5)
    if old * old != len(table) - 1 or new * new != tokens - 1:
        raise ValueError(f"cannot resize a position table of {len(table)} rows to {tokens}: not square grids")
    grid = table[1:].reshape(1, old, old, -1).permute(0, 3, 1, 2).float()
    grid = torch.nn.functional.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
    return torch.cat([table[:1], grid.permute(0, 2, 3, 1).reshape(new * new, -1).to(table.dtype)])


class _ClipAdapter(PartialStateDictAdapter):
    """CLIP vision weights -> our visual encoder (``vision_model.model.visual``), in OpenAI's module names; with
    ``tokens``, the position table is resized to that many rows (our model's grid)."""

    def __init__(self, tokens: int | None = None) -> None:
        self.tokens = tokens

    def split(self, state_dict: StateDict) -> tuple[StateDict, list[str]]:
        state, unused = self._rename(state_dict)
        key = "embeddings.position_embedding.weight"
        if self.tokens is not None and key in state:
            state[key] = resize_positions(state[key], self.tokens)
        return state, unused

    def _rename(self, state_dict: StateDict) -> tuple[StateDict, list[str]]:
        raise NotImplementedError


class OpenAIClipAdapter(_ClipAdapter):
    """OpenAI's layout (``visual.*``, the JIT archive's keys); the text tower, ``visual.proj`` and ``logit_scale``
    are left out."""

    def _rename(self, state_dict: StateDict) -> tuple[StateDict, list[str]]:
        state, unused = {}, []
        for key, value in state_dict.items():
            if key in _OPENAI:
                state[_OPENAI[key]] = value
            elif key.startswith(("visual.ln_pre.", "visual.ln_post.", "visual.transformer.")):
                state[key.removeprefix("visual.")] = value
            else:
                unused.append(key)
        return state, unused


class HFClipAdapter(_ClipAdapter):
    """transformers' ``CLIPVisionModel`` layout: its separate q, k, v projections are fused into OpenAI's one
    in-projection; its ``position_ids`` buffer is left out."""

    def _rename(self, state_dict: StateDict) -> tuple[StateDict, list[str]]:
        state, unused, qkv = {}, [], {}
        for key, value in state_dict.items():
            name = key.removeprefix("vision_model.")
            layer = _HF_LAYER.fullmatch(name)
            if layer:
                index, rest = layer.groups()
                match = re.fullmatch(r"self_attn\.([qkv])_proj\.(weight|bias)", rest)
                if match:
                    qkv[(index, match[2], match[1])] = value
                    continue
                part = next((p for p in _HF_PARTS if rest.startswith(p)), None)
                if part:
                    state[f"transformer.resblocks.{index}.{_HF_PARTS[part]}{rest[len(part) :]}"] = value
                    continue
            top = next((p for p in _HF_TOP if name.startswith(p)), None)
            if top and not name.endswith("position_ids"):
                state[_HF_TOP[top] + name[len(top) :]] = value
            else:
                unused.append(key)
        for index, kind in {(i, k) for i, k, _ in qkv}:  # OpenAI fuses q, k, v into one in-projection
            fused = torch.cat([qkv[(index, kind, p)] for p in "qkv"], dim=0)
            state[f"transformer.resblocks.{index}.attn.in_proj_{kind}"] = fused
        return state, unused


def load_clip(model: ManagerTowerModel, source: str | Path | StateDict) -> list[str]:
    """CLIP vision weights into the visual encoder; the layout (OpenAI or transformers) is told by the keys."""
    raw = read_state(source)
    openai = "visual.conv1.weight" in raw
    if not openai and not any(k.removeprefix("vision_model.").startswith("encoder.layers.") for k in raw):
        raise ValueError("not a CLIP checkpoint: neither OpenAI's visual.conv1.weight nor transformers' encoder.layers")
    adapter = (OpenAIClipAdapter if openai else HFClipAdapter)(model.config.vision.tokens)
    state, unused = adapter.split(raw)
    what = "CLIP (OpenAI layout)" if openai else "CLIP (transformers layout)"
    return unused + load_into(model.vision_model.model.visual, state, what)
