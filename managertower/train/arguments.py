"""Command-line flags of ``python -m managertower.train.train`` (the original's config keys, typed).

Defaults are the original's base config: AdamW betas (0.9, 0.98), eps 1e-8, weight decay 0.01, linear decay to 0
after a warm-up given as a fraction (``--warmup_steps 0.1``), head and cross-modal lr x5, fp32.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import transformers

from managertower.data.arrow import Task
from managertower.data.transforms import TransformKind
from managertower.train.recipes import RECIPES
from vlcommon.entry import check_deepspeed_file
from vlcommon.ledger import DEFAULT_MAX_SHARE, DEFAULT_MIN_SEEN

# Without --transform, a task trains with its recipe's augmentation (Tables IX, XIV).
DEFAULT_TRANSFORM = {task: TransformKind(RECIPES[task.value].transform) for task in Task}


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
class DataArguments:
    data_root: str = field(metadata={"help": "the folder of .arrow tables (python -m managertower.data.convert)"})
    task: Task = field(metadata={"help": "pretrain | vqa | snli_ve | nlvr2 | f30k"})
    transform: TransformKind | None = field(default=None, metadata={"help": "training augmentation (task default)"})
    max_text_len: int = 50
    mlm_probability: float = 0.15
    max_bad_sample_share: float = DEFAULT_MAX_SHARE
    bad_sample_min_seen: int = DEFAULT_MIN_SEEN

    def __post_init__(self) -> None:
        self.task = Task(self.task)
        self.transform = TransformKind(self.transform) if self.transform is not None else None
        if not 0 < self.mlm_probability < 1:
            raise ValueError(f"mlm_probability={self.mlm_probability} must be in (0, 1)")


@dataclass
class TrainingArguments(transformers.TrainingArguments):
    adam_beta2: float = 0.98
    adam_epsilon: float = 1e-8
    weight_decay: float = 0.01
    warmup_steps: float = 0.1
    lr_scheduler_type: str = "linear"
    max_grad_norm: float = 0.0  # the original never clips gradients
    remove_unused_columns: bool = False
    lr_mult_head: str = field(default="5", metadata={"help": "an integer multiplies --learning_rate; 2e-5 is an lr"})
    lr_mult_cross_modal: str = field(default="5", metadata={"help": "as --lr_mult_head"})
    k_test: int = field(default=128, metadata={"help": "retrieval: ITC candidates reranked by ITM"})
    results_name: str | None = field(default=None, metadata={"help": "the run's name in results.json (the preset)"})
    resume: str = field(
        default="auto", metadata={"help": "auto (newest checkpoint that verifies) | never | a checkpoint dir"}
    )
    allow_partial_resume: bool = False
    restore_callback_states_from_checkpoint: bool = True

    def __post_init__(self) -> None:
        check_deepspeed_file(self.deepspeed)
        super().__post_init__()
        if self.k_test < 1:
            raise ValueError(f"k_test={self.k_test} must be >= 1")
