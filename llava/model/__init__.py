"""The LLaVA-OneVision model (Qwen2 + SigLIP); importing it registers the ``llava_qwen`` auto classes."""

from transformers import AutoConfig, AutoModelForCausalLM

from llava.model.config import LlavaQwenConfig, MultimodalSpec
from llava.model.llava_qwen import LlavaQwenForCausalLM, LlavaQwenModel

AutoConfig.register(LlavaQwenConfig.model_type, LlavaQwenConfig, exist_ok=True)
AutoModelForCausalLM.register(LlavaQwenConfig, LlavaQwenForCausalLM, exist_ok=True)

__all__ = ["LlavaQwenConfig", "LlavaQwenForCausalLM", "LlavaQwenModel", "MultimodalSpec"]
