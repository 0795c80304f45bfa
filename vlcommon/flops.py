"""The FLOP counter of both systems' budget tools: ``torch.utils.flop_counter.FlopCounterMode`` with the fused CPU
attention kernels counted too.

It counts matrix products, convolutions and attention, two FLOPs per multiply-add; elementwise work (norms,
activations, weighted sums) is not counted. The budget tools report multiply-adds (counted FLOPs / 2), the unit of
the papers' fvcore tables.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count


def _cpu_sdpa(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_sdpa_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# torch's registry covers the CUDA attention kernels and the math path, but not the fused CPU kernel that SDPA picks
# on real CPU tensors; without these, attention would silently count as zero in a CPU forward.
_CPU_ATTENTION = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward,
}


def flop_counter() -> FlopCounterMode:
    """``FlopCounterMode`` that also counts CPU attention; silent (no table printed on exit)."""
    return FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION)
