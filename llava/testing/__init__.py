"""Offline building blocks shared by tests, benchmarks and the demo: tiny configs and the real Qwen2 tokenizer."""

from llava.testing.tiny import tiny_config, tiny_model
from llava.testing.tokenizer import build_qwen2_tokenizer

__all__ = ["build_qwen2_tokenizer", "tiny_config", "tiny_model"]
