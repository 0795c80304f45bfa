"""The fast anyres crop batch (``llava.processing.crop_batch``) gives LLaVA-NeXT's pixels, bit for bit.

The reference is LLaVA-NeXT's own sequence of PIL calls, written out here: resize-and-pad the canvas, cut it into
PIL crops, squash-resize the base image, normalise each crop and stack (transformers' PIL backend is compared in
``test_preprocessing_vs_transformers.py``). The fast path changes threads, views and memory, so each is varied.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from llava.mm_utils import process_images
from llava.model.anyres import divide_to_patches, parse_grid_pinpoints, resize_and_pad_image, select_best_resolution
from llava.processing import SigLipImageProcessor
from llava.processing.crop_batch import HUGE_PAGE_MIN_BYTES, empty_batch

PINPOINTS = "(1x1),...,(6x6)"
ANYRES = SimpleNamespace(image_aspect_ratio="anyres_max_9", image_grid_pinpoints=PINPOINTS)


def llava_next_crops(image: Image.Image, processor: SigLipImageProcessor) -> torch.Tensor:
    best = select_best_resolution(image.size, parse_grid_pinpoints(PINPOINTS, 384))
    crops = divide_to_patches(resize_and_pad_image(image, best), 384)
    base = image.resize((384, 384), Image.Resampling.BICUBIC)
    return torch.stack([processor.to_tensor(piece) for piece in [base, *crops]])


@pytest.fixture
def threads():
    """Restore torch's intra-op thread count after a test changes it."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
@pytest.mark.parametrize("size", [(200, 150), (1025, 577), (390, 1700)])
def test_crop_batch_equals_llava_next_pil_crops(threads, mode, size):
    processor = SigLipImageProcessor()
    pixels = np.random.default_rng(sum(size)).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    expected = llava_next_crops(image, processor)
    for count in (1, 2):  # one thread: no base-resize worker; two: the base resize runs beside the canvas
        threads(count)
        got = process_images([image], processor, ANYRES)[0]
        assert got.dtype == torch.float32 and got.shape == expected.shape
        assert torch.equal(got, expected), f"mode {mode}, size {size}, {count} thread(s)"


def test_lazily_opened_file_decodes_once_before_threads_read_it(threads, tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (700, 900, 3), dtype=np.uint8)).save(path, quality=90)
    processor = SigLipImageProcessor()
    with Image.open(path) as loaded:
        expected = llava_next_crops(loaded.convert("RGB"), processor)
    threads(2)
    for _ in range(3):
        with Image.open(path) as lazy:  # not yet decoded: both resizes would otherwise decode it at once
            assert torch.equal(process_images([lazy], processor, ANYRES)[0], expected)


def test_empty_batch_uses_huge_page_mapping_only_when_large():
    small = empty_batch((1, 3, 16, 16))
    assert small.shape == (1, 3, 16, 16) and small.dtype == torch.float32
    shape = (3, 3, 384, 384)
    assert 4 * np.prod(shape) >= HUGE_PAGE_MIN_BYTES
    large = empty_batch(shape)
    assert large.shape == shape and large.dtype == torch.float32 and large.is_contiguous()
    large.fill_(2.5)
    assert float(large.sum()) == 2.5 * np.prod(shape)
    view = large[1:2]
    del large  # the view keeps the mapping alive
    assert float(view.sum()) == 2.5 * np.prod(shape) / 3


class _Images(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> torch.Tensor:
        pixels = np.random.default_rng(index).integers(0, 256, (800 + 400 * index, 1100, 3), dtype=np.uint8)
        return process_images([Image.fromarray(pixels)], SigLipImageProcessor(), ANYRES)[0]


def test_huge_page_batches_cross_dataloader_workers():
    """A worker's batch goes through shared memory to the main process: an mmap-backed tensor must survive that."""
    dataset = _Images()
    expected = [dataset[index] for index in range(len(dataset))]
    assert all(4 * item.numel() >= HUGE_PAGE_MIN_BYTES for item in expected)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=1, multiprocessing_context="fork")
    got = list(loader)
    assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))
