"""The statistics behind the paper's analysis figures, as pure tensor functions, plus a streamed accumulator.

* :func:`entropy`: Shannon entropy (nats) of attention rows (Figs. 19, 32);
* :func:`mean_head_kl`: KL divergence between the attention rows of every ordered pair of heads, averaged over the
  pairs (Figs. 20, 33);
* :func:`attention_distance_sums`: attention-weighted 2-D distance between a query patch and the patches it
  attends to (Fig. 27, ViT's "mean attention distance");
* :func:`row_cosine`: cosine similarity between the same token's representation in two layers (Fig. 18);
* :class:`Running`: sums, squared sums and counts per key, so that a run over many samples keeps a handful of
  numbers per layer instead of any attention map.

Shapes: H heads, Q queries, K keys, N crops, T patches per crop.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable

import torch

# Attention rows below this probability count as this probability inside a logarithm. Probabilities that underflow
# to exactly 0 in one head (fp32 softmax of logits ~100 apart) would otherwise make a pairwise KL infinite.
LOG_FLOOR = 1e-10


def renormalize(block: torch.Tensor) -> torch.Tensor:
    """Rows of an attention sub-block (e.g. text queries x visual keys) rescaled to sum to 1.

    A row with no mass on the block stays all-zero (callers exclude such rows)."""
    mass = block.sum(dim=-1, keepdim=True)
    return block / mass.clamp_min(torch.finfo(block.dtype).tiny)


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """(..., K) distributions -> (...) entropies in nats; ``0 log 0 = 0``, so masked keys do not count."""
    return -torch.xlogy(probs, probs).sum(dim=-1)


def mean_head_kl(probs: torch.Tensor) -> torch.Tensor:
    """(H, Q, K) -> (Q,): for each query, the mean of ``KL(p_h || p_g)`` over the H (H - 1) ordered head pairs.

    Uses ``sum_{h,g} KL(p_h||p_g) = H sum_h sum_k p_h,k (log p_h,k - m_k)`` with ``m_k`` the mean log-probability
    over heads: O(H Q K) instead of the O(H^2 Q K) pairwise loop, and identical heads give exactly 0 terms.
    """
    heads = probs.shape[0]
    if heads < 2:
        raise ValueError(f"head divergence needs at least 2 heads, got {heads}")
    logs = probs.clamp_min(LOG_FLOOR).log()  # (H, Q, K)
    centred = logs - logs.mean(dim=0, keepdim=True)  # (H, Q, K)
    return (probs * centred).sum(dim=(0, 2)) / (heads - 1)


def patch_distances(tokens_per_side: int, patch_size: int, *, device=None) -> torch.Tensor:
    """(T, T) Euclidean distance in pixels between the centres of the patches of a square crop (row-major)."""
    coords = torch.arange(tokens_per_side, device=device, dtype=torch.float32)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    points = torch.stack([rows.reshape(-1), cols.reshape(-1)], dim=1)  # (T, 2)
    return torch.cdist(points, points) * patch_size


def attention_distance_sums(probs: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
    """(N, H, T, T) attention of every crop and (T, T) distances -> (H,) sums over crops and queries of
    ``sum_k a_qk d_qk``; divide by ``N * T`` for the mean distance per head.

    One matrix-vector product over the flattened maps: no (N, H, T, T) product is materialised."""
    crops, heads, queries, keys = probs.shape
    assert distances.shape == (queries, keys), (distances.shape, probs.shape)
    flat = probs.reshape(crops, heads, queries * keys)  # (N, H, T*T), a view of contiguous maps
    return (flat @ distances.reshape(-1).to(probs.dtype)).sum(dim=0)


def row_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(R, D) and (R, D) -> (R,) cosine similarity of corresponding rows, computed in fp32."""
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1, eps=1e-12)


class Running:
    """Streamed mean and standard deviation per key: ``add(key, values)`` with any number of values at a time."""

    def __init__(self) -> None:
        self._sum: dict[Hashable, float] = defaultdict(float)
        self._squares: dict[Hashable, float] = defaultdict(float)
        self._count: dict[Hashable, int] = defaultdict(int)

    def add(self, key: Hashable, values: torch.Tensor) -> None:
        values = values.detach().double().reshape(-1)
        self._sum[key] += float(values.sum())
        self._squares[key] += float((values * values).sum())
        self._count[key] += values.numel()

    def add_sum(self, key: Hashable, total: float, count: int, squares: float = math.nan) -> None:
        """Add a pre-reduced sum of ``count`` values (``squares`` unknown -> no standard deviation)."""
        self._sum[key] += float(total)
        self._squares[key] += float(squares)
        self._count[key] += int(count)

    def keys(self) -> list:
        return sorted(self._count)

    def mean(self, key: Hashable) -> float:
        count = self.count(key)
        return self._sum[key] / count if count else math.nan

    def std(self, key: Hashable) -> float:
        count = self.count(key)
        if not count:
            return math.nan
        variance = self._squares[key] / count - self.mean(key) ** 2
        return math.sqrt(max(variance, 0.0))

    def count(self, key: Hashable) -> int:
        return self._count.get(key, 0)
