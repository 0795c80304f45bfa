"""What each fusion feeds cross-modal layer l (1-based) of one modality, from the stack of projected unimodal
layers (B, N, L, D) and the modality's previous cross-modal outputs.

* METER: the last unimodal layer into layer 1; later layers see only the previous output.
* BridgeTower: unimodal layer depth-L_C+l into layer l, LN-ed in layer 1 and through a link tower after.
* ManagerTower: a manager per layer (SAM, SAUM or AAUM; AAUM's layer 1 is a SAUM) over the top N layers, each
  with a learned layer-index embedding added first (rows indexed by the absolute 0-based layer).
"""

from __future__ import annotations

import torch
from torch import nn

from managertower.config import Fusion, LinkType, ManagerKind, ManagerTowerConfig
from managertower.managers import AdaptiveManager, ManagerOutput, StaticManager


class MeterInputs(nn.Module):
    def forward(self, layer: int, stack: torch.Tensor, previous: list[torch.Tensor], **_) -> tuple[torch.Tensor, None]:
        return (stack[:, -1] if layer == 1 else previous[-1]), None


class LinkTower(nn.Module):
    """LN(a + b), LN(a * s + b) or LN(a (1 - beta) + b beta): ``a`` the unimodal layer, ``b`` the previous output."""

    def __init__(self, kind: LinkType, hidden: int, eps: float) -> None:
        super().__init__()
        self.kind = kind
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)  # transformers' name, so converted weights map one to one
        if kind is LinkType.SCALED_ADD:
            self.scaled_factor = nn.Parameter(torch.tensor(1.0))
        elif kind is LinkType.INTERPOLATE:
            self.beta = nn.Parameter(torch.tensor(0.5))

    def forward(self, unimodal: torch.Tensor, cross: torch.Tensor) -> torch.Tensor:
        if self.kind is LinkType.ADD:
            return self.LayerNorm(unimodal + cross)
        if self.kind is LinkType.SCALED_ADD:
            return self.LayerNorm(unimodal * self.scaled_factor + cross)
        return self.LayerNorm(unimodal * (1 - self.beta) + cross * self.beta)


class BridgeInputs(nn.Module):
    def __init__(self, cfg: ManagerTowerConfig) -> None:
        super().__init__()
        hidden, eps = cfg.cross.hidden_size, cfg.cross.input_norm_eps
        self.first_norm = nn.LayerNorm(hidden, eps=eps)
        self.links = nn.ModuleList(LinkTower(cfg.link, hidden, eps) for _ in range(cfg.cross.layers - 1))

    def forward(self, layer: int, stack: torch.Tensor, previous: list[torch.Tensor], **_) -> tuple[torch.Tensor, None]:
        if layer == 1:
            return self.first_norm(stack[:, 0]), None
        return self.links[layer - 2](stack[:, layer - 1], previous[-1]), None


class ManagedInputs(nn.Module):
    def __init__(self, cfg: ManagerTowerConfig, depth: int) -> None:
        super().__init__()
        hidden, eps, manager = cfg.cross.hidden_size, cfg.cross.input_norm_eps, cfg.manager
        self.first_row = depth - manager.experts  # 0-based index of the first expert layer
        self.layer_embeddings = nn.Embedding(depth, hidden)

        def build(layer: int) -> nn.Module:
            if manager.type is ManagerKind.AAUM and layer > 1:
                return AdaptiveManager(manager, hidden=hidden, eps=eps)
            return StaticManager(manager, layer=layer, hidden=hidden, eps=eps)

        self.managers = nn.ModuleList(build(layer) for layer in range(1, cfg.cross.layers + 1))

    def embed(self, stack: torch.Tensor) -> torch.Tensor:
        """Add each expert's layer-index embedding: (B, N, L, D) -> (B, N, L, D)."""
        rows = torch.arange(self.first_row, self.first_row + stack.shape[1], device=stack.device)
        return stack + self.layer_embeddings(rows)[None, :, None, :]

    def forward(self, layer: int, stack: torch.Tensor, previous: list[torch.Tensor], *, other=None, other_mask=None
                ) -> tuple[torch.Tensor, ManagerOutput]:  # fmt: skip
        out = self.managers[layer - 1](stack, previous, other=other, other_mask=other_mask)
        return out.hidden, out


def build_inputs(cfg: ManagerTowerConfig, depth: int) -> nn.Module:
    if cfg.fusion is Fusion.METER:
        return MeterInputs()
    if cfg.fusion is Fusion.BRIDGETOWER:
        return BridgeInputs(cfg)
    return ManagedInputs(cfg, depth)
