"""Train entry of the Two-Tower tasks: ``python -m managertower.train.train --data_root ARROW --task vqa ...``.

Run it under ``torchrun`` or the ``deepspeed`` launcher; ``scripts/managertower/`` run it through
``python -m managertower.train.launch``, which hands it a recipe as ``--run_config FILE`` (typed defaults of the
flags, ``managertower.train.recipes.RunConfig``; flags given still win). See docs/managertower_training.md.
The model is built from ``--init_from`` (a pre-trained Two-Tower folder: its heads are left behind and the task's
are new, as the original loads with ``strict=False``) or from ``--model_config`` / ``--preset`` with the raw
experts (``--text_expert``, ``--vision_expert``). On a machine without CUDA it runs on the CPU (gloo).

Order of work: flags, data (tables read and checked), the resume point, then the model, so a data or checkpoint
error surfaces before any weight is built. At the end: the final weights, ``COMPLETE``, then (``--do_eval``) the
task's evaluation into ``results.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from transformers import AutoTokenizer, set_seed

from managertower.config import ManagerTowerConfig
from managertower.convert import load_clip, load_roberta
from managertower.convert.encoders import resize_positions
from managertower.data.answers import VQA_VOCABULARY_FILE, VQAV2_ANSWERS
from managertower.data.arrow import Task
from managertower.data.collate import TwoTowerCollator
from managertower.data.datasets import DataConfig, TwoTowerDataset
from managertower.data.transforms import TRAIN_EVAL
from managertower.evaluate import evaluate
from managertower.model import CONFIG_NAME, WEIGHTS_NAME, ManagerTowerModel
from managertower.presets import preset
from managertower.tasks import HeadConfig, TwoTowerForTask
from managertower.train.arguments import DEFAULT_TRANSFORM, DataArguments, ModelArguments, TrainingArguments
from managertower.train.recipes import RunConfig
from managertower.train.trainer import TwoTowerTrainer
from vlcommon import runconfig
from vlcommon.arguments import parse_arguments
from vlcommon.callbacks import BadSampleCallback
from vlcommon.entry import configure_logging, resume_point, run_entry, run_training
from vlcommon.resume_match import require_same_parameters, saved_shapes, shapes_on_meta
from vlcommon.trainer import leave_distributed

logger = logging.getLogger("managertower.train")
VISION_POSITIONS = "vision_model.model.visual.embeddings.position_embedding.weight"
BACKBONE_DIR = "backbone"  # the final output's ManagerTowerModel folder: the next stage's --init_from


def parse_args(argv: list[str] | None = None):
    """The command line; a launcher's ``--run_config`` (a recipe resolved, ``RunConfig``) gives the flags' defaults
    as typed values, and the flags given still win."""
    return parse_arguments((ModelArguments, DataArguments, TrainingArguments), argv,
                           defaults=lambda path: runconfig.read(path, RunConfig).flag_defaults())  # fmt: skip


def model_config(model_args: ModelArguments) -> ManagerTowerConfig:
    if model_args.init_from is not None:
        if model_args.model_config or model_args.preset:
            raise ValueError("--init_from carries its config: drop --model_config / --preset")
        path = Path(model_args.init_from) / CONFIG_NAME
        if not path.is_file():
            raise ValueError(f"--init_from {model_args.init_from}: no {CONFIG_NAME} (a Two-Tower folder expected)")
        config = _config_file(path, "--init_from")
    elif model_args.model_config is not None:
        config = _config_file(Path(model_args.model_config), "--model_config")
    else:
        config = ManagerTowerConfig()
    if model_args.preset is not None:
        config = preset(model_args.preset, config)
    if model_args.image_size is not None:
        vision = dataclasses.replace(config.vision, image_size=model_args.image_size)
        config = dataclasses.replace(config, vision=vision)
    config.validate()
    return config


def _config_file(path: Path, flag: str) -> ManagerTowerConfig:
    """A config JSON, with the flag and the file named in any error (unreadable, malformed or wrong fields)."""
    try:
        return ManagerTowerConfig.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError) as error:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{flag} {path}: {error}") from error


def data_config(data_args: DataArguments, config: ManagerTowerConfig, *, seed: int, train: bool) -> DataConfig:
    transform = data_args.transform or DEFAULT_TRANSFORM[data_args.task]
    classes = VQAV2_ANSWERS
    vocabulary = Path(data_args.data_root) / VQA_VOCABULARY_FILE
    if data_args.task is Task.VQA:
        if not vocabulary.is_file():
            raise ValueError(f"--data_root {data_args.data_root}: no {VQA_VOCABULARY_FILE} (written by the converter)")
        classes = len(json.loads(vocabulary.read_text()))
    if not train:
        transform = TRAIN_EVAL.get(transform, transform)
    return DataConfig(
        image_size=config.vision.image_size,
        transform=transform,
        max_text_len=data_args.max_text_len,
        seed=seed,
        draw_false_image=train and data_args.task is Task.PRETRAIN,
        answer_classes=classes,
    )


def build_model(model_args: ModelArguments, config: ManagerTowerConfig, task: Task, classes: int) -> TwoTowerForTask:
    backbone = ManagerTowerModel(config)
    if model_args.init_from is not None:
        from safetensors.torch import load_file

        state = load_file(str(Path(model_args.init_from) / WEIGHTS_NAME))
        token_types = state.get("token_type_embeddings.weight")
        if token_types is not None and token_types.shape[0] != config.token_types:
            raise ValueError(f"--init_from: {token_types.shape[0]} token types, the config says {config.token_types}")
        # Fine-tuning runs at another resolution than pre-training (576 px after 288): the grid of the position
        # table is resized bicubically, the class row kept, as when loading CLIP.
        state[VISION_POSITIONS] = resize_positions(state[VISION_POSITIONS], config.vision.tokens)
        backbone.load_state_dict(state, strict=True)
    else:
        if model_args.text_expert:
            load_roberta(backbone, model_args.text_expert)
        if model_args.vision_expert:
            load_clip(backbone, model_args.vision_expert)
    return TwoTowerForTask(backbone, task, _heads(model_args, classes))


def _heads(model_args: ModelArguments, classes: int) -> HeadConfig:
    return HeadConfig(
        vqa_classes=classes, hidden_scale=model_args.head_hidden_scale, nlvr2_dropout=model_args.nlvr2_drop_rate
    )


def require_resumable(resume: str, model_args: ModelArguments, config: ManagerTowerConfig, task: Task,
                      classes: int) -> None:  # fmt: skip
    """The checkpoint holds the parameters of the task model these flags build (built on the meta device); its
    weights are a state dict in safetensors (``vlcommon.resume_match``)."""
    found = saved_shapes(resume)
    if found is None:
        return  # no safetensors weights to read (a ZeRO-3 engine state): loading them checks the shapes
    build = lambda: TwoTowerForTask(ManagerTowerModel(config), task, _heads(model_args, classes))
    require_same_parameters(resume, expected=shapes_on_meta(build), found=found)


def train(argv: list[str] | None = None) -> TwoTowerTrainer:
    """Check, build, train, save, mark ``COMPLETE`` (``vlcommon.entry.run_training``), then evaluate."""
    run, trainer = run_training(argv, check=check, prepare=prepare, save=save_final)
    args = trainer.args
    # Evaluation runs on the main process alone: the others leave first rather than wait at a barrier for longer
    # than the process group's timeout. The model is whole on every rank (DDP, ZeRO-1/2).
    leave_distributed()
    if args.do_eval and args.should_save:
        eval_config = data_config(run.data_args, run.config, seed=args.seed, train=False)
        results = evaluate(
            trainer.model,
            run.data_args.data_root,
            tokenizer=run.tokenizer,
            config=eval_config,
            name=args.results_name or run.model_args.preset or "run",
            seed=args.seed,
            out=args.output_dir,
            k_test=args.k_test,
        )
        logger.info("results: %s", results["metrics"])
    return trainer


def save_final(trainer: TwoTowerTrainer, out: Path) -> None:
    """The task model and, in ``backbone/``, the Two-Tower model the next stage starts from (``--init_from``)."""
    if trainer.args.should_save:
        trainer.model.backbone.save_pretrained(out / BACKBONE_DIR)
        trainer.save_model(str(out))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Checked:
    """What :func:`check` found sound: flags, model config, tokenizer, the training tables and the resume point."""

    model_args: ModelArguments
    data_args: DataArguments
    args: TrainingArguments
    config: ManagerTowerConfig
    tokenizer: object
    train_config: DataConfig
    dataset: TwoTowerDataset
    resume: str | None


def check(argv: list[str] | None = None) -> Checked:
    """Flags, the model config, data (tables read and checked) and the resume point, in that order: every problem
    of the user's surfaces here, before any weight is read (``setup_checks`` prints it as one line)."""
    model_args, data_args, args = parse_args(argv)
    configure_logging(args)
    config = model_config(model_args)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer)
    except (OSError, ValueError) as error:
        raise ValueError(f"--tokenizer {model_args.tokenizer}: {error}") from error
    if len(tokenizer) > config.text.vocab_size:
        raise ValueError(f"--tokenizer has {len(tokenizer)} tokens, the text encoder {config.text.vocab_size}")
    train_config = data_config(data_args, config, seed=args.data_seed or args.seed, train=True)
    dataset = TwoTowerDataset(data_args.data_root, data_args.task, "train", tokenizer=tokenizer, config=train_config)
    resume = resume_point(args)
    if resume:  # a checkpoint of another model stops here, not in load_state_dict
        require_resumable(resume, model_args, config, data_args.task, train_config.answer_classes)
    return Checked(model_args=model_args, data_args=data_args, args=args, config=config, tokenizer=tokenizer,
                   train_config=train_config, dataset=dataset, resume=resume)  # fmt: skip


def prepare(run: Checked) -> TwoTowerTrainer:
    """The task model (experts or ``--init_from`` weights read) and the Trainer around it."""
    model_args, data_args, args, dataset = run.model_args, run.data_args, run.args, run.dataset
    config, train_config, tokenizer = run.config, run.train_config, run.tokenizer
    set_seed(args.seed)
    model = build_model(model_args, config, data_args.task, train_config.answer_classes)
    bad = BadSampleCallback(max_share=data_args.max_bad_sample_share, min_seen=data_args.bad_sample_min_seen)
    if args.process_index == 0:  # every rank reads the same tables: their read-time skips count once
        bad.local.record(seen=len(dataset.issues), events=[e._asdict() for e in dataset.issues])
    mlm = data_args.mlm_probability if data_args.task is Task.PRETRAIN else None
    return TwoTowerTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        callbacks=[bad],
        data_collator=TwoTowerCollator(tokenizer=tokenizer, mlm_probability=mlm),
    )


def main() -> None:
    # leave_distributed() ran before the evaluation; a second call finds no process group and does nothing.
    run_entry(train, program="managertower.train.train")


if __name__ == "__main__":
    main()
