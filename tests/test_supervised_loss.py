"""``supervised_logits_only``: the training loss without full-vocabulary logits equals the standard one."""

from __future__ import annotations

import pytest
import torch

from llava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from llava.testing import tiny_model


@pytest.mark.parametrize("num_items", [None, 9])
def test_supervised_only_loss_and_gradients_equal_the_full_loss(num_items):
    model = tiny_model(seed=1, image_size=56).train()
    torch.manual_seed(0)
    ids = torch.randint(0, 1000, (2, 14))
    ids[0, 2] = IMAGE_TOKEN_INDEX  # one image in the first sample; the splice expands labels too
    labels = ids.clone()
    labels[:, :6] = IGNORE_INDEX
    labels[1, 10:] = IGNORE_INDEX
    images = [torch.randn(1, 3, 56, 56)]
    extra = {} if num_items is None else {"num_items_in_batch": torch.tensor(num_items)}
    grads = []
    losses = []
    for fast in (False, True):
        model.zero_grad()
        out = model(
            input_ids=ids, labels=labels, images=images, image_sizes=[(56, 56)], supervised_logits_only=fast, **extra
        )
        out.loss.backward()
        losses.append(out.loss.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        assert (out.logits is None) == fast
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-6, atol=1e-6)
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("num_items", [None, 0, torch.tensor(0)])
def test_a_step_with_no_supervised_token_learns_nothing_instead_of_nan(num_items):
    """A packed row whose only record was bad holds a blank, unsupervised item (llava.data.dataset): its loss is 0
    and every gradient 0, where 0 / 0 would put NaN into the weights. (The training loss; with full logits the
    loss is transformers' own, which gives NaN there.)"""
    model = tiny_model(seed=1, image_size=56).train()
    ids = torch.randint(0, 1000, (1, 6))
    labels = torch.full_like(ids, IGNORE_INDEX)
    extra = {} if num_items is None else {"num_items_in_batch": num_items}
    out = model(input_ids=ids, labels=labels, supervised_logits_only=True, **extra)
    out.loss.backward()
    assert out.loss.item() == 0.0
    assert all(torch.count_nonzero(p.grad) == 0 for p in model.parameters() if p.grad is not None)
