"""Task heads on the Two-Tower outputs (the original's ``heads.py`` and ``mt_module.py``).

Shapes: D the cross-modal width, ``cls_feats`` (B, 2D) are the pooled text and image first tokens.

* :class:`MLMHead`: BERT's transform (Linear, GELU, LayerNorm with ``config.mlm_norm_eps``: the original's 1e-12 by
  default) and an *untied* vocabulary projection with a separate bias, on every text token.
* :class:`ITMHead`: Linear(2D, 2) on ``cls_feats``.
* :class:`ClassifierHead`: VQAv2 (3129 answers), SNLI-VE (3 classes) and NLVR2 (2 classes on two concatenated
  ``cls_feats``): Linear -> LayerNorm -> GELU -> Linear, hidden width ``2D x hidden_scale``.
* :class:`ContrastiveHeads`: ITC projections of the *unimodal* top layers' first tokens to 256, L2-normalised, with
  a learned temperature clamped to [0.001, 0.5] before every use.

transformers 5.23 has the first two as ``BridgeTowerForMaskedLM`` (``mlm_score``) and
``BridgeTowerForImageAndTextRetrieval`` (``itm_score``): the same modules, converted exactly by
``managertower.convert.task_from_hf_bridgetower`` (untied decoders only: ``tie_word_embeddings=True`` is refused).
Its ``BridgeTowerForContrastiveLearning`` is another head, not converted: it projects the image *after* the
cross-modal input projection and token type, adds a third embedding of the fused pair (``itc_cross_modal_head``)
and scales by an unclamped ``exp(logit_scale)``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

TEMPERATURE_RANGE = (0.001, 0.5)


class MLMHead(nn.Module):
    def __init__(self, hidden: int, vocab_size: int, *, eps: float = 1e-12) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.decoder = nn.Linear(hidden, vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, text_features: torch.Tensor) -> torch.Tensor:
        """(B, Lt, D) -> (B, Lt, vocab) logits."""
        return self.decoder(self.LayerNorm(F.gelu(self.dense(text_features)))) + self.bias


class ITMHead(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.fc = nn.Linear(2 * hidden, 2)

    def forward(self, cls_feats: torch.Tensor) -> torch.Tensor:
        """(B, 2D) -> (B, 2): column 1 is "matched", the score retrieval reranks with."""
        return self.fc(cls_feats)


class ClassifierHead(nn.Module):
    """``inputs`` pooled vectors of width 2D each (1, or 2 for NLVR2) -> ``classes`` logits."""

    def __init__(self, hidden: int, classes: int, *, inputs: int = 1, hidden_scale: int = 1, dropout: float = 0.0):
        super().__init__()
        if inputs < 1 or hidden_scale < 1 or classes < 1:
            raise ValueError(f"ClassifierHead: inputs={inputs}, hidden_scale={hidden_scale}, classes={classes} >= 1")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"ClassifierHead: dropout={dropout} must be in [0, 1)")
        width = 2 * hidden * hidden_scale
        # The original adds the input dropout layer only when nlvr2_drop_rate > 0; Identity keeps state dicts alike.
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.net = nn.Sequential(
            nn.Linear(2 * hidden * inputs, width), nn.LayerNorm(width), nn.GELU(), nn.Linear(width, classes)
        )

    def forward(self, cls_feats: torch.Tensor) -> torch.Tensor:
        """(B, inputs x 2D) -> (B, classes)."""
        return self.net(self.dropout(cls_feats))


class ContrastiveHeads(nn.Module):
    def __init__(self, text_hidden: int, image_hidden: int, *, dim: int = 256, temperature: float = 0.07) -> None:
        super().__init__()
        low, high = TEMPERATURE_RANGE
        if not low <= temperature <= high:
            raise ValueError(f"ITC temperature={temperature} must be in [{low}, {high}]")
        self.text = nn.Linear(text_hidden, dim)
        self.image = nn.Linear(image_hidden, dim)
        self.temperature = nn.Parameter(torch.tensor(float(temperature)))

    def forward(
        self, text_top: torch.Tensor, image_top: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unimodal top layers (B, Lt, Dt), (B, Lv, Dv) -> unit text and image features (B, dim) and 1/temperature.

        The temperature is clamped in place, as the original does, so the optimiser never sees it leave the range."""
        with torch.no_grad():
            self.temperature.clamp_(*TEMPERATURE_RANGE)
        text = F.normalize(self.text(text_top[:, 0]), dim=-1)
        image = F.normalize(self.image(image_top[:, 0]), dim=-1)
        return text, image, 1.0 / self.temperature
