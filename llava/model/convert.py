"""Convert between our (= LLaVA-NeXT) checkpoint layout and transformers' ``LlavaOnevisionForConditionalGeneration``.

Key mapping (ours -> transformers, in-memory names of transformers 5.x)::

    model.vision_tower.vision_tower.vision_model.*  ->  model.vision_tower.*
    model.mm_projector.0.* / model.mm_projector.2.* ->  model.multi_modal_projector.linear_1.* / linear_2.*
    model.image_newline                             ->  model.image_newline
    model.* (Qwen2 trunk)                           ->  model.language_model.*
    lm_head.weight                                  ->  lm_head.weight

The mapping is :class:`LlavaOnevisionAdapter` (``vlcommon.state_dict``'s protocol: ``to_ours``/``from_ours`` for the
tensors, ``config_to_ours``/``config_from_ours`` for the configs). Managers have no place in transformers' classes:
``to-hf`` writes them to ``managers.safetensors`` plus ``manager_config.json`` next to the transformers checkpoint
(which then runs as the baseline there), and ``from-hf`` puts them back.

From transformers, settings our layout cannot express are refused by name before any weight is read
(``check_hf_config``: several feature layers, a non-GELU projector, ``vision_feature_select_strategy="default"``);
``vision_feature_layer=-k`` becomes a tower cut after that layer and a bias-free projector gets zero biases, both
exact.

transformers needs ``<image>``/``<video>`` ids inside the vocabulary; Qwen2's embedding has spare rows above the
tokenizer (151646..151935), so the defaults use those instead of resizing the embedding (transformers' own
converter grows the vocabulary to 152000). Grid pinpoints flip from (width, height) to (height, width).

Command line::

    python -m llava.model.convert to-hf   SRC DST   # our checkpoint -> transformers format
    python -m llava.model.convert from-hf SRC DST   # transformers format -> our checkpoint
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, Qwen2Config

from llava.model.anyres import AspectRatio, parse_grid_pinpoints
from llava.model.config import OV_GRID_PINPOINTS, LlavaQwenConfig, MultimodalSpec, ProjectorKind
from llava.model.llava_qwen import LlavaQwenForCausalLM
from vlcommon.state_dict import StateDict

_TO_HF_PREFIXES = (
    ("model.vision_tower.vision_tower.vision_model.", "model.vision_tower."),
    ("model.mm_projector.0.", "model.multi_modal_projector.linear_1."),
    ("model.mm_projector.2.", "model.multi_modal_projector.linear_2."),
    ("model.image_newline", "model.image_newline"),
    ("lm_head.", "lm_head."),
    ("model.", "model.language_model."),
)
# The way back: the same pairs reversed, the catch-all ``model.`` last again so that it never shadows the others.
_FROM_HF_PREFIXES = tuple((new, old) for old, new in _TO_HF_PREFIXES[:-1]) + (("model.language_model.", "model."),)
# Fields Qwen2Config declares itself (its dataclass fields also hold class-level plumbing of PreTrainedConfig).
_TEXT_FIELDS = tuple(Qwen2Config.__annotations__)


def _rename_all(state_dict: dict[str, torch.Tensor], table, direction: str) -> dict[str, torch.Tensor]:
    """Rename every key by the first matching prefix of ``table``; a key that matches none is an error."""
    out, unknown = {}, []
    for key, value in state_dict.items():
        match = next(((old, new) for old, new in table if key.startswith(old)), None)
        if match is None:
            unknown.append(key)
        else:
            out[match[1] + key[len(match[0]) :]] = value
    if unknown:
        raise ValueError(f"{direction}: {len(unknown)} keys have no counterpart, e.g. {unknown[:3]}")
    return out


MANAGER_PREFIX = "model.managers."
MANAGER_WEIGHTS, MANAGER_CONFIG = "managers.safetensors", "manager_config.json"


def split_managers(state_dict: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """(everything else, manager weights)."""
    managers = {k: v for k, v in state_dict.items() if k.startswith(MANAGER_PREFIX)}
    return {k: v for k, v in state_dict.items() if k not in managers}, managers


def to_hf_config(
    config: LlavaQwenConfig, *, image_token_index: int = 151646, video_token_index: int = 151647
) -> LlavaOnevisionConfig:
    spec = MultimodalSpec.from_config(config)
    runs_as_hf = (
        spec.aspect_ratio.name is AspectRatio.ANYRES_MAX
        and spec.use_newline
        and spec.projector.kind is ProjectorKind.MLP
        and spec.projector.depth == 2
    )
    if not runs_as_hf:
        warnings.warn(
            f"transformers' LlavaOnevision always runs anyres_max_N + spatial_unpad with an mlp2x_gelu projector; this "
            f"model uses image_aspect_ratio={config.image_aspect_ratio!r}, merge={str(spec.merge_type)!r}, projector="
            f"{config.mm_projector_type!r}, so its outputs there will differ from ours",
            stacklevel=2,
        )
    for name, index in (("image_token_index", image_token_index), ("video_token_index", video_token_index)):
        if not 0 <= index < config.vocab_size:
            raise ValueError(f"{name}={index} is outside the vocabulary (size {config.vocab_size})")
    text = Qwen2Config(**{f: getattr(config, f) for f in _TEXT_FIELDS if hasattr(config, f)})
    max_crops = spec.aspect_ratio.max_num_crops or 9
    return LlavaOnevisionConfig(
        text_config=text.to_dict(),
        vision_config=config.vision_config.to_dict(),
        image_token_index=image_token_index,
        video_token_index=video_token_index,
        projector_hidden_act="gelu",
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        multimodal_projector_bias=True,
        tie_word_embeddings=config.tie_word_embeddings,
        # A non-anyres model has no pinpoints; transformers needs some (and warns above that it differs anyway).
        image_grid_pinpoints=[
            [h, w] for (w, h) in spec.grid_pinpoints or parse_grid_pinpoints(OV_GRID_PINPOINTS, spec.crop_size)
        ],
        vision_aspect_ratio=f"anyres_max_{max_crops}",
    )


def _hf_feature_layer(config: LlavaOnevisionConfig) -> int:
    """``vision_feature_layer`` as one index into SigLIP's hidden states; several layers cannot be represented."""
    layer = config.vision_feature_layer
    if isinstance(layer, (list, tuple)):
        if len(layer) != 1:
            raise ValueError(
                f"vision_feature_layer={list(layer)}: transformers concatenates these layers' features "
                "along channels before the projector; a LLaVA-NeXT projector reads one layer"
            )
        layer = layer[0]
    return int(layer)


