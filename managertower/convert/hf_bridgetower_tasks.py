"""transformers' BridgeTower task models -> our pre-training model (``TwoTowerForTask``, ``Task.PRETRAIN``), exactly.

    from managertower.convert import task_from_hf_bridgetower
    mlm = BridgeTowerForMaskedLM.from_pretrained("BridgeTower/bridgetower-base-itm-mlm")
    itm = BridgeTowerForImageAndTextRetrieval.from_pretrained("BridgeTower/bridgetower-base-itm-mlm")
    ours = task_from_hf_bridgetower(mlm, itm)  # ours.backbone, ours.heads["mlm"], ours.heads["itm"]

Each model's tensors are mapped by :class:`HFBridgeTowerTaskAdapter` (the protocol of ``vlcommon.state_dict``).
transformers loads one head class at a time, so a released ``-itm-mlm`` checkpoint comes whole only from two models;
their backbones must be equal, tensor for tensor. Our pre-training task has both heads: one that no model gives is
refused unless ``new_heads=True`` (it then starts as any new head does, from N(0, init_std)). The MLM head's
LayerNorm epsilon is transformers' top-level ``layer_norm_eps``, carried as ``config.mlm_norm_eps``.

Refused by name, since our heads cannot represent them:

* ``BridgeTowerForContrastiveLearning``: see :data:`CONTRASTIVE`;
* ``tie_word_embeddings=True``: transformers' MLM decoder is then the word-embedding table; ours is untied (as the
  original's), so a copy would match in inference and part ways at the first training step;
* ``hidden_act`` other than ``gelu``: the MLM transform's activation, which is fixed here.
"""

from __future__ import annotations

import torch
from transformers import (
    BridgeTowerForContrastiveLearning,
    BridgeTowerForImageAndTextRetrieval,
    BridgeTowerForMaskedLM,
    BridgeTowerModel,
)

from managertower.config import ManagerTowerConfig
from managertower.convert.hf_bridgetower import HFBridgeTowerAdapter, config_from_hf_bridgetower, from_hf_bridgetower
from managertower.data.arrow import Task
from managertower.tasks import TwoTowerForTask
from vlcommon.state_dict import StateDict

# Our head per transformers class, and the prefixes its keys lose (longest first): ``mlm_score.transform.dense.*``
# -> ``dense.*``, ``mlm_score.decoder.weight`` -> ``decoder.weight``, ``mlm_score.bias`` -> ``bias``,
# ``itm_score.fc.*`` -> ``fc.*``.
_HEADS = {BridgeTowerForMaskedLM: "mlm", BridgeTowerForImageAndTextRetrieval: "itm"}
_PREFIXES = {"mlm": ("mlm_score.transform.", "mlm_score."), "itm": ("itm_score.",)}
_CLASS_OF = {head: cls.__name__ for cls, head in _HEADS.items()}

CONTRASTIVE = (
    "BridgeTowerForContrastiveLearning is not converted: our ContrastiveHeads cannot represent it. Its "
    "itc_cross_modal_head (a third embedding, of the fused pair) has no counterpart; its itc_image_head projects the "
    "image after cross_modal_image_transform and the image token type, ours the vision encoder's top layer directly; "
    "its scale exp(logit_scale) is unclamped, our temperature is clamped to [0.001, 0.5]. "
    "from_hf_bridgetower(model.bridgetower) converts its backbone."
)


class HFBridgeTowerTaskAdapter:
    """One transformers task model (``head``: ``mlm`` for ``BridgeTowerForMaskedLM``, ``itm`` for
    ``BridgeTowerForImageAndTextRetrieval``) -> our ``TwoTowerForTask``: ``bridgetower.*`` -> ``backbone.*`` as
    :class:`HFBridgeTowerAdapter` maps it, the head's tensors -> ``heads.<head>.*``; any other tensor is an error,
    never dropped. ``name`` is the model's class, for the error."""

    def __init__(self, head: str, name: str | None = None) -> None:
        if head not in _PREFIXES:
            raise ValueError(f"head={head!r}: transformers' BridgeTower task models give {sorted(_PREFIXES)}")
        self.head, self.name = head, name or _CLASS_OF[head]

    def config_to_ours(self, hf_config) -> ManagerTowerConfig:
        return config_from_hf_bridgetower(hf_config)

    def to_ours(self, state_dict: StateDict) -> StateDict:
        backbone = {k.removeprefix("bridgetower."): v for k, v in state_dict.items() if k.startswith("bridgetower.")}
        state = {f"backbone.{k}": v for k, v in HFBridgeTowerAdapter().to_ours(backbone).items()}
        for key, value in state_dict.items():
            if key.startswith("bridgetower."):
                continue
            prefix = next((p for p in _PREFIXES[self.head] if key.startswith(p)), None)
            if prefix is None:
                raise ValueError(f"{self.name}: no ManagerTower parameter for {key!r}")
            state[f"heads.{self.head}.{key[len(prefix) :]}"] = value
        return state


