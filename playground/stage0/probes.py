"""What stage 0 measures (zero-shot retrieval, linear probes), and the optimisation loop both trainings share."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from tqdm import tqdm


def schedule(optimizer: torch.optim.Optimizer, *, warmup: int, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine decay to zero: the curriculum's own schedule."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, steps - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def optimise(
    model: torch.nn.Module,
    step_loss: Callable[[], torch.Tensor],
    *,
    lr: float,
    weight_decay: float,
    warmup: int,
    steps: int,
    desc: str,
) -> list[float]:
    """AdamW with warm-up and cosine decay, gradients clipped at 1; ``step_loss()`` gives one batch's loss.
    Returns the loss of every step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = schedule(optimizer, warmup=warmup, steps=steps)
    losses = []
    for _ in tqdm(range(steps), desc=desc, unit="step"):
        loss = step_loss()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(round(loss.item(), 5))
    return losses


def retrieval_accuracy(
    image_embeds: torch.Tensor, text_embeds: torch.Tensor, texts: list[str], *, gallery: int = 32
) -> dict[str, float]:
    """Image-to-text top-1 within consecutive galleries of ``gallery`` held-out pairs; a hit is any caption equal
    to the image's own.

    ``image_embeds``, ``text_embeds``: (N, D), row i of each from the same pair. ``chance`` is the expected hit rate
    of a random pick (captions can repeat within a gallery).
    """
    hits, chance = [], []
    for start in range(0, len(texts) - gallery + 1, gallery):
        names = texts[start : start + gallery]
        sims = image_embeds[start : start + gallery] @ text_embeds[start : start + gallery].T  # (G, G)
        hits += [names[j] == names[i] for i, j in enumerate(sims.argmax(dim=1).tolist())]
        chance += [names.count(name) / gallery for name in names]
    return {"accuracy": sum(hits) / len(hits), "chance": sum(chance) / len(chance), "gallery": gallery}


def linear_probe(
    train: torch.Tensor, train_labels: list[str], test: torch.Tensor, test_labels: list[str], *, steps: int = 200
) -> float:
    """Held-out accuracy of a multinomial logistic regression on standardised features (N, D), full-batch Adam.

    Labels unseen in training count as errors. Deterministic: zero-initialised weights, no sampling.
    """
    classes = sorted(set(train_labels))
    index = {c: i for i, c in enumerate(classes)}
    mean, std = train.mean(dim=0), train.std(dim=0).clamp_min(1e-6)
    x, y = (train - mean) / std, torch.tensor([index[c] for c in train_labels])
    weight = torch.zeros(x.shape[1], len(classes), requires_grad=True)
    bias = torch.zeros(len(classes), requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=0.05)
    with torch.enable_grad():
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(x @ weight + bias, y) + 1e-3 * weight.square().sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        predicted = (((test - mean) / std) @ weight + bias).argmax(dim=1).tolist()
    return sum(classes[p] == label for p, label in zip(predicted, test_labels, strict=True)) / len(test_labels)


def token_place(train: torch.Tensor, test: torch.Tensor, *, steps: int, images: int = 300) -> float:
    """How well a token's own features tell its index among the T patches (chance 1/T): whether a reader of one token
    learns where in the image it lies. ``train``, ``test``: one layer's (N, T, D); ``images`` of each are used."""
    tokens = train.shape[1]

    def rows(hidden: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
        hidden = hidden[:images]
        return hidden.reshape(-1, hidden.shape[-1]), [str(j) for _ in range(len(hidden)) for j in range(tokens)]

    return linear_probe(*rows(train), *rows(test), steps=steps)


def majority(labels: list[str]) -> float:
    """Accuracy of always naming the commonest label: the floor a probe must beat."""
    return max(labels.count(label) for label in set(labels)) / len(labels)
