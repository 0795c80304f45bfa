"""Image preprocessing (LLaVA-NeXT semantics)."""

from llava.processing.image_processor import SigLipImageProcessor

__all__ = ["SigLipImageProcessor"]
