"""Length/modality-grouped sampler."""

import random

import pytest
import torch

from llava.data.sampler import LengthGroupedSampler, grouped_indices


def _lengths(n_image=37, n_text=21, seed=0):
    rng = random.Random(seed)
    return [rng.randint(5, 500) for _ in range(n_image)] + [-rng.randint(5, 500) for _ in range(n_text)]


def _draw(lengths, seed=0, **kw):
    return grouped_indices(lengths, generator=torch.Generator().manual_seed(seed), **kw)


@pytest.mark.parametrize("group_by_modality", [True, False])
def test_every_index_once(group_by_modality):
    lengths = _lengths()
    order = _draw(lengths, batch_size=2, world_size=3, group_by_modality=group_by_modality)
    assert sorted(order) == list(range(len(lengths)))


def test_full_megabatches_hold_one_modality():
    lengths = _lengths()
    size = 2 * 3
    order = _draw(lengths, batch_size=2, world_size=3, group_by_modality=True)
    full = len(order) - (37 % size + 21 % size)
    for start in range(0, full, size):
        signs = {lengths[i] > 0 for i in order[start : start + size]}
        assert len(signs) == 1, f"megabatch at {start} mixes modalities"
    # The leftovers of both modalities come last.
    assert {lengths[i] > 0 for i in order[full:]} == {True, False}


def test_chunks_are_length_balanced_and_sorted():
    lengths = [100, 1, 90, 2, 80, 3, 70, 4]
    order = _draw(lengths, batch_size=2, world_size=4, group_by_modality=False)
    chunks = [order[i : i + 2] for i in range(0, 8, 2)]  # one per rank
    totals = [sum(lengths[i] for i in chunk) for chunk in chunks]
    assert max(totals) - min(totals) <= 30, totals  # naive contiguous chunks would give 190 vs 7
    assert lengths[chunks[0][0]] == 100, "the longest sample comes first, so memory problems show at once"


def test_deterministic_per_seed_and_epoch():
    lengths = _lengths()
    sampler = LengthGroupedSampler(lengths, batch_size=2, world_size=2, seed=7)
    first = list(sampler)
    assert first == list(LengthGroupedSampler(lengths, batch_size=2, world_size=2, seed=7))
    sampler.set_epoch(1)
    assert list(sampler) != first and sorted(sampler) == sorted(first)


def test_zero_length_is_rejected():
    with pytest.raises(ValueError, match="non-zero"):
        _draw([3, 0], batch_size=1, world_size=1, group_by_modality=True)
