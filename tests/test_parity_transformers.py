"""Our model (managers off) equals transformers' LlavaOnevisionForConditionalGeneration on the same weights.

Weights go through our converter (``llava.model.convert``), so the converter is checked at the same time. The
tiny models keep the real 384-px geometry, so anyres grids, unpadding and the anyres_max interpolation run at
their real sizes.
"""

import pytest
import torch

from llava.mm_utils import process_images
from llava.model.anyres import anyres_token_count
from llava.model.config import MultimodalSpec
from llava.model.convert import to_hf_model
from llava.processing import SigLipImageProcessor
from llava.testing import tiny_config, tiny_model

IMAGE_ID, VIDEO_ID = 1000, 1001
TEXT_BEFORE, TEXT_AFTER = [5, 6, 7], [8, 9, 10, 11]


@pytest.fixture(scope="module")
def models():
    ours = tiny_model(seed=1, vocab_size=1024)
    return ours, to_hf_model(ours, image_token_index=IMAGE_ID, video_token_index=VIDEO_ID)


def _hf_ids(num_image_tokens: list[int]) -> torch.Tensor:
    ids = list(TEXT_BEFORE)
    for n in num_image_tokens:
        ids += [IMAGE_ID] * n
    return torch.tensor([ids + TEXT_AFTER])


# (width, height): tall, wide, one large enough for the anyres_max shrink, a small one, a square one.
SIZES = [(300, 1100), (1500, 400), (2000, 2200), (200, 150), (640, 480), (384, 384)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_anyres_max_9_logits_match(models, make_image, size):
    ours, hf = models
    image = make_image(*size, seed=size[0])
    pixels = process_images([image], SigLipImageProcessor(), ours.config)
    ids = torch.tensor([TEXT_BEFORE + [-200] + TEXT_AFTER])
    with torch.no_grad():
        mine = ours(input_ids=ids, images=pixels, image_sizes=[image.size]).logits
        spec = MultimodalSpec.from_config(ours.config)
        count = anyres_token_count(image.size, spec.grid_pinpoints, 384, 27, 9)
        assert mine.shape[1] == count + len(TEXT_BEFORE) + len(TEXT_AFTER)
        theirs = hf(
            input_ids=_hf_ids([count]), pixel_values=pixels, image_sizes=torch.tensor([image.size[::-1]])
        ).logits
    torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


def test_anyres_max_interpolation_is_exercised():
    spec = MultimodalSpec.from_config(tiny_model(vocab_size=64).config)
    # 2000x2200 -> 6x6 grid (162 x 162 tokens) -> unpad keeps 148 columns -> 162 rows of 148 + newline.
    unshrunk = 729 + 162 * (148 + 1)
    assert anyres_token_count((2000, 2200), spec.grid_pinpoints, 384, 27, 9) < unshrunk
    assert anyres_token_count((2000, 2200), spec.grid_pinpoints, 384, 27, None) == unshrunk


def test_pad_multi_image_logits_match(models, make_image):
    """Two ``pad`` images in one sample: 730 tokens each (729 + newline) on both sides."""
    ours, hf = models
    images = [make_image(500, 300, seed=1), make_image(256, 512, seed=2)]
    pad_config = tiny_config(vocab_size=1024, image_aspect_ratio="pad")  # the shared model's config stays as it is
    pixels = process_images(images, SigLipImageProcessor(), pad_config)  # (2, 3, 384, 384)
    ids = torch.tensor([TEXT_BEFORE + [-200, 5, -200] + TEXT_AFTER])
    with torch.no_grad():
        mine = ours(input_ids=ids, images=list(pixels), image_sizes=[im.size for im in images]).logits
        hf_ids = torch.tensor([TEXT_BEFORE + [IMAGE_ID] * 730 + [5] + [IMAGE_ID] * 730 + TEXT_AFTER])
        theirs = hf(
            input_ids=hf_ids,
            pixel_values=pixels[:, None],
            image_sizes=torch.tensor([im.size[::-1] for im in images]),
            batch_num_images=torch.tensor([2]),
        ).logits
    torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


def test_stacked_pad_tensor_keeps_llava_next_729_tokens(models, make_image):
    """LLaVA-NeXT encodes a 4-D image tensor without packing (no newline): 729 tokens per image, where
    transformers always gives 730. lmms-eval's stock wrapper passes multi-image prompts this way."""
    ours, _ = models
    pixels = torch.stack([SigLipImageProcessor().to_tensor(make_image(384, 384, seed=s)) for s in (1, 2)])
    ids = torch.tensor([[5, -200, -200, 6]])
    spliced = ours.prepare_multimodal_inputs(ids, None, None, pixels)
    assert int((spliced.image_token_index >= 0).sum()) == 2 * 729
    as_list = ours.prepare_multimodal_inputs(ids, None, None, list(pixels))
    assert int((as_list.image_token_index >= 0).sum()) == 2 * 730


def test_text_only_logits_match(models):
    ours, hf = models
    ids = torch.tensor([TEXT_BEFORE + TEXT_AFTER])
    with torch.no_grad():
        torch.testing.assert_close(ours(input_ids=ids).logits, hf(input_ids=ids).logits, rtol=1e-5, atol=1e-5)


def test_eager_matches_sdpa(make_image):
    image = make_image(640, 480, seed=3)
    outputs = []
    for attn in ("sdpa", "eager"):
        model = tiny_model(seed=2, vocab_size=512, attn_implementation=attn)
        pixels = process_images([image], SigLipImageProcessor(), model.config)
        with torch.no_grad():
            outputs.append(
                model(input_ids=torch.tensor([[5, -200, 6]]), images=pixels, image_sizes=[image.size]).logits
            )
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-4, atol=1e-4)
