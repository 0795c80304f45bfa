"""Build the model a training stage starts from, with a complete multimodal config.

Two starting points:

* a plain Qwen2 LLM plus ``--vision_tower`` (stage 1, and stage 1.5 as LLaVA-OneVision runs it, with
  ``--pretrain_mm_mlp_adapter`` pointing at the stage-1 output): the SigLIP tower keeps the layers up to
  ``mm_vision_select_layer`` (``-2``: 26 of 27), projector and managers are fresh (managers at zero);
* a LLaVA-OV checkpoint (stage 2, or any fine-tuning): everything comes from it; managers absent from it start
  at zero (warm start from a baseline).

Multimodal settings resolve in this order: command-line flag, then the config of the checkpoint (or of the
stage-1 adapter directory), then -- for a plain LLM only -- LLaVA-NeXT's flag defaults (``square``, ``flat``,
``linear``), so an upstream stage-1 script that leaves them out trains what it trains upstream. The resolved value
and its origin are logged, and the model's ``config.json`` carries all of them, so a later stage never falls back
to a default silently. ``MultimodalSpec`` validates every image setting before the model is built.

The model is constructed directly and its weights loaded from the files (no ``from_pretrained``): under ZeRO-3 the
Trainer's arguments would otherwise wrap construction in ``zero.Init``, where SigLIP's initialisation fails; each
rank holds the full model until DeepSpeed partitions it.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from transformers import AutoTokenizer, SiglipVisionConfig

from llava.model.anyres import parse_grid_pinpoints
from llava.model.builder import resolve_attn_implementation
from llava.model.config import LlavaQwenConfig, MultimodalSpec
from llava.model.llava_qwen import LlavaQwenForCausalLM
from llava.model.loading import (
    MANAGER_PREFIX,
    is_llava_checkpoint,
    load_weights,
    overlay_weights,
    read_config_dict,
)
from llava.model.manager_config import ManagerChoice
from llava.model.weights import read_adapter, read_weights
from llava.train.arguments import manager_choice
from llava.train.tunable import Part
from vlcommon.resume_match import require_same_parameters, shapes_on_meta

logger = logging.getLogger(__name__)

# Fields a stage-1 adapter directory hands on to the next stage.
_INHERITED = (
    "mm_projector_type",
    "mm_patch_merge_type",
    "mm_vision_select_layer",
    "image_aspect_ratio",
    "image_grid_pinpoints",
    "manager",
)
# What LLaVA-NeXT's train.py uses when a stage script leaves these flags out (its pretrain_siglip.sh relies on the
# first two). A stage that starts from a plain LLM gets them too; a LLaVA checkpoint keeps its own values.
LLAVA_NEXT_DEFAULTS = {"image_aspect_ratio": "square", "mm_patch_merge_type": "flat", "mm_projector_type": "linear"}
_VISION_PREFIX = "model.vision_tower.vision_tower."
_SIGLIP_VISION_MODULES = ("embeddings.", "encoder.", "post_layernorm.")


def _vision_config(vision_tower: str, select_layer: int) -> SiglipVisionConfig:
    config = SiglipVisionConfig.from_pretrained(vision_tower)
    depth = config.num_hidden_layers + select_layer + 1 if select_layer < 0 else select_layer
    if not 1 <= depth <= config.num_hidden_layers:
        raise ValueError(
            f"mm_vision_select_layer={select_layer} is out of range for a {config.num_hidden_layers}-layer vision tower"
        )
    config.num_hidden_layers = depth
    config.vision_use_head = False
    return config


def build_config(
    model_args,
    data_args,
    training_args,
    *,
    managers: ManagerChoice | None = None,
    grids: tuple = (),
    parts: tuple[Part, ...] | None = None,
) -> tuple[LlavaQwenConfig, dict[str, str]]:
    """The stage's config and, for each multimodal field, where its value came from. ``managers``, ``grids``
    (anyres, in crops) and ``parts`` are the run config's typed values; the ``--manager_*``,
    ``--image_grid_pinpoints`` and ``--mm_tunable_parts`` flags win over them."""
    raw, origin, from_llava = _starting_config(model_args)
    overrides = _flag_overrides(model_args, data_args, training_args)
    if parts and model_args.mm_tunable_parts is None:  # recorded in the config as LLaVA-NeXT records its flag
        overrides["mm_tunable_parts"] = ",".join(p.value for p in parts)
    if from_llava:
        for key in ("mm_projector_type", "mm_vision_select_layer"):
            if key in overrides and key in raw and overrides[key] != raw[key]:
                raise ValueError(
                    f"--{key} {overrides[key]!r} differs from the checkpoint's {raw[key]!r}; the weights "
                    "were trained for the latter"
                )
        _warn_kept_settings(raw, overrides)
    else:
        _add_vision_tower(raw, origin, model_args, overrides)
    raw.update(overrides)
    origin.update({k: "flag" for k in overrides})
    raw["use_cache"] = False
    config = LlavaQwenConfig(**raw)
    _apply_typed_settings(config, origin, model_args, managers, grids, flagged_grid="image_grid_pinpoints" in overrides)
    config._attn_implementation = resolve_attn_implementation(training_args.attn_implementation)
    spec = MultimodalSpec.from_config(config)  # validates every multimodal field now, not at the first batch
    if "image_grid_pinpoints" in overrides and not spec.aspect_ratio.is_anyres:
        warnings.warn(
            f"--image_grid_pinpoints has no effect with image_aspect_ratio={config.image_aspect_ratio!r}", stacklevel=2
        )
    return config, {k: origin.get(k, "default") for k in _INHERITED + ("tokenizer_model_max_length",)}


def _starting_config(model_args) -> tuple[dict, dict[str, str], bool]:
    """The config the stage starts from (the checkpoint's, or the LLM's with what a stage-1 adapter folder hands
    on), where each value came from, and whether it is a LLaVA checkpoint."""
    raw = read_config_dict(model_args.model_name_or_path)
    origin = {}
    from_llava = is_llava_checkpoint(raw)
    if model_args.pretrain_mm_mlp_adapter:
        adapter_dir = Path(model_args.pretrain_mm_mlp_adapter).parent
        if (adapter_dir / "config.json").is_file() and from_llava is False:
            inherited = {k: v for k, v in read_config_dict(adapter_dir).items() if k in _INHERITED}
            raw.update(inherited)
            origin.update({k: f"adapter {adapter_dir}" for k in inherited})
    for key in raw:
        origin.setdefault(key, "checkpoint" if from_llava else "llm")
    for key in ("model_type", "architectures", "transformers_version", "_name_or_path", "dtype", "torch_dtype"):
        raw.pop(key, None)
    return raw, origin, from_llava


def _add_vision_tower(raw: dict, origin: dict[str, str], model_args, overrides: dict) -> None:
    """A plain LLM's config gains the SigLIP tower (cut at the select layer) and LLaVA-NeXT's flag defaults."""
    if not model_args.vision_tower:
        raise ValueError(f"{model_args.model_name_or_path} is a plain LLM: pass --vision_tower (a SigLIP checkpoint)")
    select = overrides.get("mm_vision_select_layer", raw.get("mm_vision_select_layer", -2))
    raw["vision_config"] = _vision_config(model_args.vision_tower, select).to_dict()
    raw["mm_vision_tower"] = model_args.vision_tower
    raw.pop("mm_hidden_size", None)
    raw.setdefault("mm_vision_select_layer", select)
    # As LLaVA-NeXT's train.py: anyres needs --image_grid_pinpoints (the config class's OV default is for configs
    # built in code; a training run states its grid).
    raw.setdefault("image_grid_pinpoints", None)
    for key, value in LLAVA_NEXT_DEFAULTS.items():
        if key not in raw and key not in overrides:
            raw[key] = value
            origin[key] = "LLaVA-NeXT default"


def _apply_typed_settings(config, origin, model_args, managers, grids, *, flagged_grid: bool) -> None:
    """The anyres grid and the managers, now that the depths and the crop size are known: the flags' values over
    the run config's, over the checkpoint's."""
    crop = config.vision_config.image_size
    if grids and not flagged_grid:
        config.image_grid_pinpoints = [[columns * crop, rows * crop] for columns, rows in grids]
        origin["image_grid_pinpoints"] = "run config"
    elif isinstance(config.image_grid_pinpoints, str):
        # Stored expanded, as LLaVA-NeXT does, so tools that do not parse the range syntax read the file too.
        config.image_grid_pinpoints = [list(p) for p in parse_grid_pinpoints(config.image_grid_pinpoints, crop)]
    flags = manager_choice(model_args)
    chosen = flags.over(managers)
    config.manager = chosen.resolve(
        config.manager, vision_layers=config.vision_config.num_hidden_layers, llm_layers=config.num_hidden_layers
    )
    if chosen.given:
        origin["manager"] = "flag" if flags.given else "run config"


def _warn_kept_settings(checkpoint: dict, overrides: dict) -> None:
    """A checkpoint's image settings survive an omitted flag; LLaVA-NeXT would reset them to its defaults (its
    projector type too, but the weights fix that one, so it is not worth a warning)."""
    for key, default in LLAVA_NEXT_DEFAULTS.items():
        if key != "mm_projector_type" and key not in overrides and key in checkpoint and checkpoint[key] != default:
            warnings.warn(
                f"--{key} not given: keeping the checkpoint's {checkpoint[key]!r} (LLaVA-NeXT would reset "
                f"it to its default {default!r}; pass the flag to be explicit)",
                stacklevel=3,
            )


def _flag_overrides(model_args, data_args, training_args) -> dict:
    values = {
        "mm_projector_type": model_args.mm_projector_type,
        "mm_patch_merge_type": model_args.mm_patch_merge_type,
        "mm_vision_select_layer": model_args.mm_vision_select_layer,
        "image_aspect_ratio": data_args.image_aspect_ratio,
        "tokenizer_model_max_length": training_args.model_max_length,
        "tokenizer_padding_side": "right",
        "mm_projector_lr": training_args.mm_projector_lr,
        "mm_vision_tower_lr": training_args.mm_vision_tower_lr,
        "mm_manager_lr": training_args.mm_manager_lr,
        "mm_tunable_parts": model_args.mm_tunable_parts,
    }
    if data_args.image_grid_pinpoints is not None:
        values["image_grid_pinpoints"] = data_args.image_grid_pinpoints
    return {k: v for k, v in values.items() if v is not None}


def require_resumable(resume: str, config: LlavaQwenConfig) -> None:
    """The checkpoint a run resumes from holds the parameters of the model ``config`` builds (both on the meta
    device, before any weight is built); otherwise a ``ValueError`` names the folder, the parameters and the ways
    out (``vlcommon.resume_match``)."""
    saved = LlavaQwenConfig.from_pretrained(resume)
    require_same_parameters(
        resume,
        expected=shapes_on_meta(lambda: LlavaQwenForCausalLM(config)),
        found=shapes_on_meta(lambda: LlavaQwenForCausalLM(saved)),
    )


def build_model(
    model_args, data_args, training_args, *, config: tuple[LlavaQwenConfig, dict[str, str]] | None = None
) -> tuple[LlavaQwenForCausalLM, dict[str, str]]:
    """The model to train; ``config``: what :func:`build_config` returned for these flags, if the caller has it."""
    config, origin = config or build_config(model_args, data_args, training_args)
    model = LlavaQwenForCausalLM(config)
    source = model_args.model_name_or_path
    weights = read_weights(source)
    if is_llava_checkpoint(read_config_dict(source)):
        load_weights(model, weights, source)
    else:
        weights.update(_vision_weights(model_args.vision_tower, config.vision_config.num_hidden_layers))
        fresh = ("model.mm_projector.", "model.image_newline", "model.managers.")  # new modules: initialised here
        load_weights(model, weights, source, allowed_missing=lambda key: key.startswith(fresh))
    if model_args.pretrain_mm_mlp_adapter:
        _load_adapter(model, model_args.pretrain_mm_mlp_adapter)
    for key, value in sorted(origin.items()):
        logger.info("multimodal config: %s = %r (%s)", key, getattr(config, key, None), value)
    return model, origin


def _vision_weights(vision_tower: str, depth: int) -> dict:
    """SigLIP weights renamed into the tower; layers past ``depth``, the pooling head and a full SigLIP's text
    model are dropped. Accepts ``SiglipModel`` files (``vision_model.*``) and ``SiglipVisionModel`` ones."""
    kept = {}
    for key, tensor in read_weights(vision_tower).items():
        name = key.removeprefix("vision_model.")
        if not name.startswith(_SIGLIP_VISION_MODULES):
            continue
        parts = name.split(".")
        if parts[:2] == ["encoder", "layers"] and int(parts[2]) >= depth:
            continue
        kept[_VISION_PREFIX + "vision_model." + name] = tensor
    if not kept:
        raise ValueError(f"{vision_tower}: no SigLIP vision weights found")
    return kept


def _load_adapter(model, path: str) -> None:
    """Stage-1 weights: our ``mm_adapter.safetensors`` (projector, newline, managers) or LLaVA-NeXT's
    ``mm_projector.bin`` (projector only; see ``read_adapter``)."""
    weights = read_adapter(path)
    overlay_weights(model, weights, path)
    if model.get_model().managers is not None and not any(k.startswith(MANAGER_PREFIX) for k in weights):
        warnings.warn(f"{path} holds no manager weights; the managers start at zero", stacklevel=2)


def build_tokenizer(model_args, training_args):
    tokenizer = AutoTokenizer.from_pretrained(
        model_args.model_name_or_path, model_max_length=training_args.model_max_length, padding_side="right"
    )
    if tokenizer.pad_token_id is None:
        if tokenizer.unk_token_id is None:
            raise ValueError(f"{model_args.model_name_or_path}: the tokenizer has neither a pad nor an unk token")
        tokenizer.pad_token = tokenizer.unk_token
    return tokenizer