def task_from_hf_bridgetower(*hf_models, new_heads: bool = False) -> TwoTowerForTask:
    """A ``Task.PRETRAIN`` model holding the backbone and heads of ``hf_models`` (``BridgeTowerForMaskedLM`` and/or
    ``BridgeTowerForImageAndTextRetrieval``); ``ValueError`` naming what cannot be converted."""
    if not hf_models:
        raise ValueError(
            "task_from_hf_bridgetower needs a BridgeTowerForMaskedLM or BridgeTowerForImageAndTextRetrieval"
        )
    given: dict[str, object] = {}
    for hf_model in hf_models:
        head = _head_of(hf_model)
        if head in given:
            raise ValueError(f"two {_CLASS_OF[head]} models given: each head must come from one model")
        given[head] = hf_model
    missing = [head for head in ("mlm", "itm") if head not in given]
    if missing and not new_heads:
        wanted = " and ".join(f"{_CLASS_OF[head]} (the {head} head)" for head in missing)
        raise ValueError(
            f"the pre-training model needs the mlm and itm heads; pass {wanted} loaded from the same checkpoint too, "
            "or new_heads=True to start the missing head from N(0, init_std)"
        )
    first, *others = hf_models
    for other in others:
        _require_same_backbone(first, other)
    backbone = from_hf_bridgetower(first.bridgetower)
    model = TwoTowerForTask(backbone, Task.PRETRAIN)
    for head, hf_model in given.items():  # the backbone came from the first model, checked equal to the others
        state = HFBridgeTowerTaskAdapter(head, type(hf_model).__name__).to_ours(hf_model.state_dict())
        ours = f"heads.{head}."
        model.heads[head].load_state_dict(
            {k.removeprefix(ours): v for k, v in state.items() if k.startswith(ours)}, strict=True
        )
    return model.to(next(first.parameters()).dtype)


def _head_of(hf_model) -> str:
    """Our head for a transformers task model, after checking that our head can represent it."""
    if isinstance(hf_model, BridgeTowerForContrastiveLearning):
        raise ValueError(CONTRASTIVE)
    if isinstance(hf_model, BridgeTowerModel):
        raise ValueError("a bare BridgeTowerModel has no heads: from_hf_bridgetower(model) converts it")
    for cls, head in _HEADS.items():
        if isinstance(hf_model, cls):
            if head == "mlm":
                _require_untied_gelu(hf_model)
            return head
    raise ValueError(
        f"{type(hf_model).__name__} is not a BridgeTower task model that converts "
        f"(only {', '.join(_CLASS_OF.values())})"
    )


def _require_untied_gelu(hf_model) -> None:
    config = hf_model.config
    if config.hidden_act != "gelu":
        raise ValueError(f"BridgeTowerForMaskedLM hidden_act={config.hidden_act!r}: our MLM head's activation is gelu")
    decoder = hf_model.mlm_score.decoder.weight
    words = hf_model.bridgetower.text_model.embeddings.word_embeddings.weight
    tied = getattr(config, "tie_word_embeddings", False)
    if tied or decoder.data_ptr() == words.data_ptr():
        raise ValueError(
            f"BridgeTowerForMaskedLM with tie_word_embeddings={tied}: its mlm_score.decoder.weight is the "
            "word-embedding table; our MLM decoder is untied, so training would part the two"
        )


def _require_same_backbone(first, other) -> None:
    """Heads of two models are only one model's if their backbones (config and every tensor) are equal."""
    ours, theirs = config_from_hf_bridgetower(first.config), config_from_hf_bridgetower(other.config)
    if ours != theirs:
        a, b = _flat(ours.to_dict()), _flat(theirs.to_dict())
        fields = sorted(name for name in a if a[name] != b[name])
        raise ValueError(f"the models' configs differ in {fields}: their heads are not one checkpoint's")
    a, b = first.bridgetower.state_dict(), other.bridgetower.state_dict()
    differ = sorted(
        key for key in a.keys() | b.keys()
        if key not in a or key not in b or a[key].dtype != b[key].dtype or a[key].shape != b[key].shape
        or not torch.equal(a[key], b[key].to(a[key].device))
    )  # fmt: skip
    if differ:
        raise ValueError(
            f"the models' backbones differ in {len(differ)} tensors ({differ[:3]}): their heads are not one "
            "checkpoint's"
        )


def _flat(value: dict, prefix: str = "") -> dict:
    out = {}
    for key, item in value.items():
        if isinstance(item, dict):
            out.update(_flat(item, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = item
    return out
