"""Model configuration.

``LlavaQwenConfig`` is what ``config.json`` holds: a ``Qwen2Config`` plus LLaVA-NeXT's flat ``mm_*`` fields (kept
flat and under their upstream names so released checkpoints, lmms-eval and LLaVA-NeXT tools read our files) and a
``vision_config`` sub-config (so tiny and custom towers are described by the checkpoint itself instead of a
hard-coded SigLIP default).

Code never reads the flat fields directly: :class:`MultimodalSpec` turns them into a typed, validated view at
model build time, and every component takes the part it needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from huggingface_hub.dataclasses import strict
from transformers import Qwen2Config, SiglipVisionConfig
from transformers.configuration_utils import SubConfigSpec

from llava.model.anyres import AspectRatioMode, Size, parse_grid_pinpoints
from llava.model.manager_config import ManagerConfig
from vlcommon.enums import StrEnum, member

# SigLIP so400m-patch14-384 with its last layer dropped, as LLaVA-OneVision uses it.
SIGLIP_SO400M_26 = {
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 26,
    "num_attention_heads": 16,
    "image_size": 384,
    "patch_size": 14,
    "hidden_act": "gelu_pytorch_tanh",
    "layer_norm_eps": 1e-6,
    "vision_use_head": False,
}
DEFAULT_VISION_TOWER = "google/siglip-so400m-patch14-384"
# Qwen2-0.5B, the LLM of LLaVA-OneVision-0.5B (with SIGLIP_SO400M_26: 893,618,208 parameters, the paper's 893.62M).
QWEN2_0P5B = {
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "tie_word_embeddings": True,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1e6},
}
OV_GRID_PINPOINTS = "(1x1),...,(6x6)"

_MLP_GELU = re.compile(r"^mlp(\d+)x_gelu$")


class MergeType(StrEnum):
    """``mm_patch_merge_type``: ``flat`` (crops' tokens one after another) or ``spatial_unpad`` (grid unpadded to the
    image's aspect ratio, a newline embedding after each row), as LLaVA-NeXT names them."""

    FLAT = "flat"
    SPATIAL_UNPAD = "spatial_unpad"


class PaddingSide(StrEnum):
    LEFT = "left"
    RIGHT = "right"


class ProjectorKind(StrEnum):
    MLP = "mlp"  # mlpNx_gelu
    LINEAR = "linear"
    IDENTITY = "identity"


@strict(accept_kwargs=True)
class LlavaQwenConfig(Qwen2Config):
    """Qwen2 config + LLaVA multimodal fields (upstream names) + the vision tower's config."""

    model_type = "llava_qwen"
    sub_configs_defaults = {  # noqa: RUF012 (transformers' class attribute, read by the config machinery)
        "vision_config": SubConfigSpec(
            config_class=SiglipVisionConfig, model_type="siglip_vision_model", init_kwargs=SIGLIP_SO400M_26
        ),
    }

    vision_config: dict | SiglipVisionConfig | None = None
    mm_vision_tower: str | None = DEFAULT_VISION_TOWER
    mm_hidden_size: int | None = None
    mm_projector_type: str = "mlp2x_gelu"
    mm_patch_merge_type: str = "spatial_unpad"
    mm_vision_select_layer: int = -2
    mm_vision_select_feature: str = "patch"
    image_aspect_ratio: str | None = "anyres_max_9"
    # LLaVA-OneVision's grid, as transformers' LlavaOnevisionConfig defaults it, so the default config is valid; the
    # range form is read against the tower's crop size, so it holds for tiny towers too.
    image_grid_pinpoints: list | str | None = OV_GRID_PINPOINTS
    tokenizer_padding_side: str = "right"
    tokenizer_model_max_length: int | None = None
    mm_use_im_start_end: bool = False
    mm_use_im_patch_token: bool = False
    use_mm_proj: bool = True
    # Read as a ManagerConfig: a dict (config.json, overwrite_config) or None is converted on every assignment.
    # Written to config.json as a dict, or null for the baseline.
    manager: ManagerConfig | dict | None = None

    def __post_init__(self, **kwargs):
        # A dict vision_config (e.g. read from a tiny checkpoint) only lists what differs from so400m; fill the rest
        # so a partial dict never falls back to SiglipVisionConfig's class defaults (224 px, with head).
        if isinstance(self.vision_config, dict):
            self.vision_config = {**SIGLIP_SO400M_26, **self.vision_config}
        super().__post_init__(**kwargs)
        if self.mm_hidden_size is None:
            self.mm_hidden_size = self.vision_config.hidden_size

    def __setattr__(self, name, value):
        if name == "manager" and not isinstance(value, ManagerConfig):
            value = ManagerConfig.from_dict(value)  # unknown fields and bad values fail here, naming them
        super().__setattr__(name, value)

    def to_dict(self) -> dict:
        out = super().to_dict()
        manager = out.get("manager")
        if isinstance(manager, ManagerConfig):
            out["manager"] = manager.to_dict() if manager.enabled else None
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class ProjectorSpec:
    kind: ProjectorKind
    depth: int
    in_features: int
    out_features: int


@dataclass(frozen=True, kw_only=True, slots=True)
class MultimodalSpec:
    """Typed, validated view of the multimodal part of a :class:`LlavaQwenConfig`."""

    projector: ProjectorSpec
    merge_type: MergeType
    aspect_ratio: AspectRatioMode
    grid_pinpoints: tuple[Size, ...]
    crop_size: int
    tokens_per_side: int
    padding_side: PaddingSide
    max_length: int | None
    manager: ManagerConfig

    @property
    def use_newline(self) -> bool:
        return self.merge_type is MergeType.SPATIAL_UNPAD

    @classmethod
    def from_config(cls, config: LlavaQwenConfig) -> MultimodalSpec:
        vision = config.vision_config
        if config.mm_hidden_size != vision.hidden_size:
            raise ValueError(
                f"mm_hidden_size={config.mm_hidden_size} does not match vision_config.hidden_size={vision.hidden_size}"
            )
        merge_type = member(MergeType, config.mm_patch_merge_type, "mm_patch_merge_type")
        padding_side = member(PaddingSide, config.tokenizer_padding_side, "tokenizer_padding_side")
        max_length = config.tokenizer_model_max_length
        if max_length is not None and max_length <= 0:
            raise ValueError(f"tokenizer_model_max_length={max_length} must be positive")
        aspect_ratio = AspectRatioMode.parse(config.image_aspect_ratio)
        manager = config.manager
        manager.validate(vision_layers=vision.num_hidden_layers, llm_layers=config.num_hidden_layers)
        # No default is filled in: process_images reads the config's own field, so a pinpoint list invented here
        # would build a model that the image pipeline then disagrees with.
        if aspect_ratio.is_anyres and config.image_grid_pinpoints is None:
            raise ValueError(
                f"image_aspect_ratio={config.image_aspect_ratio!r} needs image_grid_pinpoints (e.g. "
                f"{OV_GRID_PINPOINTS!r}, LLaVA-OneVision's)"
            )
        pinpoints = (
            ()
            if config.image_grid_pinpoints is None
            else parse_grid_pinpoints(config.image_grid_pinpoints, vision.image_size)
        )
        return cls(
            projector=_projector_spec(config),
            merge_type=merge_type,
            aspect_ratio=aspect_ratio,
            grid_pinpoints=pinpoints,
            crop_size=vision.image_size,
            tokens_per_side=vision.image_size // vision.patch_size,
            padding_side=padding_side,
            max_length=max_length,
            manager=manager,
        )


def _projector_spec(config: LlavaQwenConfig) -> ProjectorSpec:
    kind = config.mm_projector_type
    common = {"in_features": config.mm_hidden_size, "out_features": config.hidden_size}
    if match := _MLP_GELU.match(kind):
        depth = int(match.group(1))
        if depth < 1:
            raise ValueError(f"mm_projector_type={kind!r}: depth must be >= 1")
        return ProjectorSpec(kind=ProjectorKind.MLP, depth=depth, **common)
    if kind in ("linear", "identity"):
        if kind == "identity" and config.mm_hidden_size != config.hidden_size:
            raise ValueError(
                f"mm_projector_type='identity' needs mm_hidden_size ({config.mm_hidden_size}) == hidden_size "
                f"({config.hidden_size})"
            )
        return ProjectorSpec(kind=ProjectorKind(kind), depth=1, **common)
    raise ValueError(f"mm_projector_type={kind!r} is not supported; expected 'mlpNx_gelu', 'linear' or 'identity'")


def ov_0p5b_config(**overrides) -> LlavaQwenConfig:
    """The real-size LLaVA-OV-0.5B architecture (+Grid: anyres_max_9 over the 6 x 6 pinpoints), for budgets and
    random-initialised GPU runs; ``overrides`` go to ``LlavaQwenConfig`` unchanged."""
    fields = dict(
        QWEN2_0P5B,
        image_aspect_ratio="anyres_max_9",
        image_grid_pinpoints=OV_GRID_PINPOINTS,
        mm_patch_merge_type="spatial_unpad",
        mm_projector_type="mlp2x_gelu",
    )
    return LlavaQwenConfig(**{**fields, **overrides})
