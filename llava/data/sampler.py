"""Length- and modality-grouped sampling (LLaVA-NeXT's ``group_by_modality_length``).

Indices are drawn in *megabatches*: one optimizer step across all ranks (``world_size x batch_size`` samples, where
LLaVA-NeXT passes ``world_size x gradient_accumulation_steps`` as the world). Inside a megabatch, samples are sorted
by length and dealt into ``world_size`` chunks of ``batch_size`` with balanced total length, so ranks pad little
and finish together. With ``group_by_modality``, image and text-only samples form separate megabatches (a step is
all-image or all-text), the megabatch order is shuffled, and the two leftover partial megabatches go last.

The order is a function of ``seed`` and the epoch only, identical on every rank; accelerate then hands the
``batch_size`` chunks to the ranks in turn.
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


def _balanced_chunks(indices: list[int], lengths: list[int], parts: int) -> list[list[int]]:
    """Deal ``indices`` (longest first) into ``parts`` equal-size chunks, each to the lightest chunk with room."""
    per_chunk = len(indices) // parts
    if per_chunk == 0 or len(indices) % parts:
        return [indices[i::parts] for i in range(parts)]
    chunks: list[list[int]] = [[] for _ in range(parts)]
    totals = [0] * parts
    for index in indices:
        open_chunks = [c for c in range(parts) if len(chunks[c]) < per_chunk]
        target = min(open_chunks, key=lambda c: totals[c])
        chunks[target].append(index)
        totals[target] += lengths[index]
    return chunks


def _megabatches(indices: list[int], lengths: list[int], size: int, world: int) -> list[list[int]]:
    batches = []
    for start in range(0, len(indices), size):
        megabatch = sorted(indices[start : start + size], key=lambda i: lengths[i], reverse=True)
        batches.append([i for chunk in _balanced_chunks(megabatch, lengths, world) for i in chunk])
    return batches


def grouped_indices(
    lengths: list[int], *, batch_size: int, world_size: int, generator: torch.Generator, group_by_modality: bool
) -> list[int]:
    """One epoch of indices. ``lengths`` are signed when grouping by modality (negative = text-only)."""
    if any(length == 0 for length in lengths):
        raise ValueError("sample lengths must be non-zero (the sign marks the modality)")
    size = batch_size * world_size
    absolute = [abs(length) for length in lengths]
    signs = {length > 0 for length in lengths}
    if not group_by_modality or len(signs) == 1:
        order = torch.randperm(len(lengths), generator=generator).tolist()
        return [i for megabatch in _megabatches(order, absolute, size, world_size) for i in megabatch]
    groups = []
    for positive in (True, False):
        members = [i for i, length in enumerate(lengths) if (length > 0) == positive]
        shuffled = [members[j] for j in torch.randperm(len(members), generator=generator).tolist()]
        groups.append(_megabatches(shuffled, absolute, size, world_size))
    full = [mb for group in groups for mb in group if len(mb) == size]
    partial = [i for group in groups for mb in group if len(mb) < size for i in mb]
    full = [full[j] for j in torch.randperm(len(full), generator=generator).tolist()]
    if partial:
        full.extend(_megabatches(sorted(partial, key=lambda i: absolute[i], reverse=True), absolute, size, world_size))
    return [i for megabatch in full for i in megabatch]


class LengthGroupedSampler(Sampler[int]):
    def __init__(
        self, lengths: list[int], *, batch_size: int, world_size: int, seed: int, group_by_modality: bool = True
    ) -> None:
        if batch_size < 1 or world_size < 1:
            raise ValueError(f"batch_size={batch_size} and world_size={world_size} must be positive")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.world_size = world_size
        self.seed = seed
        self.group_by_modality = group_by_modality
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(
            grouped_indices(
                self.lengths,
                batch_size=self.batch_size,
                world_size=self.world_size,
                generator=generator,
                group_by_modality=self.group_by_modality,
            )
        )
