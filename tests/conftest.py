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


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """Tiny LLM and SigLIP checkpoints and LLaVA data (``train_helpers.make_assets``), once per test module."""
    from train_helpers import make_assets

    return make_assets(tmp_path_factory.mktemp("assets"))


@pytest.fixture(scope="module")
def stage1(assets, tmp_path_factory):
    """A finished two-step stage 1 (projector + managers) through the real train entry, once per test module."""
    from train_helpers import stage1_args

    from llava.train.train import train

    out = tmp_path_factory.mktemp("stage1")
    train(stage1_args(assets, out, steps=2))
    return out