def hf_vision_depth(config: LlavaOnevisionConfig) -> int:
    """How many SigLIP layers our tower keeps for ``config``: its features are the last kept layer's output."""
    layer = _hf_feature_layer(config)
    total = config.vision_config.num_hidden_layers
    depth = total + 1 + layer if layer < 0 else layer
    if not 1 <= depth <= total:
        raise ValueError(
            f"vision_feature_layer={config.vision_feature_layer!r} selects no encoder layer of a "
            f"{total}-layer vision tower"
        )
    return depth


def check_hf_config(config: LlavaOnevisionConfig) -> None:
    """Refuse, by name, every setting our model cannot reproduce exactly (instead of converting it silently)."""
    unsupported = {
        "text_config.model_type": (config.text_config.model_type, ("qwen2",)),
        "vision_config.model_type": (config.vision_config.model_type, ("siglip_vision_model",)),
        # "default" drops the first token, a CLS token for CLIP but a patch for SigLIP (no CLS): 728 tokens.
        "vision_feature_select_strategy": (config.vision_feature_select_strategy, ("full",)),
        # LLaVA-NeXT's mlp2x_gelu is exact GELU; the tanh approximation gives other logits.
        "projector_hidden_act": (config.projector_hidden_act, ("gelu",)),
    }
    for name, (value, allowed) in unsupported.items():
        if value not in allowed:
            raise ValueError(f"{name}={value!r} cannot be converted: the LLaVA-NeXT layout supports {allowed}")
    hf_vision_depth(config)


