"""The one image loader of both stacks (``vlcommon.images``): a 16-bit grey PNG reads as its 8-bit copy through
ManagerTower's transforms, its table builder and dataset, and LLaVA's processing (``convert("RGB")`` alone clips it to
white), and there is no second copy of the conversion."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import vlcommon.images
from llava import mm_utils
from llava.processing import image_processor
from llava.processing.image_processor import SigLipImageProcessor
from managertower.data.arrow import Task
from managertower.data.build import main as build_tables
from managertower.data.datasets import DataConfig, TwoTowerDataset
from managertower.data.transforms import CLIP_MEAN, CLIP_STD, TransformKind, build_transform
from managertower.testing import tiny_tokenizer

# One 8-bit level after CLIP's normalisation (its smallest std): "the same pixels to within rounding".
ONE_LEVEL = 1 / 255 / min(CLIP_STD) + 1e-6


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def ramps() -> tuple[bytes, bytes]:
    """PNG bytes of a dark-to-bright ramp over the 16-bit range, and of its 8-bit copy (``v / 257``, rounded)."""
    levels = np.tile(np.linspace(0, 65535, 96), (40, 1)).round()
    deep = Image.frombytes("I;16", (96, 40), levels.astype("<u2").tobytes())
    eight = Image.fromarray(np.rint(levels / 257).astype(np.uint8), mode="L")
    return _png(deep), _png(eight)


def _brightness(pixels: torch.Tensor) -> float:
    mean, std = torch.tensor(CLIP_MEAN)[:, None, None], torch.tensor(CLIP_STD)[:, None, None]
    return float((pixels * std + mean).mean())


def test_managertower_transforms_read_a_16bit_png_as_its_8bit_copy(ramps):
    deep, eight = (Image.open(io.BytesIO(data)) for data in ramps)
    assert deep.mode == "I;16" and eight.mode == "L"
    for kind in TransformKind:
        got = build_transform(kind, 32, generator=np.random.default_rng(0))(deep)
        expected = build_transform(kind, 32, generator=np.random.default_rng(0))(eight)
        torch.testing.assert_close(got, expected, rtol=0, atol=ONE_LEVEL, msg=lambda m, k=kind: f"{k}: {m}")
    assert 0.4 < _brightness(build_transform(TransformKind.ALBEF, 32)(deep)) < 0.6  # not washed out to white


def test_16bit_png_through_managertower_table_builder_and_dataset_and_llava(tmp_path, ramps):
    for name, data in zip(("deep.png", "eight.png"), ramps, strict=True):
        (tmp_path / name).write_bytes(data)
    entries = [
        {"filename": name, "split": "test", "imgid": number, "sentences": [{"raw": "a grey ramp"}]}
        for number, name in enumerate(("deep.png", "eight.png"))
    ]
    (tmp_path / "dataset.json").write_text(json.dumps({"images": entries}))
    arrow = tmp_path / "arrow"
    build_tables(["karpathy", "--dataset", "f30k", "--annotations", str(tmp_path / "dataset.json"),
                  "--images", str(tmp_path), "--out", str(arrow)])  # fmt: skip
    config = DataConfig(image_size=32, transform="albef")
    data = TwoTowerDataset(arrow, Task.F30K, "test", tokenizer=tiny_tokenizer(), config=config)
    assert len(data) == 2 and data.issues == []
    deep, eight = data[0]["pixel_values"], data[1]["pixel_values"]
    torch.testing.assert_close(deep, eight, rtol=0, atol=ONE_LEVEL)
    assert 0.4 < _brightness(deep) < 0.6

    # LLaVA reads the same file through the same conversion.
    processor = SigLipImageProcessor(size=(32, 32))
    for aspect in ("pad", "square"):
        model_config = SimpleNamespace(image_aspect_ratio=aspect)
        got, expected = (
            mm_utils.process_images([Image.open(tmp_path / name)], processor, model_config)
            for name in ("deep.png", "eight.png")
        )
        torch.testing.assert_close(got, expected, rtol=0, atol=2 / 255 + 1e-6)  # SigLIP's std is 0.5
    # One conversion, not two: LLaVA's names are vlcommon's, and mm_utils keeps no plain convert("RGB") of its own.
    assert image_processor.to_8bit is vlcommon.images.to_8bit
    assert image_processor.convert_to_rgb is vlcommon.images.convert_to_rgb
    assert not hasattr(mm_utils, "_rgb")


def test_a_truncated_file_is_bad_even_after_lmms_eval_is_imported(tmp_path):
    """lmms-eval sets PIL's process-wide ``LOAD_TRUNCATED_IMAGES`` on import; a truncated image must still be a
    counted ``corrupt_image``, not a picture with black rows, and the flag is left as lmms-eval set it."""
    import lmms_eval.api.task  # noqa: F401  (sets the flag, as an evaluation in the same process would)
    from PIL import ImageFile

    from vlcommon.images import read_image
    from vlcommon.ledger import BadSample

    assert ImageFile.LOAD_TRUNCATED_IMAGES is True
    Image.new("RGB", (64, 48), (10, 200, 30)).save(tmp_path / "cut.png")
    data = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadSample) as bad:
        read_image(tmp_path / "cut.png")
    assert bad.value.kind == "corrupt_image" and ImageFile.LOAD_TRUNCATED_IMAGES is True
