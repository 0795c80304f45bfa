"""ManagerTower heads and objectives against hand-computed values on tiny batches."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from managertower import objectives as obj
from managertower.heads import ClassifierHead, ContrastiveHeads, ITMHead, MLMHead
from managertower.model import ManagerTowerModel
from managertower.pairing import grow_token_types, nlvr2_features
from managertower.testing import tiny_config


def test_vqa_soft_scores_targets_loss_and_metric():
    assert [obj.vqa_soft_score(c) for c in range(5)] == pytest.approx([0.0, 0.3, 0.6, 0.9, 1.0])
    targets = obj.vqa_targets([[0, 2], [1]], [[1.0, 0.3], [0.6]], classes=3)
    assert torch.allclose(targets, torch.tensor([[1.0, 0.0, 0.3], [0.0, 0.6, 0.0]]))
    logits = torch.tensor([[0.0, 1.0, 2.0], [-1.0, 3.0, 0.0]])
    expected = 0.0
    for row in range(2):
        for c in range(3):
            p, t = 1 / (1 + math.exp(-logits[row, c].item())), targets[row, c].item()
            expected -= t * math.log(p) + (1 - t) * math.log(1 - p)
    assert obj.vqa_loss(logits, targets).item() == pytest.approx(expected / 6 * 3, rel=1e-6)
    assert obj.vqa_score(logits, targets).tolist() == pytest.approx([0.3, 0.6])  # argmax answers 2 and 1
    with pytest.raises(ValueError, match="question 0 answer id 5"):
        obj.vqa_targets([[5]], [[1.0]], classes=3)


def test_itm_negatives_are_half_rounded_up():
    for batch in (1, 4, 7):
        labels = obj.itm_negatives(batch, torch.Generator().manual_seed(batch))
        assert int(labels.sum()) == (batch + 1) // 2


def test_itc_loss_with_two_captions_of_one_image():
    text = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), dim=-1)
    image = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=-1)
    positive = obj.positives(torch.tensor([0, 0, 1]), torch.tensor([0, 1]))
    scale = torch.tensor(2.0)
    logits = (text @ image.T * scale).tolist()

    def ce(row, target):  # soft cross-entropy of one row
        z = math.log(sum(math.exp(v) for v in row))
        return -sum(t * (v - z) for v, t in zip(row, target))

    t2i = sum(ce(logits[r], positive[r].float().tolist()) for r in range(3)) / 3
    columns = [[logits[r][c] for r in range(3)] for c in range(2)]
    i2t = (ce(columns[0], [0.5, 0.5, 0.0]) + ce(columns[1], [0.0, 0.0, 1.0])) / 2
    assert obj.itc_loss(text, image, scale, positive).item() == pytest.approx((t2i + i2t) / 2, rel=1e-6)


def test_hard_negatives_never_pick_a_positive_even_when_weights_underflow():
    generator = torch.Generator().manual_seed(0)
    positive = torch.eye(6, dtype=torch.bool)
    positive[0, 1] = True
    logits = torch.randn(6, 6, generator=generator) * 3
    logits[2] = torch.tensor([0.0, 0.0, 1e4, -1e4, -1e4, -1e4])  # the softmax puts everything on the positive
    for _ in range(200):
        picks = obj.hard_negatives(logits, positive, generator)
        assert not positive[torch.arange(6), picks].any()
    with pytest.raises(ValueError, match="no negative"):
        obj.hard_negatives(logits[:1], torch.ones(1, 6, dtype=torch.bool))


def test_hard_negatives_follow_the_similarities():
    logits = torch.tensor([[5.0, 4.0, -4.0]])
    picks = [int(obj.hard_negatives(logits, torch.tensor([[True, False, False]]))) for _ in range(300)]
    assert picks.count(1) > 280  # weight e^4 against e^-4 for column 2


def test_rerank_with_k_the_pool_equals_brute_force_itm_ranking():
    generator = torch.Generator().manual_seed(1)
    itm = torch.randn(5, 8, generator=generator)  # the "matched" logit of every image-text pair
    similarity = torch.randn(5, 8, generator=generator)
    scores = obj.rerank(similarity, k=8, itm_score=lambda i, t: itm[i, t])
    assert torch.equal(scores, itm)
    partial = obj.rerank(similarity, k=2, itm_score=lambda i, t: itm[i, t])
    in_top = torch.zeros(5, 8, dtype=torch.bool)
    in_top[torch.arange(5)[:, None], similarity.topk(2, dim=1).indices] = True
    in_top[similarity.topk(2, dim=0).indices, torch.arange(8)[None, :]] = True
    assert torch.equal(partial, torch.where(in_top, itm, torch.tensor(obj.RERANK_FLOOR)))


def test_recalls_by_hand():
    # 2 images, 4 texts (texts 0, 1 describe image 0; texts 2, 3 image 1)
    scores = torch.tensor([[0.1, 0.9, 0.8, 0.0], [0.7, 0.2, 0.3, 0.1]])
    out = obj.recalls(scores, torch.tensor([0, 0, 1, 1]), ks=(1, 2))
    assert out["tr_r@1"] == 50.0  # image 0's best text is its own; image 1's best (text 0) is not
    assert out["tr_r@2"] == 100.0  # image 1's second best is text 2, its own
    assert out["ir_r@1"] == 50.0  # texts 1 and 3 rank their image first, texts 0 and 2 second
    assert out["ir_r@2"] == 100.0
    assert out["r_mean"] == pytest.approx((out["tr_mean"] + out["ir_mean"]) / 2)


def test_heads_shapes_and_untied_mlm():
    mlm = MLMHead(8, 11)
    assert mlm(torch.randn(2, 3, 8)).shape == (2, 3, 11) and mlm.decoder.bias is None
    assert ITMHead(8)(torch.randn(2, 16)).shape == (2, 2)
    assert ClassifierHead(8, 3129, hidden_scale=2)(torch.randn(2, 16)).shape == (2, 3129)
    nlvr2 = ClassifierHead(8, 2, inputs=2)
    assert nlvr2.net[0].in_features == 32 and nlvr2(torch.randn(2, 32)).shape == (2, 2)
    itc = ContrastiveHeads(8, 12)
    with torch.no_grad():
        itc.temperature.fill_(5.0)
    text, image, scale = itc(torch.randn(2, 3, 8), torch.randn(2, 4, 12))
    assert torch.allclose(text.norm(dim=-1), torch.ones(2)) and image.shape == (2, 256)
    assert itc.temperature.item() == 0.5 and scale.item() == pytest.approx(2.0)


def test_nlvr2_pairing_grows_the_token_types_and_concatenates_in_order():
    torch.manual_seed(0)
    model = ManagerTowerModel(tiny_config()).eval()
    ids, mask = torch.randint(3, 99, (2, 6)), torch.ones(2, 6, dtype=torch.long)
    image_0, image_1 = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError, match="grow_token_types"):
        nlvr2_features(model, ids, mask, image_0, image_1)
    before = model(ids, mask, image_0).cls_feats
    grow_token_types(model)
    assert model.config.token_types == 3
    assert torch.equal(model.token_type_embeddings.weight[2], model.token_type_embeddings.weight[1])
    with torch.no_grad():
        pair = nlvr2_features(model, ids, mask, image_0, image_1)
        assert torch.equal(pair[:, : before.shape[1]], before)  # image 0 keeps type 1: unchanged by the growth
        same_type = model(ids, mask, image_1, image_token_type=1).cls_feats
        assert torch.equal(pair[:, before.shape[1] :], same_type)  # row 2 starts as a copy of row 1
        # Not a constant shift: the managers' LayerNorms would remove one.
        model.token_type_embeddings.weight[2] += torch.linspace(-1.0, 1.0, model.token_type_embeddings.embedding_dim)
        assert not torch.allclose(nlvr2_features(model, ids, mask, image_0, image_1)[:, before.shape[1] :], same_type)
