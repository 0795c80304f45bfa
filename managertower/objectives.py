"""Losses, targets and metrics of the Two-Tower tasks (paper Sec. IV, the original's ``objectives.py``).

Pure tensor functions, so each is checked against a hand-computed value on a tiny batch:

* VQAv2: soft scores ``min(1, 0.3 x count)``, dense targets, ``BCEWithLogits(mean) x classes`` and the VQA score of
  the argmax;
* ITM: which half of a batch gets a false image;
* Flickr30K: ITC with soft targets over every caption of an image, hard negatives sampled from the ITC similarities
  (never a positive), and retrieval: ITC top-k reranked by the ITM "matched" logit, R@1/5/10 and their mean.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.nn import functional as F

RERANK_FLOOR = -100.0  # the score of every pair outside an ITC top-k (the original's fill value)


def vqa_soft_score(count: int) -> float:
    """How many of the 10 annotators gave an answer -> its target: 0.3, 0.6, 0.9, then 1.0."""
    if count < 0:
        raise ValueError(f"vqa_soft_score: count={count} must be >= 0")
    return min(1.0, 0.3 * count)


def vqa_targets(labels: Sequence[Sequence[int]], scores: Sequence[Sequence[float]], classes: int) -> torch.Tensor:
    """Per question, answer ids and their soft scores -> (B, classes) dense targets."""
    targets = torch.zeros(len(labels), classes)
    for row, (ids, values) in enumerate(zip(labels, scores, strict=True)):
        if len(ids) != len(values):
            raise ValueError(f"vqa_targets: question {row} has {len(ids)} answer ids but {len(values)} scores")
        for answer, value in zip(ids, values):
            if not 0 <= answer < classes:
                raise ValueError(f"vqa_targets: question {row} answer id {answer} is outside 0..{classes - 1}")
            targets[row, answer] = value
    return targets


def vqa_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(B, C) logits and soft targets -> the mean BCE times C (the original's scaling: a sum over answers)."""
    return F.binary_cross_entropy_with_logits(logits, targets) * targets.shape[1]


def vqa_score(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(B,) VQA score of each argmax answer: its soft target (0 for an answer no annotator gave)."""
    return targets.gather(1, logits.argmax(dim=1, keepdim=True)).squeeze(1)


def itm_negatives(batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B,) bool, True where the sample gets a false image: B - B // 2 of them (the original's count: half, rounded
    up), at random positions."""
    labels = torch.zeros(batch, dtype=torch.bool)
    labels[: batch - batch // 2] = True
    return labels[torch.randperm(batch, generator=generator)]


def positives(text_index: torch.Tensor, image_index: torch.Tensor) -> torch.Tensor:
    """(Bt,), (Bv,) image ids -> (Bt, Bv) bool: the text describes the image."""
    return text_index[:, None] == image_index[None, :]


def soft_cross_entropy(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Row-wise CE of (R, C) logits against targets spread evenly over each row's (R, C) positives, mean over rows."""
    if not positive.any(dim=1).all():
        raise ValueError("soft_cross_entropy: every row needs a positive")
    targets = positive.float() / positive.sum(dim=1, keepdim=True)
    return -(targets * logits.log_softmax(dim=1)).sum(dim=1).mean()


def itc_loss(text: torch.Tensor, image: torch.Tensor, scale: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Unit features (Bt, E), (Bv, E), ``scale`` = 1/temperature, (Bt, Bv) positives -> (CE_t2i + CE_i2t) / 2 with
    targets spread evenly over every positive (several captions of one image)."""
    logits = text @ image.T * scale  # (Bt, Bv)
    if not positive.any(dim=1).all() or not positive.any(dim=0).all():
        raise ValueError("itc_loss: every text and every image needs a positive in the batch")
    return (soft_cross_entropy(logits, positive) + soft_cross_entropy(logits.T, positive.T)) / 2


def hard_negatives(logits: torch.Tensor, positive: torch.Tensor, generator: torch.Generator | None = None):
    """One negative column per row, drawn with probability softmax(logits) over the row's non-positives.

    ``logits`` (R, C) ITC logits, ``positive`` (R, C) -> (R,) column indices. A row whose weights underflow to zero
    everywhere gets 1e-5 added to its non-positives (the original's retry), so a draw never fails or hits a
    positive. Raises when a row has no negative at all."""
    if positive.all(dim=1).any():
        raise ValueError("hard_negatives: a row has no negative to draw (every column is a positive)")
    with torch.no_grad():
        weights = logits.float().softmax(dim=1).masked_fill(positive, 0.0)
        empty = weights.sum(dim=1) <= 0
        weights[empty] = (~positive[empty]).float() * 1e-5
        return torch.multinomial(weights, 1, generator=generator).squeeze(1)


def rerank(similarity: torch.Tensor, k: int, itm_score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
    """Retrieval scores: for each image its top-k texts by ITC, and for each text its top-k images, scored by
    ``itm_score(image_ids, text_ids)`` (the ITM "matched" logit); every other pair gets -100. The result is the
    element-wise max of the two (the original's final matrix); the ITC similarity itself is not added.

    ``similarity`` (Ni, Nt) image x text ITC similarities -> (Ni, Nt) scores."""
    images, texts = similarity.shape
    k_texts, k_images = min(k, texts), min(k, images)
    i2t = torch.full_like(similarity, RERANK_FLOOR)
    top_texts = similarity.topk(k_texts, dim=1).indices  # (Ni, k)
    image_ids = torch.arange(images, device=similarity.device)[:, None].expand(-1, k_texts)
    i2t[image_ids, top_texts] = itm_score(image_ids.reshape(-1), top_texts.reshape(-1)).view(images, k_texts)
    t2i = torch.full_like(similarity, RERANK_FLOOR)
    top_images = similarity.topk(k_images, dim=0).indices  # (k, Nt)
    text_ids = torch.arange(texts, device=similarity.device)[None, :].expand(k_images, -1)
    t2i[top_images, text_ids] = itm_score(top_images.reshape(-1), text_ids.reshape(-1)).view(k_images, texts)
    return torch.maximum(i2t, t2i)


def recalls(scores: torch.Tensor, text_image: torch.Tensor, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """``scores`` (Ni, Nt), ``text_image`` (Nt,) the image id of each text (ids are row numbers) -> ``tr_r@k`` (an
    image finds one of its captions in its top k), ``ir_r@k`` (a caption finds its image), their means and
    ``r_mean`` over all six, in percent."""
    images, texts = scores.shape
    if text_image.shape != (texts,) or int(text_image.min()) < 0 or int(text_image.max()) >= images:
        raise ValueError(f"recalls: text_image must hold one image id in 0..{images - 1} per text ({texts})")
    positive = torch.arange(images, device=scores.device)[:, None] == text_image[None, :]  # (Ni, Nt)
    text_rank = (scores > scores.masked_fill(~positive, float("-inf")).amax(dim=1, keepdim=True)).sum(dim=1)
    image_rank = (scores > scores.gather(0, text_image[None, :])).sum(dim=0)  # (Nt,): images ranked above the true one
    out = {}
    for k in ks:
        out[f"tr_r@{k}"] = 100.0 * float((text_rank < k).float().mean())
        out[f"ir_r@{k}"] = 100.0 * float((image_rank < k).float().mean())
    out["tr_mean"] = sum(out[f"tr_r@{k}"] for k in ks) / len(ks)
    out["ir_mean"] = sum(out[f"ir_r@{k}"] for k in ks) / len(ks)
    out["r_mean"] = (out["tr_mean"] + out["ir_mean"]) / 2
    return out
