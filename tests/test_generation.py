"""Generation: KV cache == repeated full forwards; batched left-padded == per sample; new tokens only; EOS stop."""

import pytest
import torch

from llava.mm_utils import process_images
from llava.processing import SigLipImageProcessor
from llava.testing import tiny_model

PROC = SigLipImageProcessor()


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=3, vocab_size=2048)


def _greedy_full_forward(model, ids, pixels, sizes, steps):
    """Reference decoding: re-run the whole prompt + generated tokens at every step, no cache."""
    generated = []
    for _ in range(steps):
        current = torch.cat([ids, torch.tensor([generated], dtype=torch.long)], dim=1) if generated else ids
        with torch.no_grad():
            logits = model(input_ids=current, images=pixels, image_sizes=sizes, use_cache=False).logits
        generated.append(int(logits[0, -1].argmax()))
    return generated


@pytest.mark.parametrize("size", [(640, 480), (300, 900)])
def test_kv_cache_generation_equals_full_forward(model, make_image, size):
    image = make_image(*size, seed=7)
    pixels = process_images([image], PROC, model.config)
    ids = torch.tensor([[11, 12, -200, 13, 14]])
    out = model.generate(
        ids,
        images=pixels,
        image_sizes=[image.size],
        max_new_tokens=6,
        do_sample=False,
        eos_token_id=None,
        use_cache=True,
    )
    assert out.shape == (1, 6), "generate must return only the new tokens"
    assert out[0].tolist() == _greedy_full_forward(model, ids, pixels, [image.size], 6)


def _generate_one(model, ids, images, sizes, steps=5):
    out = model.generate(
        ids, images=images, image_sizes=sizes, max_new_tokens=steps, do_sample=False, eos_token_id=None
    )
    return out[0].tolist()


@pytest.mark.parametrize("padding", ["left", "right"])
def test_batched_generation_equals_per_sample(model, make_image, padding):
    """Mixed lengths, image sizes and a text-only sample; the caller's padding side does not matter."""
    img_a, img_b = make_image(640, 480, seed=1), make_image(384, 700, seed=2)
    samples = [
        ([21, -200, 22, 23, 24, 25], [img_a]),
        ([31, 32, -200, 33], [img_b]),
        ([41, 42, 43], []),
    ]
    expected = []
    for ids, images in samples:
        pixels = list(process_images(images, PROC, model.config)) if images else None
        expected.append(_generate_one(model, torch.tensor([ids]), pixels, [im.size for im in images] or None))
    longest = max(len(ids) for ids, _ in samples)
    pad = model.config.pad_token_id
    rows, masks = [], []
    for ids, _ in samples:
        fill = [pad] * (longest - len(ids))
        rows.append(fill + ids if padding == "left" else ids + fill)
        masks.append([0] * len(fill) + [1] * len(ids) if padding == "left" else [1] * len(ids) + [0] * len(fill))
    images = [img_a, img_b]
    pixels = [process_images([im], PROC, model.config)[0] for im in images]
    out = model.generate(
        torch.tensor(rows),
        attention_mask=torch.tensor(masks),
        images=pixels,
        image_sizes=[im.size for im in images],
        max_new_tokens=5,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=pad,
    )
    assert out.tolist() == expected


def test_generation_stops_on_eos(model, make_image):
    image = make_image(384, 384, seed=4)
    pixels = process_images([image], PROC, model.config)
    ids = torch.tensor([[11, -200, 12]])
    first = _generate_one(model, ids, pixels, [image.size], steps=1)[0]
    out = model.generate(
        ids, images=pixels, image_sizes=[image.size], max_new_tokens=8, do_sample=False, eos_token_id=first
    )
    assert out[0].tolist() == [first], "generation must end at the EOS token"


def test_generate_rejects_inputs_embeds(model):
    with pytest.raises(ValueError, match="inputs_embeds"):
        model.generate(torch.tensor([[1, 2]]), inputs_embeds=torch.zeros(1, 2, 64))
