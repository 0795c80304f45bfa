"""Tiny LLaVA-OneVision configurations for tests, benchmarks and the CPU demo.

They keep the real geometry that matters (384-px crops, patch 14, 27 x 27 tokens per crop, the 6 x 6 pinpoints,
tied embeddings, Qwen2's vocabulary and special-token ids) and shrink only widths and depths, so the image
pipeline runs exactly as at full size. Pass ``image_size`` (a multiple of ``patch_size``) for cheaper runs.
"""

from __future__ import annotations

from llava.model.config import OV_GRID_PINPOINTS, LlavaQwenConfig
from llava.model.llava_qwen import LlavaQwenForCausalLM

QWEN2_VOCAB_SIZE = 151936
QWEN2_EOS = 151645  # <|im_end|>
QWEN2_PAD = 151643  # <|endoftext|>


def tiny_config(
    *,
    vocab_size: int = QWEN2_VOCAB_SIZE,
    hidden_size: int = 64,
    num_hidden_layers: int = 4,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    intermediate_size: int = 128,
    vision_hidden_size: int = 32,
    vision_layers: int = 4,
    vision_heads: int = 2,
    vision_intermediate_size: int = 64,
    image_size: int = 384,
    patch_size: int = 14,
    image_aspect_ratio: str = "anyres_max_9",
    image_grid_pinpoints: str | list = OV_GRID_PINPOINTS,
    mm_patch_merge_type: str = "spatial_unpad",
    tokenizer_model_max_length: int | None = None,
    tokenizer_padding_side: str = "right",
    attn_implementation: str = "sdpa",
    **overrides,
) -> LlavaQwenConfig:
    """A small but structurally complete config; ``overrides`` go to ``LlavaQwenConfig`` unchanged."""
    eos = QWEN2_EOS if vocab_size > QWEN2_EOS else vocab_size - 1
    pad = QWEN2_PAD if vocab_size > QWEN2_PAD else vocab_size - 2
    fields = {
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": num_attention_heads,
        "num_key_value_heads": num_key_value_heads,
        "intermediate_size": intermediate_size,
        "max_position_embeddings": 32768,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
        "tie_word_embeddings": True,
        "eos_token_id": eos,
        "pad_token_id": pad,
        "bos_token_id": pad,
        "vision_config": {
            "hidden_size": vision_hidden_size,
            "intermediate_size": vision_intermediate_size,
            "num_hidden_layers": vision_layers,
            "num_attention_heads": vision_heads,
            "image_size": image_size,
            "patch_size": patch_size,
        },
        "mm_projector_type": "mlp2x_gelu",
        "mm_patch_merge_type": mm_patch_merge_type,
        "image_aspect_ratio": image_aspect_ratio,
        "image_grid_pinpoints": image_grid_pinpoints,
        "tokenizer_model_max_length": tokenizer_model_max_length,
        "tokenizer_padding_side": tokenizer_padding_side,
        "attn_implementation": attn_implementation,
    }
    fields.update(overrides)
    return LlavaQwenConfig(**fields)


def tiny_model(seed: int = 0, **config_overrides) -> LlavaQwenForCausalLM:
    """A randomly initialised tiny model in eval mode (deterministic for a given ``seed``)."""
    import torch

    torch.manual_seed(seed)
    model = LlavaQwenForCausalLM(tiny_config(**config_overrides))
    return model.eval()


# Benchmark sizes shared by bench/ and the budget tool: "tiny" is the test model with a small vocabulary, "medium"
# is wide and deep enough that the LLM and tower, not Python overhead, dominate a step on a CPU.
BENCH_SIZES = {
    "tiny": {
        "hidden_size": 64,
        "num_hidden_layers": 4,
        "intermediate_size": 128,
        "vision_hidden_size": 32,
        "vision_layers": 4,
        "vision_intermediate_size": 64,
        "vocab_size": 4096,
    },
    "medium": {
        "hidden_size": 256,
        "num_hidden_layers": 12,
        "num_attention_heads": 8,
        "intermediate_size": 1024,
        "vision_hidden_size": 192,
        "vision_layers": 8,
        "vision_heads": 4,
        "vision_intermediate_size": 768,
        "vocab_size": 32000,
    },
}
