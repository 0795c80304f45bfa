"""Attention of packed rows, segment by segment: several samples in one row never attend to each other.

A packed forward carries the row's sample boundaries as FlashAttention's varlen keywords (``cu_seq_lens_q``,
``cu_seq_lens_k``, ``max_length_q``, ``max_length_k``), which transformers' decoder layers hand to the attention
function unchanged. FlashAttention-2 reads them natively (its varlen kernel). For SDPA and eager, the functions
registered here under :data:`SEGMENT_ATTENTION` run the stock function once per segment with a causal pattern of
that segment's size: the compute is the sum over the samples, never the L x L of a block-diagonal mask. Calls
without those keywords (evaluation, generation, padded batches) go to the stock function as they are.

Shapes: one row (B = 1), H query heads, L tokens, d head width; ``cu_seq_lens`` (S + 1,) segment starts.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask, sdpa_mask
from transformers.models.qwen2.modeling_qwen2 import eager_attention_forward

# attn_implementation of a packed run -> (the stock function it wraps, that function's mask builder).
SEGMENT_ATTENTION = {
    "segment_sdpa": (sdpa_attention_forward, sdpa_mask),
    "segment_eager": (eager_attention_forward, eager_mask),
}
PACKED_KEYS = ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k")
# The FlashAttention implementation the train entry allows: its varlen kernel reads PACKED_KEYS natively.
FLASH_ATTENTION = frozenset({"flash_attention_2"})


def attends_by_segment(attn_implementation: str) -> bool:
    """Whether ``attn_implementation`` keeps the samples of a packed row apart."""
    return attn_implementation in FLASH_ATTENTION or attn_implementation in SEGMENT_ATTENTION


def segment_implementation(attn_implementation: str) -> str:
    """The implementation a packed run uses for ``attn_implementation``: FlashAttention keeps its own varlen path;
    SDPA and eager become their segment-wise versions."""
    if attn_implementation in FLASH_ATTENTION:
        return attn_implementation
    name = f"segment_{attn_implementation}"
    if name not in SEGMENT_ATTENTION:
        raise ValueError(f"--packing supports flash_attention_2, sdpa and eager attention, not {attn_implementation!r}")
    return name


def packed_kwargs(segment_ids: torch.Tensor) -> dict:
    """(1, L) segment ids (1, 2, ... per sample; 0 for the row's padding tail, its own segment) -> the varlen
    keywords of the row's segments."""
    if segment_ids.shape[0] != 1:
        raise ValueError(f"a packed batch is one row; got {segment_ids.shape[0]} rows")
    ids = segment_ids[0]
    starts = torch.nonzero(torch.diff(ids, prepend=ids[:1] - 1) != 0).squeeze(1)
    cu = torch.cat([starts, ids.new_tensor([ids.shape[0]])]).to(torch.int32)
    longest = int(cu.diff().max())
    return {"cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": longest, "max_length_k": longest}


def positions_in_segments(segment_ids: torch.Tensor) -> torch.Tensor:
    """(B, L) segment ids -> (B, L) position ids that restart at 0 at every segment's first token."""
    index = torch.arange(segment_ids.shape[1], device=segment_ids.device).expand_as(segment_ids)
    starts = torch.diff(segment_ids, dim=1, prepend=segment_ids[:, :1] - 1) != 0  # (B, L): a segment begins
    first = torch.cummax(torch.where(starts, index, torch.zeros_like(index)), dim=1).values
    return index - first


def _causal(length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(1, 1, l, l) additive causal mask for the eager function."""
    blocked = torch.ones(length, length, dtype=torch.bool, device=device).triu(1)
    return torch.zeros(length, length, dtype=dtype, device=device).masked_fill(blocked, torch.finfo(dtype).min)[
        None, None
    ]


def _segment_forward(stock, module, query, key, value, attention_mask, **kwargs):
    cu = kwargs.pop("cu_seq_lens_q", None)
    for name in PACKED_KEYS[1:]:
        kwargs.pop(name, None)
    if cu is None:
        return stock(module, query, key, value, attention_mask, **kwargs)
    if query.shape[0] != 1 or query.shape[2] != key.shape[2]:
        raise ValueError("segment attention runs on one packed row without a cache (training prefill)")
    outputs = []
    for start, end in zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True):
        # (1, H, l, d) slices: each sample attends causally to itself only.
        q, k, v = query[:, :, start:end], key[:, :, start:end], value[:, :, start:end]
        if stock is sdpa_attention_forward:
            out, _ = stock(module, q, k, v, None, is_causal=True, **kwargs)
        else:
            out, _ = stock(module, q, k, v, _causal(end - start, query.dtype, query.device), **kwargs)
        outputs.append(out)  # (1, l, H, d)
    return torch.cat(outputs, dim=1), None


def _register() -> None:
    for name, (stock, mask) in SEGMENT_ATTENTION.items():

        def forward(module, query, key, value, attention_mask, _stock=stock, **kwargs):
            return _segment_forward(_stock, module, query, key, value, attention_mask, **kwargs)

        AttentionInterface.register(name, forward)
        ALL_MASK_ATTENTION_FUNCTIONS.register(name, mask)


_register()