def from_hf_config(config: LlavaOnevisionConfig) -> LlavaQwenConfig:
    check_hf_config(config)
    text = config.text_config
    fields = {f: getattr(text, f) for f in _TEXT_FIELDS if hasattr(text, f)}
    fields["tie_word_embeddings"] = config.tie_word_embeddings
    vision = {**config.vision_config.to_dict(), "num_hidden_layers": hf_vision_depth(config), "vision_use_head": False}
    return LlavaQwenConfig(
        **fields,
        vision_config=vision,
        mm_vision_select_layer=_hf_feature_layer(config),
        mm_projector_type="mlp2x_gelu",
        mm_patch_merge_type="spatial_unpad",
        image_aspect_ratio=config.vision_aspect_ratio,
        image_grid_pinpoints=[[w, h] for (h, w) in config.image_grid_pinpoints],
    )


def _fit_hf_state(state: dict[str, torch.Tensor], config: LlavaOnevisionConfig) -> dict[str, torch.Tensor]:
    """Our-named weights of a transformers model, shaped as ``from_hf_config(config)`` builds the model: the
    vision layers past the feature layer dropped, and zero projector biases where transformers has none (a zero
    bias computes exactly what no bias does)."""
    depth = hf_vision_depth(config)
    vision = "model.vision_tower.vision_tower.vision_model."
    layers = vision + "encoder.layers."

    def kept_key(key: str) -> bool:
        if key.startswith(vision + "head."):  # SigLIP's pooling head: transformers' LlavaOnevision never runs it
            return False
        return not (key.startswith(layers) and int(key[len(layers) :].split(".")[0]) >= depth)

    kept = {k: v for k, v in state.items() if kept_key(k)}
    if not config.multimodal_projector_bias:
        warnings.warn(
            "multimodal_projector_bias=False: the projector gets zero biases (same outputs; they train if "
            "the model is fine-tuned)",
            stacklevel=3,
        )
        for index in (0, 2):
            weight = kept[f"model.mm_projector.{index}.weight"]
            kept[f"model.mm_projector.{index}.bias"] = weight.new_zeros(weight.shape[0])
    return kept


class LlavaOnevisionAdapter:
    """transformers' ``LlavaOnevisionForConditionalGeneration`` <-> ours (LLaVA-NeXT's names), managers excluded.

    With ``hf_config``, ``to_ours`` also fits the tensors to the model ``config_to_ours(hf_config)`` builds (a tower
    cut at the feature layer, zero projector biases); without it, only the names change."""

    def __init__(self, hf_config: LlavaOnevisionConfig | None = None) -> None:
        self.hf_config = hf_config

    def to_ours(self, state_dict: StateDict) -> StateDict:
        state = _rename_all(state_dict, _FROM_HF_PREFIXES, "from transformers")
        return state if self.hf_config is None else _fit_hf_state(state, self.hf_config)

    def from_ours(self, state_dict: StateDict) -> StateDict:
        # The catch-all ``model.`` would file manager weights under the language model, where transformers would
        # load nothing of them: refuse instead (they travel in MANAGER_WEIGHTS, see split_managers).
        managers = [key for key in state_dict if key.startswith(MANAGER_PREFIX)]
        if managers:
            raise ValueError(f"to transformers: split the managers off first (split_managers), e.g. {managers[:3]}")
        return _rename_all(state_dict, _TO_HF_PREFIXES, "to transformers")

    def config_to_ours(self, hf_config: LlavaOnevisionConfig) -> LlavaQwenConfig:
        return from_hf_config(hf_config)

    def config_from_ours(self, config: LlavaQwenConfig, **token_ids) -> LlavaOnevisionConfig:
        return to_hf_config(config, **token_ids)


