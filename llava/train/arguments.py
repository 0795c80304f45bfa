"""Command-line arguments of ``llava.train.train``: LLaVA-NeXT's names and meanings, plus typed manager flags.

Multimodal fields default to ``None``. A stage that starts from a plain LLM then gets LLaVA-NeXT's defaults
(``square``, ``flat``, ``linear``); a stage that starts from a LLaVA checkpoint keeps what its config says, with a
warning where LLaVA-NeXT would have re-applied its defaults (silently changing the model in a later stage).

Flags LLaVA-NeXT scripts pass that have no effect here are accepted and warned about (``lazy_preprocess``: data is
always lazy; ``mm_use_im_start_end`` / ``mm_use_im_patch_token`` must stay off, as for OneVision).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
import transformers

from llava.data.packing import PackingStrategy
from llava.model.manager_config import (
    ExpertChoice,
    ExpertPreset,
    InjectChoice,
    InjectionTargets,
    InjectPreset,
    ManagerChoice,
    ManagerType,
)
from vlcommon.arguments import BadSampleArguments, RunArguments
from vlcommon.enums import member


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        metadata={"help": "a LLaVA-OV checkpoint, or a plain Qwen2 LLM (with --vision_tower)"}
    )
    version: str = field(default="qwen_1_5", metadata={"help": "conversation template: plain | qwen_1_5"})
    vision_tower: str | None = field(
        default=None, metadata={"help": "SigLIP checkpoint when starting from a plain LLM"}
    )
    mm_tunable_parts: str | None = field(
        default=None,
        metadata={"help": "comma list of mm_mlp_adapter, mm_manager, mm_vision_tower, mm_language_model"},
    )
    tune_mm_mlp_adapter: bool = False
    unfreeze_mm_vision_tower: bool = False
    pretrain_mm_mlp_adapter: str | None = field(
        default=None,
        metadata={"help": "stage-1 output: mm_adapter.safetensors (ours) or mm_projector.bin (LLaVA-NeXT)"},
    )
    mm_projector_type: str | None = None
    mm_vision_select_layer: int | None = None
    mm_vision_select_feature: str | None = None
    mm_patch_merge_type: str | None = None
    mm_use_im_start_end: bool = False
    mm_use_im_patch_token: bool = False
    manager_type: str | None = field(default=None, metadata={"help": "none | saum | aaum"})
    manager_expert_layers: str | None = field(
        default=None, metadata={"help": "top_half | bottom_half | all | last:K | explicit '14,15,...' (1-based)"}
    )
    manager_inject_layers: str | None = field(
        default=None, metadata={"help": "count:N | interval:K | explicit '0,4,8' (0-based decoder layers)"}
    )
    manager_targets: str | None = field(default=None, metadata={"help": "all | base | grid"})
    manager_jitter: float | None = None


@dataclass
class DataArguments(BadSampleArguments):
    data_path: str = field(metadata={"help": "a .json/.jsonl file, dir/{a,b}.json, or a .yaml mixture"})
    image_folder: str | None = None
    image_aspect_ratio: str | None = None
    image_grid_pinpoints: str | None = None
    unmask_chat_tokens: bool = field(
        default=True,
        metadata={
            "help": "keep LLaVA-NeXT's unmasked '\\n'/<|im_start|>/<|im_end|> labels (default, "
            "reproduces released checkpoints)"
        },
    )
    keep_empty_answers: bool = field(
        default=False,
        metadata={
            "help": "train on records with an empty assistant answer (skipped and counted by "
            "default: they teach an immediate <|im_end|>)"
        },
    )
    lazy_preprocess: bool = True
    is_multimodal: bool = True
    early_mix_text: bool = False
    video_folder: str | None = None
    frames_upbound: int = 0


@dataclass
class TrainingArguments(RunArguments, transformers.TrainingArguments):
    optim: str = "adamw_torch"
    remove_unused_columns: bool = False
    model_max_length: int = field(default=4096, metadata={"help": "tokens after image expansion"})
    mm_projector_lr: float | None = None
    mm_vision_tower_lr: float | None = None
    mm_manager_lr: float | None = None
    group_by_modality_length: bool = False
    packing: bool = field(
        default=False,
        metadata={"help": "pack samples into rows under --packing_max_tokens (padding-free; changes batch makeup)"},
    )
    packing_max_tokens: int | None = field(
        default=None, metadata={"help": "expanded tokens per packed row (default: --model_max_length)"}
    )
    packing_strategy: PackingStrategy = field(
        default="first_fit",
        metadata={"help": "row planner: first_fit (a few open rows, fuller) or greedy (cut the order in turn)"},
    )
    attn_implementation: str = field(
        default="flash_attention_2", metadata={"help": "falls back to sdpa without flash-attn"}
    )
    bits: int = 16
    lora_enable: bool = False
    evaluation_strategy: str | None = field(default=None, metadata={"help": "old name of eval_strategy"})
    warmup_ratio: float | None = field(
        default=None,
        metadata={"help": "share of steps for warmup (LLaVA-NeXT's flag; transformers 5 folds it into warmup_steps)"},
    )

    def __post_init__(self) -> None:
        # LLaVA-NeXT checkpoints activations by default and scripts pass the old flag name: honour it quietly.
        if self.activation_checkpointing is None:
            self.activation_checkpointing = True if self.gradient_checkpointing is None else self.gradient_checkpointing
        if self.evaluation_strategy is not None:
            self.eval_strategy = self.evaluation_strategy
        if self.warmup_ratio is not None:
            if not 0 <= self.warmup_ratio < 1:
                raise ValueError(f"warmup_ratio={self.warmup_ratio} must be in [0, 1)")
            if self.warmup_steps:
                raise ValueError("give warmup_ratio or warmup_steps, not both")
            self.warmup_steps = self.warmup_ratio
        if self.packing:
            self.packing_max_tokens = self.packing_max_tokens or self.model_max_length
            if self.packing_max_tokens < self.model_max_length:
                raise ValueError(
                    f"packing_max_tokens={self.packing_max_tokens} must be >= model_max_length={self.model_max_length}"
                    " (a row must hold the longest sample)"
                )
            if self.per_device_train_batch_size != 1:
                warnings.warn(
                    f"per_device_train_batch_size={self.per_device_train_batch_size} has no effect with --packing: a "
                    "micro-batch is one row of --packing_max_tokens tokens",
                    stacklevel=1,
                )
        elif self.packing_max_tokens is not None:
            warnings.warn("packing_max_tokens has no effect without --packing True", stacklevel=1)
        if not self.packing and self.packing_strategy != "first_fit":
            warnings.warn("packing_strategy has no effect without --packing True", stacklevel=1)
        if self.tf32 and not torch.cuda.is_available():
            # LLaVA-NeXT's scripts pass --tf32 True; transformers refuses it without an Ampere GPU. On a machine
            # without CUDA (a laptop run of an upstream script) it can only mean nothing.
            warnings.warn("tf32 has no effect without a CUDA device; ignored", stacklevel=1)
            self.tf32 = None
        if self.bits != 16:
            raise ValueError(f"bits={self.bits}: quantized training is not supported (load 4/8-bit for inference only)")
        if self.lora_enable:
            raise ValueError("lora_enable: LoRA training is not supported by this package")
        if self.model_max_length <= 0:
            raise ValueError(f"model_max_length={self.model_max_length} must be positive")
        super().__post_init__()  # RunArguments (checks --deepspeed), then transformers


def check_compat_flags(model_args: ModelArguments, data_args: DataArguments) -> None:
    """Reject what would change the model silently; warn about flags kept only for script compatibility."""
    if model_args.mm_use_im_start_end or model_args.mm_use_im_patch_token:
        raise ValueError("mm_use_im_start_end / mm_use_im_patch_token are not supported (LLaVA-OV trains without them)")
    if model_args.mm_vision_select_feature not in (None, "patch"):
        raise ValueError(f"mm_vision_select_feature={model_args.mm_vision_select_feature!r}: only 'patch' is supported")
    if data_args.early_mix_text:
        warnings.warn("early_mix_text has no effect: text-only samples are grouped by modality as usual", stacklevel=2)
    if data_args.video_folder or data_args.frames_upbound:
        warnings.warn(
            "video_folder / frames_upbound have no effect: video samples are skipped and counted", stacklevel=2
        )
    if not data_args.lazy_preprocess or not data_args.is_multimodal:
        warnings.warn(
            "lazy_preprocess / is_multimodal have no effect: data is always lazy and multimodal", stacklevel=2
        )


def manager_choice(model_args: ModelArguments) -> ManagerChoice:
    """The ``--manager_*`` flags, read once into typed values (LLaVA-NeXT-style strings end here)."""
    a = model_args
    return ManagerChoice(
        type=None if a.manager_type is None else member(ManagerType, a.manager_type, "--manager_type"),
        experts=None if a.manager_expert_layers is None else parse_expert_choice(a.manager_expert_layers),
        inject=None if a.manager_inject_layers is None else parse_inject_choice(a.manager_inject_layers),
        targets=None if a.manager_targets is None else member(InjectionTargets, a.manager_targets, "--manager_targets"),
        jitter=a.manager_jitter,
    )


def parse_expert_choice(value: str, flag: str = "--manager_expert_layers") -> ExpertChoice:
    """``top_half`` | ``bottom_half`` | ``all`` | ``last:K`` | ``14,15,...`` (1-based)."""
    if value.startswith("last:"):
        return ExpertChoice(preset=ExpertPreset.LAST, k=_ints(value.split(":", 1)[1], flag, value)[0])
    if value in (ExpertPreset.TOP_HALF, ExpertPreset.BOTTOM_HALF, ExpertPreset.ALL):
        return ExpertChoice(preset=ExpertPreset(value))
    return ExpertChoice(preset=ExpertPreset.EXPLICIT, layers=_ints(value, flag, value))


def parse_inject_choice(value: str, flag: str = "--manager_inject_layers") -> InjectChoice:
    """``count:N`` | ``interval:K`` | ``0,4,8`` (0-based decoder layers)."""
    kind, _, number = value.partition(":")
    if kind in (InjectPreset.COUNT, InjectPreset.INTERVAL) and number:
        return InjectChoice(preset=InjectPreset(kind), n=_ints(number, flag, value)[0])
    return InjectChoice(preset=InjectPreset.EXPLICIT, n=None, layers=_ints(value, flag, value))


def _ints(text: str, flag: str, value: str) -> tuple[int, ...]:
    try:
        numbers = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        numbers = ()
    if not numbers:
        raise ValueError(f"{flag}={value!r}: expected a preset or a comma list of integers")
    return numbers
