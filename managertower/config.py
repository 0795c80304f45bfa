"""Typed configuration of the Two-Tower family: METER, BridgeTower and ManagerTower (paper Sec. III-IV, App. B).

One keyword-only dataclass per component, validated when it is built (``__post_init__``) and again against the
encoders' depths (:meth:`ManagerTowerConfig.validate`), so a bad config fails before any weight exists. Layer
indices are 1-based like the paper's (``T_7 .. T_12`` are the top six of a 12-layer RoBERTa); the managers'
experts are always the top ``experts`` layers of each encoder (the paper's Fig. 6 varies that N).
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, field, fields
from typing import Literal

from vlcommon.enums import StrEnum, member


class Fusion(StrEnum):
    """How the unimodal encoders feed the cross-modal encoder."""

    METER = "meter"  # the last unimodal layer into cross-modal layer 1 only
    BRIDGETOWER = "bridgetower"  # unimodal layer L-L_C+l into cross-modal layer l through a link tower
    MANAGERTOWER = "managertower"  # a manager in every cross-modal layer aggregates the top N unimodal layers


class LinkType(StrEnum):
    """BridgeTower's link towers (transformers' ``link_tower_type``): LN(a+b), LN(a*s+b), LN(a(1-beta)+b*beta)."""

    ADD = "add"
    SCALED_ADD = "scaled_add"
    INTERPOLATE = "interpolate"


class ManagerKind(StrEnum):
    SAM = "sam"  # Eq. 4: static weights over the N unimodal layers and all previous cross-modal outputs
    SAUM = "saum"  # Eq. 5: static weights over the N unimodal layers plus the previous cross-modal output
    AAUM = "aaum"  # Eq. 6-7: per-token weights generated from a query; layer 1 is always SAUM (Sec. III-D)


class WeightShape(StrEnum):
    """Shape of a static manager's learned weights (Table I): one scalar per input, or one per input and channel."""

    SCALAR = "n1"  # N x 1
    CHANNEL = "nd"  # N x D


class Query(StrEnum):
    """What an AAUM generates its weights from (Table I)."""

    OWN = "own"  # C^V_{l-1}: the previous output of its own modality (Eq. 7)
    FUSED = "fused"  # CA(C^V_{l-1}, C^T_{l-1}): the cross-modal fused query


class Generator(StrEnum):
    """How an AAUM turns its query into per-token weights over the N unimodal layers (Eq. 7, Algorithm B-E)."""

    LINEAR = "linear"  # softmax(query W_M + eps): N x L weights
    CONCAT_ATTENTION = "concat_attention"  # attention of [V; C] tokens: N x L x D weights
    CROSS_ATTENTION = "cross_attention"  # query tokens attend to the N layers' first tokens: N x L weights


def _positive(obj, *names: str) -> None:
    for name in names:
        if getattr(obj, name) < 1:
            raise ValueError(f"{type(obj).__name__}.{name}={getattr(obj, name)} must be >= 1")


@dataclass(frozen=True, kw_only=True, slots=True)
class TextEncoderConfig:
    """RoBERTa (transformers' ``RobertaModel``); the defaults are roberta-base."""

    vocab_size: int = 50265
    hidden_size: int = 768
    layers: int = 12
    heads: int = 12
    intermediate_size: int = 3072
    max_positions: int = 514
    pad_token_id: int = 1
    layer_norm_eps: float = 1e-5
    dropout: float = 0.1

    def __post_init__(self) -> None:
        _positive(self, "vocab_size", "hidden_size", "layers", "heads", "intermediate_size", "max_positions")
        if self.hidden_size % self.heads:
            raise ValueError(f"text hidden_size={self.hidden_size} is not divisible by heads={self.heads}")


