"""``load_pretrained_model``: LLaVA-NeXT's loader signature, without its pitfalls.

* The model class comes from the checkpoint's config content (a Qwen2 LLM with ``mm_*`` fields), never from
  substrings of the name; ``model_name`` is accepted for compatibility and ignored.
* ``model_type`` ``llava_qwen``, ``llava`` (released OV checkpoints) and ``qwen2`` (what LLaVA-NeXT training
  writes) all load; what counts as a checkpoint is defined once, in ``llava.model.loading``, for training too.
* dtype and device are chosen for the machine: bfloat16 on a GPU that supports it (else float16), float32 on CPU;
  the vision tower is never forced to float16 behind the caller's back.
* ``flash_attention_2`` falls back to ``sdpa`` with a warning when flash-attn is not installed.
* 4/8-bit loading quantizes the LLM only: vision tower, projector, managers and ``lm_head`` stay in full precision.
* The embedding matrix is not shrunk to the tokenizer length (upstream resizes unconditionally).
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import torch
from transformers import AutoTokenizer, BitsAndBytesConfig

from llava.model.config import LlavaQwenConfig
from llava.model.llava_qwen import LlavaQwenForCausalLM
from llava.model.loading import check_missing_keys, overlay_weights, read_llava_config
from llava.model.weights import read_weights
from llava.processing import image_processor_for

ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")
# Module-name prefixes transformers matches from the start of the full name.
UNQUANTIZED_MODULES = ["model.vision_tower", "model.mm_projector", "model.managers", "lm_head"]


def resolve_attn_implementation(requested: str | None) -> str:
    """Validate ``attn_implementation``; FlashAttention-2 without flash-attn (or without CUDA) becomes ``sdpa``."""
    if requested is None:
        return "sdpa"
    if requested not in ATTN_IMPLEMENTATIONS:
        raise ValueError(f"attn_implementation={requested!r} is not one of {ATTN_IMPLEMENTATIONS}")
    if requested == "flash_attention_2" and (
        importlib.util.find_spec("flash_attn") is None or not torch.cuda.is_available()
    ):
        reason = "flash-attn is not installed" if torch.cuda.is_available() else "no CUDA device is available"
        warnings.warn(
            f"attn_implementation='flash_attention_2' requested but {reason}; using 'sdpa' instead", stacklevel=2
        )
        return "sdpa"
    return requested


def resolve_dtype(torch_dtype) -> torch.dtype:
    if torch_dtype is None or torch_dtype == "auto":
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if isinstance(torch_dtype, torch.dtype):
        return torch_dtype
    names = {
        "float16": torch.float16,
        "fp16": torch.float16,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float32": torch.float32,
        "fp32": torch.float32,
    }
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
        overlay_weights(model, read_weights(model_path), model_path)
    tokenizer = AutoTokenizer.from_pretrained(
        model_path if (Path(model_path) / "tokenizer_config.json").exists() else source
    )
    if len(tokenizer) > model.config.vocab_size:
        model.resize_token_embeddings(len(tokenizer))
    set_generation_defaults(model, tokenizer)
    model.eval()
    return tokenizer, model, image_processor_for(model.config), context_length(model.config)


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
