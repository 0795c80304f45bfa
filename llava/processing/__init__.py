"""Image preprocessing (LLaVA-NeXT semantics)."""

from llava.processing.image_processor import SigLipImageProcessor, image_processor_for

__all__ = ["SigLipImageProcessor", "image_processor_for"]
