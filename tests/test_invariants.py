"""Invariances of the base model: gradient checkpointing, batch vs per-sample, hidden-state capture."""

import torch

from llava.mm_utils import process_images
from llava.processing import SigLipImageProcessor
from llava.testing import tiny_model


def _loss_and_grads(model, ids, pixels, sizes):
    model.zero_grad()
    loss = model(input_ids=ids, labels=ids.clamp_min(0), images=pixels, image_sizes=sizes).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gradient_checkpointing_same_loss_and_grads(make_image):
    model = tiny_model(seed=8, vocab_size=256).train()
    image = make_image(500, 400, seed=1)
    pixels = process_images([image], SigLipImageProcessor(), model.config)
    ids = torch.tensor([[5, -200, 6, 7, 8]])
    loss_a, grads_a = _loss_and_grads(model, ids, pixels, [image.size])
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    loss_b, grads_b = _loss_and_grads(model, ids, pixels, [image.size])
    assert torch.equal(loss_a, loss_b)
    assert grads_a.keys() == grads_b.keys() and any("vision_tower" in n for n in grads_a)
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-5, atol=1e-6, msg=name)


def test_right_padded_batch_equals_per_sample(make_image):
    model = tiny_model(seed=9, vocab_size=256)
    images = [make_image(640, 480, seed=2), make_image(300, 700, seed=3)]
    pixels = [process_images([im], SigLipImageProcessor(), model.config)[0] for im in images]
    samples = [[5, -200, 6, 7, 8, 9], [10, -200, 11]]
    single = []
    with torch.no_grad():
        for ids, px, im in zip(samples, pixels, images):
            single.append(model(input_ids=torch.tensor([ids]), images=[px], image_sizes=[im.size]).logits[0])
        pad = model.config.pad_token_id
        batch = torch.tensor([samples[0], samples[1] + [pad] * 3])
        mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3])
        logits = model(
            input_ids=batch, attention_mask=mask, images=pixels, image_sizes=[im.size for im in images]
        ).logits
    for row, expected in zip(logits, single):
        torch.testing.assert_close(row[: expected.shape[0]], expected, rtol=1e-4, atol=1e-5)


def test_output_hidden_states():
    model = tiny_model(seed=1, vocab_size=128, image_aspect_ratio="pad")
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor([[5, -200, 6]]), images=[torch.zeros(3, 384, 384)], output_hidden_states=True
        )
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    assert out.hidden_states[0].shape == (1, 2 + 730, model.config.hidden_size)