@dataclass(frozen=True, kw_only=True, slots=True)
class VisionEncoderConfig:
    """CLIP ViT (transformers' ``BridgeTowerVisionModel``: every layer through the shared ``ln_post``); ViT-B/16.

    ``image_size`` fixes the position-embedding table; loaders resize a checkpoint's table to it once (bicubic), as
    the original did, instead of interpolating at every forward (paper Table V: 224, 288, 384, 576)."""

    hidden_size: int = 768  # CLIP's heads are hidden_size / 64
    layers: int = 12
    patch_size: int = 16
    image_size: int = 288
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        _positive(self, "hidden_size", "layers", "patch_size", "image_size")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size={self.image_size} is not a multiple of patch_size={self.patch_size}")
        if self.hidden_size % 64:
            raise ValueError(f"vision hidden_size={self.hidden_size} must be a multiple of 64 (CLIP's head width)")

    @property
    def tokens(self) -> int:
        """Class token plus patches: 325 at 288 px, 577 at 384 px."""
        return 1 + (self.image_size // self.patch_size) ** 2


@dataclass(frozen=True, kw_only=True, slots=True)
class CrossModalConfig:
    """The co-attention encoder: ``layers`` (the paper's L_C) post-LN BERT layers per modality.

    ``layer_norm_eps`` is the co-attention layers' own (transformers' BridgeTower takes the text config's, 1e-5; the
    original code left BERT's 1e-12); ``input_norm_eps`` that of the LayerNorms in front of them: BridgeTower's
    layer-1 norm and link towers (transformers' top-level ``layer_norm_eps``) and every manager's (1e-5)."""

    layers: int = 6
    hidden_size: int = 768
    heads: int = 12
    intermediate_size: int = 3072
    layer_norm_eps: float = 1e-5
    input_norm_eps: float = 1e-5
    dropout: float = 0.1

    def __post_init__(self) -> None:
        _positive(self, "layers", "hidden_size", "heads", "intermediate_size")
        if self.hidden_size % self.heads:
            raise ValueError(f"cross-modal hidden_size={self.hidden_size} is not divisible by heads={self.heads}")


@dataclass(frozen=True, kw_only=True, slots=True)
class TwoTowerManagerConfig:
    """The managers of ``Fusion.MANAGERTOWER`` (ignored by the other fusions). ``type`` says which manager, as in
    LLaVA's ``ManagerConfig`` (``llava.model.manager_config``); configs written before say ``kind``, still read."""

    type: ManagerKind = ManagerKind.AAUM
    experts: int = 6  # N: the top N layers of each encoder
    weights: WeightShape = WeightShape.CHANNEL  # SAM / SAUM (and AAUM's layer-1 SAUM)
    query: Query = Query.FUSED
    generator: Generator = Generator.LINEAR
    # SAM: True is the paper's "average" initialisation 1/(N+l-1) over every input; False splits it into 1/N for the
    # unimodal part and 1/(l-1) for the cross-modal part with its own temperature (Sec. III-A, the better of the two).
    sam_average_init: bool = False
    temperature: float = 1.0  # initial softmax temperature (learned)
    # Exploration noise eps ~ N(0, 1/N^2) on the unimodal scores before the softmax, in training only. The paper
    # (Eq. 7) adds it in AAUMs, one draw per token and expert; the original code also adds it to the static
    # managers' scores and draws it per channel too ([B, N, L, D]): ``static_noise`` and ``noise_per_channel``.
    noise: bool = True
    static_noise: bool = False
    noise_per_channel: bool = False
    # An image AAUM's fused query attends over the text tokens; the original code does not mask the padded ones.
    mask_fused_query: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", member(ManagerKind, self.type, "manager type"))
        object.__setattr__(self, "weights", member(WeightShape, self.weights, "manager weights"))
        object.__setattr__(self, "query", member(Query, self.query, "manager query"))
        object.__setattr__(self, "generator", member(Generator, self.generator, "manager generator"))
        _positive(self, "experts")
        if self.temperature <= 0:
            raise ValueError(f"manager temperature={self.temperature} must be > 0")


@dataclass(frozen=True, kw_only=True, slots=True)
class ManagerTowerConfig:
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    vision: VisionEncoderConfig = field(default_factory=VisionEncoderConfig)
    cross: CrossModalConfig = field(default_factory=CrossModalConfig)
    fusion: Fusion = Fusion.MANAGERTOWER
    link: LinkType = LinkType.ADD  # Fusion.BRIDGETOWER
    manager: TwoTowerManagerConfig = field(default_factory=TwoTowerManagerConfig)
    token_types: int = 2  # text 0, image 1 (NLVR2 grows the table to 3: a second image is type 2)
    # Attention kernel of the text encoder and the cross-modal layers; every call gets an explicit mask, so "sdpa"
    # cannot fall back to the causal self-attention transformers' cross layer is built with (is_causal=True).
    attention: Literal["eager", "sdpa"] = "eager"
    init_std: float = 0.02  # N(0, std) for every new Linear/Embedding (the original's init_weights)
    # The MLM head's LayerNorm: BERT's 1e-12 in the original code (its MLM head is BERT's); transformers'
    # BridgeTowerForMaskedLM takes its top-level layer_norm_eps (1e-5), which the converter carries here. A config
    # saved before this field existed has no such key and so reads back as 1e-12, the epsilon it was trained with.
    mlm_norm_eps: float = 1e-12

    def __post_init__(self) -> None:
        object.__setattr__(self, "fusion", member(Fusion, self.fusion, "fusion"))
        object.__setattr__(self, "link", member(LinkType, self.link, "link"))
        if self.attention not in ("eager", "sdpa"):
            raise ValueError(f"attention={self.attention!r} is not one of ('eager', 'sdpa')")
        if self.token_types < 2:
            raise ValueError(f"token_types={self.token_types} must be >= 2 (text and image)")
        if not self.mlm_norm_eps > 0:
            raise ValueError(f"mlm_norm_eps={self.mlm_norm_eps} must be > 0")
        self.validate()

    @property
    def experts(self) -> int:
        """Unimodal layers each modality contributes: N for managers, L_C for BridgeTower, 1 for METER."""
        if self.fusion is Fusion.METER:
            return 1
        if self.fusion is Fusion.BRIDGETOWER:
            return self.cross.layers
        return self.manager.experts

    def expert_layers(self, depth: int) -> tuple[int, ...]:
        """1-based indices of the unimodal layers used from an encoder of ``depth`` layers."""
        return tuple(range(depth - self.experts + 1, depth + 1))

    def validate(self) -> None:
        """Depths against what the fusion needs; raises ``ValueError`` naming the field."""
        for name, depth in (("text", self.text.layers), ("vision", self.vision.layers)):
            if self.experts > depth:
                raise ValueError(
                    f"{self.fusion} needs the top {self.experts} layers of the {name} encoder, which has {depth}"
                )

    def to_dict(self) -> dict:
        """Plain JSON values (enums as strings)."""
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, value: dict) -> ManagerTowerConfig:
        parts = {"text": TextEncoderConfig, "vision": VisionEncoderConfig, "cross": CrossModalConfig,
                 "manager": TwoTowerManagerConfig}  # fmt: skip
        if not isinstance(value, dict):
            raise ValueError(f"a ManagerTowerConfig is a JSON object, got {type(value).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown ManagerTowerConfig fields {unknown}")
        args = {}
        for name, item in value.items():
            if name in parts:
                if not isinstance(item, dict):
                    raise ValueError(f"{name}: expected an object of {parts[name].__name__} fields, got {item!r}")
                if name == "manager" and "kind" in item:  # configs written before ``type`` took the name
                    item = {**{k: v for k, v in item.items() if k != "kind"},
                            "type": member(ManagerKind, item["kind"], "manager kind")}  # fmt: skip
                extra = sorted(set(item) - set(inspect.signature(parts[name]).parameters))
                if extra:
                    raise ValueError(f"unknown {name} config fields {extra}")
                item = _built(parts[name], item, name)
            args[name] = item
        return _built(cls, args, "config")


def _built(kind, values: dict, name: str):
    """``kind(**values)``; a value of the wrong type (``"layers": "six"``) is a ``ValueError`` naming the part,
    not the ``TypeError`` of a comparison deep in its validation."""
    try:
        return kind(**values)
    except TypeError as error:
        raise ValueError(f"{name}: a field has a value of the wrong type ({error})") from error


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, StrEnum):
        return str(value)
    return value
