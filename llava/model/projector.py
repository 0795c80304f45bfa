"""Multimodal projector: ``mlpNx_gelu`` (LLaVA-OV uses N = 2), ``linear`` or ``identity``.

The MLP is an ``nn.Sequential`` so parameter names are LLaVA-NeXT's (``mm_projector.0``, ``mm_projector.2``).
"""

from __future__ import annotations

from torch import nn

from llava.model.config import ProjectorKind, ProjectorSpec


def build_projector(spec: ProjectorSpec) -> nn.Module:
    if spec.kind is ProjectorKind.IDENTITY:
        return nn.Identity()
    if spec.kind is ProjectorKind.LINEAR:
        return nn.Linear(spec.in_features, spec.out_features)  # upstream keys: mm_projector.{weight,bias}
    layers: list[nn.Module] = [nn.Linear(spec.in_features, spec.out_features)]
    for _ in range(spec.depth - 1):
        # Exact (erf) GELU, as upstream's nn.GELU() and transformers' "gelu".
        layers += [nn.GELU(), nn.Linear(spec.out_features, spec.out_features)]
    return nn.Sequential(*layers)
