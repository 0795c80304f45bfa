"""Shared fixtures: the offline Qwen2 tokenizer, deterministic images, tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("LLAVA_OVM_CACHE", str(Path(__file__).resolve().parents[1] / ".cache"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_collection_modifyitems(items):
    # Modules marked `early` (minutes of module setup) go first: under xdist's loadscope the last module handed out
    # would otherwise set the suite's wall time. The sort is stable, so the order within each module is kept.
    items.sort(key=lambda item: item.get_closest_marker("early") is None)


@pytest.fixture(scope="session")
def qwen_tokenizer():
    from llava.testing import build_qwen2_tokenizer

    return build_qwen2_tokenizer()


def random_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """Deterministic noise image (content varies per pixel, so every crop matters)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture
def make_image():
    return random_image
