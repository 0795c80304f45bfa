"""LLaVA-OV-Manager: LLaVA-OneVision with Managers, LLaVA-NeXT-compatible API.

Importing the package registers ``llava_qwen`` with transformers' ``AutoConfig`` / ``AutoModelForCausalLM``.
"""

from llava.model import LlavaQwenConfig, LlavaQwenForCausalLM

__version__ = "0.1.0"
__all__ = ["LlavaQwenConfig", "LlavaQwenForCausalLM", "__version__"]
