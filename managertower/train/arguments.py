"""Command-line flags of ``python -m managertower.train.train`` (the original's config keys, typed).

Defaults are the original's base config: AdamW betas (0.9, 0.98), eps 1e-8, weight decay 0.01, linear decay to 0
after a warm-up given as a fraction (``--warmup_steps 0.1``), head and cross-modal lr x5, fp32. A launcher's
``--run_config`` (``managertower.train.recipes.RunConfig``) replaces these defaults with a recipe's typed values;
flags on the command line still win. The resume, run-config and bad-sample flags are both entries'
(``vlcommon.arguments``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import transformers

from managertower.data.arrow import Task
from managertower.data.transforms import TransformKind
from managertower.train.optim import LrScale
from managertower.train.recipes import RECIPES
from vlcommon.arguments import BadSampleArguments, RunArguments

# Without --transform, a task trains with its recipe's augmentation (Tables IX, XIV).
DEFAULT_TRANSFORM = {task: RECIPES[task.value].transform for task in Task}


@dataclass
class ModelArguments:
    model_config: str | None = field(default=None, metadata={"help": "a config.json (ManagerTowerConfig)"})
    preset: str | None = field(
        default=None, metadata={"help": "meter | bridgetower | managertower | table1/... | table2/... (on the config)"}
    )
    image_size: int | None = field(default=None, metadata={"help": "replaces the config's image size"})
    init_from: str | None = field(
        default=None, metadata={"help": "a pre-trained Two-Tower folder (config.json + model.safetensors)"}
    )
    text_expert: str | None = field(default=None, metadata={"help": "RoBERTa weights (a transformers folder)"})
    vision_expert: str | None = field(default=None, metadata={"help": "CLIP weights (OpenAI archive or transformers)"})
    tokenizer: str = field(default="roberta-base", metadata={"help": "a tokenizer folder or name"})
    head_hidden_scale: int = 1
    nlvr2_drop_rate: float = 0.0


@dataclass
class DataArguments(BadSampleArguments):
    data_root: str = field(metadata={"help": "the folder of .arrow tables (python -m managertower.data.build)"})
    # Not required by the parser: a --run_config gives it; without either, __post_init__ says so.
    task: Task | None = field(default=None, metadata={"help": "pretrain | vqa | snli_ve | nlvr2 | f30k"})
    transform: TransformKind | None = field(default=None, metadata={"help": "training augmentation (task default)"})
    max_text_len: int = 50
    mlm_probability: float = 0.15

    def __post_init__(self) -> None:
        if self.task is None:
            raise ValueError("--task is not set: give --task (pretrain | vqa | snli_ve | nlvr2 | f30k) or --run_config")
        self.task = Task(self.task)
        self.transform = TransformKind(self.transform) if self.transform is not None else None
        if not 0 < self.mlm_probability < 1:
            raise ValueError(f"mlm_probability={self.mlm_probability} must be in (0, 1)")


@dataclass
class TrainingArguments(RunArguments, transformers.TrainingArguments):
    adam_beta2: float = 0.98
    adam_epsilon: float = 1e-8
    weight_decay: float = 0.01
    warmup_steps: float = 0.1
    lr_scheduler_type: str = "linear"
    max_grad_norm: float = 0.0  # the original never clips gradients
    remove_unused_columns: bool = False
    lr_mult_head: str = field(default="5", metadata={"help": "an integer multiplies --learning_rate; 2e-5 is an lr"})
    lr_mult_cross_modal: str = field(default="5", metadata={"help": "as --lr_mult_head"})
    # The two flags above as typed values, read once here; the optimiser uses only these.
    head_lr_scale: LrScale = field(init=False)
    cross_lr_scale: LrScale = field(init=False)
    k_test: int = field(default=128, metadata={"help": "retrieval: ITC candidates reranked by ITM"})
    results_name: str | None = field(default=None, metadata={"help": "the run's name in results.json (the preset)"})

    def __post_init__(self) -> None:
        self.head_lr_scale = _lr_scale(self.lr_mult_head, "lr_mult_head")
        self.cross_lr_scale = _lr_scale(self.lr_mult_cross_modal, "lr_mult_cross_modal")
        # The string fields keep the command line's spelling (what transformers logs and saves with the args).
        self.lr_mult_head, self.lr_mult_cross_modal = self.head_lr_scale.flag(), self.cross_lr_scale.flag()
        super().__post_init__()  # RunArguments (checks --deepspeed), then transformers
        if self.k_test < 1:
            raise ValueError(f"k_test={self.k_test} must be >= 1")


def _lr_scale(value: str | LrScale, name: str) -> LrScale:
    """A flag's text, read once here; a run config's default arrives typed already."""
    return value if isinstance(value, LrScale) else LrScale.parse(value, name=name)
