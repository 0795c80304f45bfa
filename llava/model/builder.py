"""``load_pretrained_model``: LLaVA-NeXT's loader signature, without its pitfalls.

* The model class comes from the checkpoint's config content (a Qwen2 LLM with ``mm_*`` fields), never from
  substrings of the name; ``model_name`` is accepted for compatibility and ignored.
* ``model_type`` ``llava_qwen``, ``llava`` (released OV checkpoints) and ``qwen2`` (what LLaVA-NeXT training
  writes) all load.
* dtype and device are chosen for the machine: bfloat16 on a GPU that supports it (else float16), float32 on CPU;
  the vision tower is never forced to float16 behind the caller's back.
* ``flash_attention_2`` falls back to ``sdpa`` with a warning when flash-attn is not installed.
* 4/8-bit loading quantizes the LLM only: vision tower, projector, managers and ``lm_head`` stay in full precision.
* The embedding matrix is not shrunk to the tokenizer length (upstream resizes unconditionally).
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import torch
from transformers import AutoTokenizer, BitsAndBytesConfig

from llava.model.config import LlavaQwenConfig
from llava.model.llava_qwen import LlavaQwenForCausalLM
from llava.model.weights import read_weights
from llava.processing import SigLipImageProcessor

ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")
_QWEN_MODEL_TYPES = ("llava_qwen", "llava", "qwen2")
_MULTIMODAL_KEYS = ("mm_vision_tower", "mm_projector_type", "mm_hidden_size", "vision_config")
# Module-name prefixes transformers matches from the start of the full name.
UNQUANTIZED_MODULES = ["model.vision_tower", "model.mm_projector", "model.managers", "lm_head"]


def resolve_attn_implementation(requested: str | None) -> str:
    """Validate ``attn_implementation``; FlashAttention-2 without flash-attn (or without CUDA) becomes ``sdpa``."""
    if requested is None:
        return "sdpa"
    if requested not in ATTN_IMPLEMENTATIONS:
        raise ValueError(f"attn_implementation={requested!r} is not one of {ATTN_IMPLEMENTATIONS}")
    if requested == "flash_attention_2" and (importlib.util.find_spec("flash_attn") is None
                                             or not torch.cuda.is_available()):
        reason = "flash-attn is not installed" if torch.cuda.is_available() else "no CUDA device is available"
        warnings.warn(f"attn_implementation='flash_attention_2' requested but {reason}; using 'sdpa' instead",
                      stacklevel=2)
        return "sdpa"
    return requested


def resolve_dtype(torch_dtype) -> torch.dtype:
    if torch_dtype is None or torch_dtype == "auto":
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if isinstance(torch_dtype, torch.dtype):
        return torch_dtype
    names = {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float32": torch.float32, "fp32": torch.float32}
    if torch_dtype not in names:
        raise ValueError(f"torch_dtype={torch_dtype!r} is not one of {sorted(names)} or 'auto'")
    return names[torch_dtype]


def resolve_device_map(device_map):
    """CPU-only machines load on the CPU for ``auto``/``cpu``; a CUDA map without CUDA is a clear error."""
    if torch.cuda.is_available():
        return device_map
    if device_map in (None, "auto", "cpu") or device_map == {"": "cpu"}:
        return None
    raise ValueError(f"device_map={device_map!r} needs CUDA, which is not available; use device_map='cpu' or 'auto'")


def read_llava_config(model_path: str | Path, overwrite_config: dict | None = None) -> LlavaQwenConfig:
    """Read ``config.json`` of a LLaVA-OV checkpoint whatever its ``model_type`` says."""
    path = Path(model_path) / "config.json"
    if not path.is_file():
        raise ValueError(f"{model_path}: no config.json (is this a model directory?)")
    raw = json.loads(path.read_text())
    model_type = raw.pop("model_type", None)
    if model_type == "llava_onevision":
        raise ValueError(
            f"{model_path} is in transformers' LlavaOnevision format; convert it first: "
            f"python -m llava.model.convert from-hf {model_path} OUT_DIR"
        )
    if model_type not in _QWEN_MODEL_TYPES or not any(key in raw for key in _MULTIMODAL_KEYS):
        raise ValueError(
            f"{model_path}: model_type={model_type!r} with mm fields {[k for k in _MULTIMODAL_KEYS if k in raw]} is not a "
            f"LLaVA-OneVision Qwen2 checkpoint (expected model_type in {_QWEN_MODEL_TYPES} and mm_* fields)"
        )
    raw.update(overwrite_config or {})
    return LlavaQwenConfig(**raw)


def load_pretrained_model(
    model_path: str,
    model_base: str | None = None,
    model_name: str | None = None,
    load_8bit: bool = False,
    load_4bit: bool = False,
    device_map="auto",
    torch_dtype=None,
    attn_implementation: str | None = "sdpa",
    customized_config: LlavaQwenConfig | None = None,
    overwrite_config: dict | None = None,
    multimodal: bool = True,
    **kwargs,
):
    """Load ``(tokenizer, model, image_processor, context_len)``; ``model_base`` overlays a partial checkpoint.

    With ``model_base``, the full model is loaded from ``model_base`` and the weights found in ``model_path`` (for
    instance a stage-1 projector/manager checkpoint) replace the matching parameters; unknown keys are an error.
    """
    del model_name, multimodal  # accepted for LLaVA-NeXT compatibility; the checkpoint decides what it is
    config = customized_config or read_llava_config(model_path, overwrite_config)
    dtype = resolve_dtype(torch_dtype)
    load_kwargs = dict(
        config=config,
        dtype=dtype,
        attn_implementation=resolve_attn_implementation(attn_implementation),
        device_map=resolve_device_map(device_map),
        **kwargs,
    )
    if load_8bit or load_4bit:
        load_kwargs["quantization_config"] = _quantization_config(load_8bit, load_4bit, dtype)
    source = model_base or model_path
    model, info = LlavaQwenForCausalLM.from_pretrained(source, output_loading_info=True, **load_kwargs)
    check_missing_keys(model, info["missing_keys"], source)
    if model_base is not None:
        _overlay_weights(model, Path(model_path))
    tokenizer = AutoTokenizer.from_pretrained(model_path if (Path(model_path) / "tokenizer_config.json").exists() else source)
    if len(tokenizer) > model.config.vocab_size:
        model.resize_token_embeddings(len(tokenizer))
    set_generation_defaults(model, tokenizer)
    model.eval()
    vision = model.config.vision_config
    image_processor = SigLipImageProcessor(size=(vision.image_size, vision.image_size))
    return tokenizer, model, image_processor, context_length(model.config)


def check_missing_keys(model: LlavaQwenForCausalLM, missing: list[str], source) -> None:
    """Managers absent from a checkpoint start at zero (warm start from a baseline); anything else missing is an
    error, since transformers would otherwise leave it randomly initialised with only a log line."""
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    managers = [key for key in missing if key.startswith("model.managers.")]
    others = sorted(set(missing) - set(managers) - tied)
    if others:
        raise ValueError(f"{source}: {len(others)} weights missing from the checkpoint, e.g. {others[:3]}")
    if managers:
        warnings.warn(
            f"{source} has no manager weights: {len(managers)} manager parameters start at zero (warm start from a "
            "baseline checkpoint; the model is exactly the baseline until the managers are trained)",
            stacklevel=3,
        )


def context_length(config) -> int:
    for name in ("max_sequence_length", "max_position_embeddings", "tokenizer_model_max_length"):
        value = getattr(config, name, None)
        if value:
            return int(value)
    return 2048


def _quantization_config(load_8bit: bool, load_4bit: bool, dtype: torch.dtype) -> BitsAndBytesConfig:
    if load_8bit and load_4bit:
        raise ValueError("choose one of load_8bit and load_4bit")
    if load_8bit:
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=UNQUANTIZED_MODULES)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_compute_dtype=dtype,
        bnb_4bit_use_double_quant=True,
        bnb_4bit_quant_type="nf4",
        llm_int8_skip_modules=UNQUANTIZED_MODULES,
    )


def _overlay_weights(model: LlavaQwenForCausalLM, path: Path) -> None:
    state = read_weights(path)
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise ValueError(f"{path}: {len(unknown)} keys not in the model, e.g. {unknown[:3]}")
    model.load_state_dict(state, strict=False)


def set_generation_defaults(model: LlavaQwenForCausalLM, tokenizer) -> None:
    """Stop on ``<|im_end|>`` (lmms-eval gives no stop strings for images) and pad with the tokenizer's pad id."""
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    eos = model.generation_config.eos_token_id
    eos = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
    if isinstance(im_end, int) and im_end != getattr(tokenizer, "unk_token_id", None) and im_end not in eos:
        eos.append(im_end)
    model.generation_config.eos_token_id = eos or None
    if model.generation_config.pad_token_id is None and tokenizer.pad_token_id is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
