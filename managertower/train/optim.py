"""The original's optimiser groups, decided by module instead of by substrings of parameter names.

Learning rates (``lr_mult_head``, ``lr_mult_cross_modal``) are :class:`LrScale` values: a multiplier of the base lr
or an absolute lr. On the command line an integer multiplies (``5`` -> 5 x lr) and a number with a point or an
exponent is an absolute lr (``2e-5``), as the original reads an int or a float.

* head (``lr_mult_head``): MLM, ITM, the VQA / SNLI-VE / NLVR2 classifiers;
* cross-modal (``lr_mult_cross_modal``): the input projections, co-attention layers, poolers, link towers and
  managers (not their layer embeddings), the ITC projections;
* base (``learning_rate``): RoBERTa, CLIP, the token-type table, the managers' layer embeddings, the ITC
  temperature.

Weight decay applies to every parameter but biases (each module's ``bias`` and ``nn.MultiheadAttention``'s
``in_proj_bias`` / ``bias_k`` / ``bias_v``: what the original's ``"bias" in name`` catches) and the weights of the
LayerNorms the original names ``LayerNorm`` / ``norm`` (chosen by module type, in the modules where the original
has them): RoBERTa's, the co-attention layers', BridgeTower's input and link norms, the MLM head's, the fused
query's norm of the other modality (``extra_query_LayerNorm``).
The original's name rules make three quirks, reproduced: CLIP's ``ln_*`` weights, the managers' per-input
LayerNorm weights and the classifiers' LayerNorm weights (``Sequential`` index names) *are* decayed, as are the
managers' scores and temperatures and the ITC temperature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from managertower.inputs import BridgeInputs, ManagedInputs
from managertower.tasks import TwoTowerForTask

# How the command line spells a multiplier (``--lr_mult_head 5``); anything else that reads as a number is an lr.
_INTEGER = re.compile(r"^[+]?\d+$")
# nn.MultiheadAttention's own biases (the packed input projection's, and the extra key / value rows).
_ATTENTION_BIASES = ("in_proj_bias", "bias_k", "bias_v")


@dataclass(frozen=True, slots=True)
class LrScale:
    """A group's learning rate: ``multiplier`` x the base lr, or an ``absolute`` lr; exactly one is given.

    The command line's ``"5"`` is ``LrScale(multiplier=5)`` and ``"5.0"`` / ``"2e-5"`` is ``LrScale(absolute=...)``
    (:meth:`parse`, the only place that reads the spelling); recipes and run configs hold the typed value."""

    multiplier: int | None = None
    absolute: float | None = None

    def __post_init__(self) -> None:
        if (self.multiplier is None) == (self.absolute is None):
            raise ValueError(f"{self}: give a multiplier or an absolute learning rate, exactly one")
        if self.multiplier is not None and (isinstance(self.multiplier, bool) or not isinstance(self.multiplier, int)):
            raise ValueError(f"{self}: the multiplier must be an integer (an absolute lr is the other field)")
        value = self.multiplier if self.multiplier is not None else self.absolute
        if not value > 0:
            raise ValueError(f"{self}: must be > 0")

    @classmethod
    def parse(cls, spec: str, *, name: str) -> LrScale:
        """``"5"`` -> x5; ``"2e-5"`` or ``"0.5"`` -> that lr, as the original reads an int or a float."""
        text = str(spec).strip()
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{name}={spec!r}: expected an integer multiplier or an absolute learning rate") from None
        if not value > 0:
            raise ValueError(f"{name}={spec!r} must be > 0")
        return cls(multiplier=int(text)) if _INTEGER.match(text) else cls(absolute=value)

    def flag(self) -> str:
        """The command line's spelling, which :meth:`parse` reads back as this value."""
        return str(self.multiplier) if self.multiplier is not None else repr(float(self.absolute))

    def resolve(self, base: float) -> float:
        return base * self.multiplier if self.multiplier is not None else self.absolute


def _modules_by_group(model: TwoTowerForTask) -> tuple[list[nn.Module], list[nn.Module]]:
    b = model.backbone
    heads = [model.heads]
    cross = [
        b.cross_modal_text_transform,
        b.cross_modal_image_transform,
        b.cross_modal_text_layers,
        b.cross_modal_image_layers,
        b.cross_modal_text_pooler,
        b.cross_modal_image_pooler,
    ]
    for inputs in (b.text_inputs, b.image_inputs):
        cross.append(inputs.managers if isinstance(inputs, ManagedInputs) else inputs)
    if model.itc is not None:
        cross += [model.itc.text, model.itc.image]
    return heads, cross


def _undecayed_norms(model: TwoTowerForTask) -> list[nn.LayerNorm]:
    b, norms = model.backbone, []
    scopes: list[nn.Module] = [b.text_model, b.cross_modal_text_layers, b.cross_modal_image_layers]
    scopes += [inputs for inputs in (b.text_inputs, b.image_inputs) if isinstance(inputs, BridgeInputs)]
    if "mlm" in model.heads:
        norms.append(model.heads["mlm"].LayerNorm)
    for inputs in (b.text_inputs, b.image_inputs):
        if isinstance(inputs, ManagedInputs):
            # The fused query's norm of the other modality: the original's ``extra_query_LayerNorm``.
            norms += [m.other_norm for m in inputs.managers if isinstance(getattr(m, "other_norm", None), nn.LayerNorm)]
    for scope in scopes:
        norms += [m for m in scope.modules() if isinstance(m, nn.LayerNorm)]
    return norms


def _is_bias(module: nn.Module, name: str) -> bool:
    """``module.<name>`` is a bias: exactly the attribute names of biases, not a substring of any name."""
    return name == "bias" or (isinstance(module, nn.MultiheadAttention) and name in _ATTENTION_BIASES)


def parameter_groups(model: TwoTowerForTask, *, lr: float, head_lr: float, cross_lr: float, weight_decay: float):
    """AdamW groups ``{"name", "params", "lr", "weight_decay"}``: (head, cross-modal, base) x (decay, no decay),
    the empty ones left out. Every trainable parameter lands in exactly one group."""
    heads, cross = _modules_by_group(model)
    group_of = {id(p): "head" for m in heads for p in m.parameters()}
    group_of.update({id(p): "cross_modal" for m in cross for p in m.parameters()})
    no_decay = {id(norm.weight) for norm in _undecayed_norms(model)}
    no_decay |= {id(p) for m in model.modules() for name, p in m.named_parameters(recurse=False) if _is_bias(m, name)}
    rates = {"head": head_lr, "cross_modal": cross_lr, "base": lr}
    buckets: dict[tuple[str, bool], list] = {}
    for param in model.parameters():
        if param.requires_grad:
            key = (group_of.get(id(param), "base"), id(param) not in no_decay)
            buckets.setdefault(key, []).append(param)
    return [
        {
            "name": f"{group}{'' if decay else '_no_decay'}",
            "params": params,
            "lr": rates[group],
            "weight_decay": weight_decay if decay else 0.0,
        }
        for (group, decay), params in sorted(buckets.items())
    ]
