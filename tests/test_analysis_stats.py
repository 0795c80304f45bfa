"""The analysis formulas on hand-made cases whose answers are known, and against straightforward references."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from llava.analysis.stats import (
    Running,
    attention_distance_sums,
    entropy,
    mean_head_kl,
    patch_distances,
    renormalize,
    row_cosine,
)


def _random_rows(heads: int, queries: int, keys: int, *, masked: int = 0, seed: int = 0) -> torch.Tensor:
    """(H, Q, K) softmax rows; the last ``masked`` keys get probability exactly 0 in every head (causal mask)."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(heads, queries, keys, generator=generator) * 2
    if masked:
        logits[..., -masked:] = torch.finfo(torch.float32).min
    return logits.softmax(dim=-1)


def test_uniform_attention_has_the_maximal_entropy_log_of_the_keys():
    for keys in (1, 2, 7, 729):
        probs = torch.full((3, 5, keys), 1.0 / keys)
        assert torch.allclose(entropy(probs), torch.full((3, 5), math.log(keys)), atol=1e-5)
    # uniform over the first 4 of 10 keys (the others masked): log 4, masked keys do not count
    probs = torch.zeros(2, 10)
    probs[:, :4] = 0.25
    assert torch.allclose(entropy(probs), torch.full((2,), math.log(4)), atol=1e-6)


def test_one_hot_attention_has_zero_entropy_and_random_rows_stay_below_the_maximum():
    assert torch.equal(entropy(torch.eye(6)), torch.zeros(6))
    probs = _random_rows(4, 8, 16)
    values = entropy(probs)
    reference = -(probs * probs.log()).sum(-1)
    assert torch.allclose(values, reference, atol=1e-5)
    assert bool((values < math.log(16)).all()) and bool((values > 0).all())


def test_renormalize_makes_block_rows_distributions_and_leaves_empty_rows_empty():
    block = torch.tensor([[0.1, 0.3], [0.0, 0.0], [0.5, 0.0]])
    out = renormalize(block)
    assert torch.allclose(out, torch.tensor([[0.25, 0.75], [0.0, 0.0], [1.0, 0.0]]))


def test_identical_heads_have_zero_kl():
    row = _random_rows(1, 6, 12, masked=3)
    probs = row.expand(5, 6, 12).clone()
    assert float(mean_head_kl(probs).abs().max()) < 1e-6


def test_head_kl_equals_the_pairwise_mean_of_torch_kl_div():
    probs = _random_rows(4, 6, 10, masked=2, seed=3)
    heads, queries, _ = probs.shape
    reference = torch.zeros(queries)
    for h, g in itertools.permutations(range(heads), 2):
        # torch's kl_div(input=log q, target=p) = sum p (log p - log q); masked keys (p = q = 0) contribute 0.
        support = probs[h] > 0
        for q in range(queries):
            keep = support[q]
            reference[q] += F.kl_div(probs[g, q, keep].log(), probs[h, q, keep], reduction="sum")
    reference /= heads * (heads - 1)
    assert torch.allclose(mean_head_kl(probs), reference, atol=1e-5)
    assert bool((reference > 0).all())


def test_head_kl_needs_two_heads():
    with pytest.raises(ValueError, match="at least 2 heads"):
        mean_head_kl(torch.ones(1, 2, 3) / 3)


def test_patch_distances_are_pixel_distances_between_patch_centres():
    d = patch_distances(3, 14)
    assert d.shape == (9, 9)
    assert float(d[0, 0]) == 0.0
    assert float(d[0, 1]) == pytest.approx(14.0)  # right neighbour
    assert float(d[0, 3]) == pytest.approx(14.0)  # patch below
    assert float(d[0, 8]) == pytest.approx(14.0 * math.sqrt(8))  # opposite corner
    assert torch.allclose(d, d.T)


def test_a_patch_attending_only_to_itself_has_attention_distance_zero():
    side, tokens = 4, 16
    probs = torch.eye(tokens).expand(3, 2, tokens, tokens)  # (N crops, H heads, T, T)
    sums = attention_distance_sums(probs.contiguous(), patch_distances(side, 14))
    assert torch.equal(sums, torch.zeros(2))


def test_attention_to_a_neighbour_is_one_patch_away():
    side = 5
    tokens = side * side
    probs = torch.zeros(1, 1, tokens, tokens)
    for q in range(tokens):
        row, col = divmod(q, side)
        target = row * side + (col + 1 if col + 1 < side else col - 1)  # right neighbour, left on the last column
        probs[0, 0, q, target] = 1.0
    sums = attention_distance_sums(probs, patch_distances(side, 14))
    assert float(sums[0]) / tokens == pytest.approx(14.0)


def test_uniform_and_random_attention_distance_match_a_loop_over_patch_coordinates():
    side, patch = 4, 14
    tokens = side * side
    probs = torch.rand(2, 3, tokens, tokens).softmax(dim=-1)  # (N, H, T, T)
    probs[1, 2] = 1.0 / tokens  # one crop-head uniform
    reference = torch.zeros(3)
    for n, h, q, k in itertools.product(range(2), range(3), range(tokens), range(tokens)):
        (qr, qc), (kr, kc) = divmod(q, side), divmod(k, side)
        reference[h] += probs[n, h, q, k] * patch * math.hypot(qr - kr, qc - kc)
    assert torch.allclose(attention_distance_sums(probs, patch_distances(side, patch)), reference, rtol=1e-5)


def test_identical_consecutive_representations_have_similarity_one():
    a = torch.randn(7, 16)
    assert torch.allclose(row_cosine(a, a.clone()), torch.ones(7), atol=1e-6)
    assert torch.allclose(row_cosine(a, -a), -torch.ones(7), atol=1e-6)
    assert torch.allclose(row_cosine(a, 3 * a), torch.ones(7), atol=1e-6)  # scale-free


def test_running_mean_and_std_equal_the_whole_sample_statistics():
    values = torch.randn(1000, dtype=torch.float64) * 3 + 1
    running = Running()
    for chunk in values.split(97):
        running.add("k", chunk)
    assert running.count("k") == 1000
    assert running.mean("k") == pytest.approx(float(values.mean()), rel=1e-12)
    assert running.std("k") == pytest.approx(float(values.std(unbiased=False)), rel=1e-9)
    running.add_sum("s", 10.0, 4)
    running.add_sum("s", 2.0, 1)
    assert running.mean("s") == pytest.approx(2.4)
    assert math.isnan(running.mean("missing")) and running.keys() == ["k", "s"]
