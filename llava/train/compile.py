"""``--torch_compile``: compile the repeated blocks (Qwen2 decoder layers, SigLIP encoder layers), in place.

transformers hands ``--torch_compile`` to accelerate, which compiles the whole model. Dynamo then traces
``LlavaQwenForCausalLM.forward``, where the image packing reads ``image_newline`` outside any submodule's forward:
under ZeRO-3 that parameter is still a 0-element partition there, and tracing fails at the first step (eager
ZeRO-3 never sees it that way). LLaVA-NeXT's ``finetune_si.sh`` / ``finetune_ov.sh`` pass the flag, so it must work.

The blocks hold nearly all of the compute; what runs between them (image packing, splicing, manager injection)
is data-dependent glue that would only cause graph breaks and recompiles. ``module.compile()`` keeps module names,
parameters and hooks as they are, so DeepSpeed's ZeRO-3 gathering, DDP, activation checkpointing and checkpoint
names are unaffected. All layers share one compiled graph (Dynamo inlines ``nn.Module`` calls, so parameters are
graph inputs, not guards on each layer).
"""

from __future__ import annotations

import logging

from torch import nn

logger = logging.getLogger(__name__)


def repeated_blocks(model) -> list[nn.Module]:
    """The decoder layers and the vision encoder layers of a ``LlavaQwenForCausalLM``."""
    inner = model.get_model()
    return [*inner.layers, *inner.vision_tower.vision_tower.vision_model.encoder.layers]


def compile_blocks(model, *, backend: str, mode: str | None = None) -> int:
    """Compile every repeated block in place; returns how many were compiled."""
    options = {} if mode is None else {"mode": mode}
    blocks = repeated_blocks(model)
    for block in blocks:
        block.compile(backend=backend, **options)
    logger.info(
        "torch.compile (backend %s, mode %s): %d blocks compiled in place (decoder and vision layers); the "
        "glue between them runs eagerly",
        backend,
        mode or "default",
        len(blocks),
    )
    return len(blocks)
