"""The unimodal experts: RoBERTa for text, CLIP ViT for images; each returns the stack of the layers a fusion uses."""

from managertower.encoders.text import TextEncoder
from managertower.encoders.vision import VisionEncoder

__all__ = ["TextEncoder", "VisionEncoder"]
