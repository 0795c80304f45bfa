"""Train entry: ``python -m llava.train.train --model_name_or_path ... --data_path ... --output_dir ...``.

Run it under ``torchrun`` or the ``deepspeed`` launcher with LLaVA-NeXT's flags (see ``llava.train.arguments``
and ``docs/training.md``). On a machine without CUDA it runs on the CPU (``--use_cpu`` is implied; DeepSpeed uses
gloo), which is how the tests drive it.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path

from transformers import set_seed

from llava.data.collator import DataCollatorForSupervisedDataset
from llava.data.dataset import DataConfig, LazySupervisedDataset
from llava.data.mixture import Mixture, load_mixture
from llava.model.config import LlavaQwenConfig
from llava.model.segments import segment_implementation
from llava.processing import image_processor_for
from llava.train.arguments import DataArguments, ModelArguments, TrainingArguments, check_compat_flags
from llava.train.model_init import build_config, build_model, build_tokenizer, require_resumable
from llava.train.recipes import RunConfig
from llava.train.trainer import LLaVATrainer
from llava.train.tunable import Part, apply_trainable_parts, parse_tunable_parts
from vlcommon import entry, runconfig
from vlcommon.arguments import parse_arguments
from vlcommon.callbacks import BadSampleCallback

logger = logging.getLogger("llava.train")


def read_run_config(path: str) -> RunConfig:
    return runconfig.read(path, RunConfig)


def parse_args(argv: list[str] | None = None):
    """The command line (LLaVA-NeXT's flags; a launcher's ``--run_config`` gives their defaults)."""
    return parse_arguments(
        (ModelArguments, DataArguments, TrainingArguments), argv, defaults=lambda p: read_run_config(p).flag_defaults()
    )


def load_data(data_args, *, seed: int):
    """The mixture, read and sampled, with every image folder it names checked to exist."""
    mixture = load_mixture(data_args.data_path, seed=seed)
    folders = {("--image_folder", data_args.image_folder)} | {
        (f"image_folder of {entry.path}", entry.image_folder) for entry in mixture.entries
    }
    for name, folder in sorted(folders, key=str):
        if folder is not None and not Path(folder).is_dir():
            raise ValueError(f"{name}: {folder} is not a directory")
    return mixture


def train(argv: list[str] | None = None) -> LLaVATrainer:
    """Check, build, train, save, mark ``COMPLETE`` (``vlcommon.entry.run_training``)."""
    return entry.run_training(argv, check=check, prepare=prepare, save=save_final)[1]


def save_final(trainer: LLaVATrainer, out: Path) -> None:
    """The final weights, on every rank: under ZeRO-3 they are gathered for the save."""
    trainer.model.config.use_cache = True
    trainer.save_model(str(out))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Checked:
    """What :func:`check` found sound: the flags, the data, the checkpoint to resume from, the model's config and
    its trainable parts."""

    model_args: ModelArguments
    data_args: DataArguments
    training_args: TrainingArguments
    mixture: Mixture
    resume: str | None
    config: tuple[LlavaQwenConfig, dict[str, str]]
    parts: frozenset[Part]


def check(argv: list[str] | None = None) -> Checked:
    """Flags, data, the resume point and the model's config, in that order: every problem of the user's surfaces
    here, before any weight is read (``setup_checks`` prints it as one line)."""
    model_args, data_args, training_args = parse_args(argv)
    run = read_run_config(training_args.run_config) if training_args.run_config else None
    entry.configure_logging(training_args)
    check_compat_flags(model_args, data_args)
    # Data errors surface before minutes of model loading.
    mixture = load_data(data_args, seed=training_args.data_seed or training_args.seed)
    resume = entry.resume_point(training_args)  # checkpoint problems too surface before the model is built
    if run is not None and model_args.mm_tunable_parts is None:
        parts = frozenset(run.tunable_parts)
        if model_args.tune_mm_mlp_adapter or model_args.unfreeze_mm_vision_tower:
            warnings.warn("tune_mm_mlp_adapter / unfreeze_mm_vision_tower have no effect: the run config lists the "
                          "tunable parts (pass --mm_tunable_parts to change them)", stacklevel=2)  # fmt: skip
    else:
        parts = parse_tunable_parts(
            model_args.mm_tunable_parts,
            tune_mm_mlp_adapter=model_args.tune_mm_mlp_adapter,
            unfreeze_mm_vision_tower=model_args.unfreeze_mm_vision_tower,
        )
    config = build_config(model_args, data_args, training_args, managers=run and run.managers,
                          grids=run.images.grids if run else (), parts=run and run.tunable_parts)  # fmt: skip
    if resume:
        require_resumable(resume, config[0])  # a checkpoint of another model stops here, not in load_state_dict
    return Checked(model_args=model_args, data_args=data_args, training_args=training_args, mixture=mixture,
                   resume=resume, config=config, parts=parts)  # fmt: skip


def prepare(checked: Checked) -> LLaVATrainer:
    """The model (weights read) and the Trainer around it, with the dataset and its ledger."""
    model_args, data_args, training_args = checked.model_args, checked.data_args, checked.training_args
    mixture, parts = checked.mixture, checked.parts
    set_seed(training_args.seed)
    model, _ = build_model(model_args, data_args, training_args, config=checked.config)
    counts = apply_trainable_parts(model, parts)
    if model.get_model().managers is not None and Part.MANAGER not in parts:
        warnings.warn(
            "the model has managers but mm_tunable_parts does not list mm_manager: they stay frozen", stacklevel=2
        )
    logger.info("trainable parameters by part: %s", {p.value: n for p, n in counts.items()})
    if training_args.activation_checkpointing and training_args.activation_checkpointing_kwargs is None:
        # Non-reentrant checkpointing needs no input that requires grad, so frozen-LLM stages work as they are.
        training_args.activation_checkpointing_kwargs = {"use_reentrant": False}
    tokenizer = build_tokenizer(model_args, training_args)
    dataset = LazySupervisedDataset(
        mixture,
        tokenizer=tokenizer,
        image_processor=image_processor_for(model.config),
        model_config=model.config,
        data=DataConfig(
            template=model_args.version,
            image_folder=data_args.image_folder,
            unmask_chat_tokens=data_args.unmask_chat_tokens,
            max_length=training_args.model_max_length,
            keep_empty_answers=data_args.keep_empty_answers,
        ),
    )
    packing_lengths, planning_issues = _packing_plan(training_args, model, dataset)
    bad_samples = _bad_samples(data_args, training_args, mixture, planning_issues)
    trainer = LLaVATrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        data_collator=DataCollatorForSupervisedDataset(pad_token_id=tokenizer.pad_token_id, padding_side="right"),
        processing_class=tokenizer,
        callbacks=[bad_samples],
        tunable_parts=parts,
        packing_lengths=packing_lengths,
    )
    return trainer


def _bad_samples(data_args, training_args, mixture, planning_issues) -> BadSampleCallback:
    """The run's ledger, holding the skips found before training: every rank reads the same mixture and plans the
    same rows, so those count once, on the main process."""
    bad_samples = BadSampleCallback(max_share=data_args.max_bad_sample_share, min_seen=data_args.bad_sample_min_seen)
    if training_args.process_index != 0:
        return bad_samples
    events = [{"sample_id": i.sample_id, "source": i.source, "kind": "malformed", "reason": i.reason}
              for i in mixture.issues]  # fmt: skip
    bad_samples.local.record(seen=len(events), events=events)
    if planning_issues:
        bad_samples.local.record(seen=len(planning_issues), events=[e._asdict() for e in planning_issues])
    return bad_samples


def _packing_plan(training_args, model, dataset):
    """With ``--packing``: segment-wise attention, and every record's expanded length for the row planner (from
    the image headers; records found bad here are left out of the plan and returned to be counted once)."""
    if not training_args.packing:
        return None, []
    model.set_attn_implementation(segment_implementation(model.config._attn_implementation))
    lengths, text_only, issues = dataset.packing_lengths(progress=training_args.should_log)
    dataset.fit_stand_ins(lengths, text_only)
    logger.info("packing: %d records, %d expanded tokens, rows of %d", len(lengths), sum(lengths),
                training_args.packing_max_tokens)  # fmt: skip
    return (lengths, text_only), issues


def main() -> None:
    entry.run_entry(train, program="llava.train.train")


if __name__ == "__main__":
    main()