def to_hf_model(model: LlavaQwenForCausalLM, **token_ids) -> LlavaOnevisionForConditionalGeneration:
    """The baseline part of ``model`` as a transformers model (managers, if any, are left out: see module doc)."""
    adapter = LlavaOnevisionAdapter()
    hf = LlavaOnevisionForConditionalGeneration(adapter.config_from_ours(model.config, **token_ids))
    baseline, _ = split_managers(model.state_dict())
    hf.load_state_dict(adapter.from_ours(baseline), strict=True)
    return hf.to(model.dtype).eval()


def from_hf_model(
    hf: LlavaOnevisionForConditionalGeneration, manager: dict | None = None, manager_weights: dict | None = None
) -> LlavaQwenForCausalLM:
    adapter = LlavaOnevisionAdapter(hf.config)
    config = adapter.config_to_ours(hf.config)
    config.manager = manager
    model = LlavaQwenForCausalLM(config)
    state = adapter.to_ours(hf.state_dict())
    state.update(manager_weights or {})
    model.load_state_dict(state, strict=True)
    return model.to(hf.dtype).eval()


def convert_checkpoint(src: str | Path, dst: str | Path, direction: str) -> None:
    """Convert a checkpoint directory (weights, config and tokenizer) in ``direction`` "to-hf" or "from-hf"."""
    if direction == "to-hf":
        from llava.model.builder import load_pretrained_model

        tokenizer, model, _, _ = load_pretrained_model(str(src), None, None, torch_dtype="float32", device_map="cpu")
        image_id, video_id = _special_ids(tokenizer, model.config.vocab_size)
        converted = to_hf_model(model, image_token_index=image_id, video_token_index=video_id)
        _, managers = split_managers(model.state_dict())
    elif direction == "from-hf":
        check_hf_config(LlavaOnevisionConfig.from_pretrained(src))  # before minutes of weight loading
        tokenizer = AutoTokenizer.from_pretrained(src)
        manager, managers = _read_manager_side_file(Path(src))
        converted = from_hf_model(LlavaOnevisionForConditionalGeneration.from_pretrained(src), manager, managers)
        managers = {}
    else:
        raise ValueError(f"direction={direction!r}: expected 'to-hf' or 'from-hf'")
    converted.save_pretrained(dst, safe_serialization=True)
    tokenizer.save_pretrained(dst)
    if managers:
        save_file({k: v.contiguous() for k, v in managers.items()}, Path(dst) / MANAGER_WEIGHTS)
        (Path(dst) / MANAGER_CONFIG).write_text(json.dumps(model.config.manager.to_dict(), indent=2))


def _read_manager_side_file(path: Path) -> tuple[dict | None, dict]:
    if not (path / MANAGER_WEIGHTS).exists():
        return None, {}
    return json.loads((path / MANAGER_CONFIG).read_text()), load_file(path / MANAGER_WEIGHTS)


def _special_ids(tokenizer, vocab_size: int) -> tuple[int, int]:
    """Add ``<image>``/``<video>`` to the tokenizer (transformers' processor expects them) within the vocabulary."""
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>", "<video>"]})
    ids = tokenizer.convert_tokens_to_ids(["<image>", "<video>"])
    if max(ids) >= vocab_size:
        raise ValueError(
            f"<image>/<video> ids {ids} do not fit the vocabulary of {vocab_size}; resize embeddings first"
        )
    return ids[0], ids[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Convert LLaVA-OV checkpoints to/from transformers' format")
    parser.add_argument("direction", choices=("to-hf", "from-hf"))
    parser.add_argument("src")
    parser.add_argument("dst")
    args = parser.parse_args(argv)
    convert_checkpoint(args.src, args.dst, args.direction)
    print(f"wrote {args.dst}")


if __name__ == "__main__":
    main()
