"""``LLaVATrainer``: transformers' ``Trainer`` with the LLaVA-OV specifics, through public hooks but one.

* ``get_train_dataloader``: the length/modality-grouped sampler when ``group_by_modality_length`` is set; with
  ``--packing``, rows of samples under ``--packing_max_tokens`` expanded tokens (``llava.data.packing``);
* ``create_accelerator_and_postprocess``: ``--torch_compile`` compiles the repeated blocks, not the whole model
  (``llava.train.compile``: whole-model tracing fails under ZeRO-3);
* ``create_optimizer``: one parameter group per trainable part and decay class (see ``llava.train.tunable``);
  with a DeepSpeed config that offloads the optimizer, the same groups go to DeepSpeed's CPU Adam;
* from ``vlcommon.trainer.MarkedCheckpoints``: ``get_batch_samples`` (a run resumed at ``max_steps`` draws no
  batch; transformers would train one more step) and ``_save_checkpoint`` (private; transformers is pinned: a
  stale folder of the same step is discarded first, and transformers' rotation is held off: ``CheckpointCallback``
  rotates after the checkpoint is marked complete);
* ``compute_loss``: takes the batch's ``data_report`` (skipped records) into the bad-sample ledger first;
* ``save_model``: checkpoints during training stay complete (weights, optimizer, RNG: exact resume); the final
  save follows the stage's parts: adapter-only stages write ``mm_adapter.safetensors`` + ``config.json``, plus
  LLaVA-NeXT's ``mm_projector.bin`` (projector only) for upstream stage scripts.
* ``log``: adds the merged bad-sample counts.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import torch
from accelerate.utils import DynamoBackend
from safetensors.torch import save_file
from torch.utils.data import DataLoader
from transformers import Trainer
from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled
from transformers.trainer_utils import seed_worker

from llava.data.collator import DATA_REPORT_KEY
from llava.data.packing import PackedBatchSampler, PackedCollator
from llava.data.sampler import LengthGroupedSampler
from llava.model.weights import ADAPTER_FILE, LLAVA_NEXT_ADAPTER_FILE, PROJECTOR_PREFIX
from llava.train.compile import compile_blocks
from llava.train.tunable import Part, PartLearningRates, adapter_parameter_names, optimizer_groups, saves_adapter_only
from vlcommon.ledger import atomic_write
from vlcommon.trainer import MarkedCheckpoints

logger = logging.getLogger(__name__)


class LLaVATrainer(MarkedCheckpoints, Trainer):
    def __init__(self, *args, tunable_parts: frozenset[Part], packing_lengths=None, **kwargs) -> None:
        self.tunable_parts = tunable_parts
        self.packing_lengths = packing_lengths  # (expanded lengths, text-only flags) with --packing
        super().__init__(*args, **kwargs)

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        if self.args.torch_compile:
            # Not the whole model (see llava.train.compile): accelerate's own compile is switched off, the blocks
            # are compiled here, before DeepSpeed or DDP wrap the model.
            self.accelerator.state.dynamo_plugin.backend = DynamoBackend.NO
            compile_blocks(self.model, backend=self.args.torch_compile_backend, mode=self.args.torch_compile_mode)

    # -- data ------------------------------------------------------------------------------------------------------

    def get_train_dataloader(self) -> DataLoader:
        if not self.args.group_by_modality_length and not self.args.packing:
            return super().get_train_dataloader()
        dataset = self.train_dataset
        batching, collate = self._batching()
        workers = self.args.dataloader_num_workers
        loader = DataLoader(
            dataset,
            **batching,
            collate_fn=collate,
            num_workers=workers,
            pin_memory=self.args.dataloader_pin_memory,
            persistent_workers=self.args.dataloader_persistent_workers and workers > 0,
            prefetch_factor=self.args.dataloader_prefetch_factor if workers > 0 else None,
            worker_init_fn=partial(seed_worker, num_workers=workers, rank=self.args.process_index),
        )
        return self.accelerator.prepare(loader)

    def _batching(self) -> tuple[dict, object]:
        """The DataLoader's batching arguments and collator: packed rows, or LLaVA-NeXT's grouped batches."""
        args = self.args
        seed = args.data_seed if args.data_seed is not None else args.seed
        if args.packing:
            lengths, text_only = self.packing_lengths
            sampler = PackedBatchSampler(
                lengths,
                max_tokens=args.packing_max_tokens,
                seed=seed,
                grouped=args.group_by_modality_length,
                text_only=text_only,
                world_size=args.world_size,
                strategy=args.packing_strategy,
            )
            return {"batch_sampler": sampler}, PackedCollator()
        # One megabatch = one optimizer step over all ranks, as in LLaVA-NeXT.
        sampler = LengthGroupedSampler(
            self.train_dataset.modality_lengths,
            batch_size=args.per_device_train_batch_size,
            world_size=args.world_size * args.gradient_accumulation_steps,
            seed=seed,
        )
        batching = {
            "batch_size": args.per_device_train_batch_size,
            "sampler": sampler,
            "drop_last": args.dataloader_drop_last,
        }
        return batching, self.data_collator

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        report = inputs.pop(DATA_REPORT_KEY, None)
        if report is not None:
            self.bad_samples.record(report)
        if not return_outputs:
            # Only the loss is needed: skip the (B, L, vocab) logits of unsupervised positions (same loss).
            inputs = {**inputs, "supervised_logits_only": True}
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    def log(self, logs: dict, *args, **kwargs) -> None:
        merged = self.bad_samples.merged
        logs = {**logs, "bad_samples": merged.skipped, "bad_sample_share": round(merged.share, 6)}
        super().log(logs, *args, **kwargs)

    # -- optimisation ----------------------------------------------------------------------------------------------

    def create_optimizer(self, model=None):
        if self.optimizer is not None:
            return self.optimizer
        lrs = PartLearningRates(
            base=self.args.learning_rate,
            projector=self.args.mm_projector_lr,
            vision_tower=self.args.mm_vision_tower_lr,
            manager=self.args.mm_manager_lr,
        )
        groups = optimizer_groups(self.model, self.tunable_parts, lrs, self.args.weight_decay)
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
        if _offloads_optimizer(self.args):
            from deepspeed.ops.adam import DeepSpeedCPUAdam

            optimizer_cls = DeepSpeedCPUAdam
            optimizer_kwargs = {k: v for k, v in optimizer_kwargs.items() if k in ("lr", "betas", "eps")}
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        summary = ", ".join(f"{g['name']} lr={g['lr']:g} wd={g['weight_decay']:g} ({len(g['params'])})" for g in groups)
        logger.info("optimizer %s: %s", optimizer_cls.__name__, summary)
        return self.optimizer

    # -- saving ----------------------------------------------------------------------------------------------------

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        if _internal_call or not saves_adapter_only(self.tunable_parts):
            super().save_model(output_dir, _internal_call=_internal_call)
            return
        output_dir = Path(output_dir or self.args.output_dir)
        state = self._gather_adapter()
        if self.args.should_save:
            output_dir.mkdir(parents=True, exist_ok=True)
            parts = ",".join(sorted(p.value for p in self.tunable_parts))
            atomic_write(
                output_dir / ADAPTER_FILE, lambda tmp: save_file(state, tmp, metadata={"format": "pt", "parts": parts})
            )
            # LLaVA-NeXT's stage-1 file, for its scripts' --pretrain_mm_mlp_adapter .../mm_projector.bin: the
            # projector alone, under the model's key names (our loader reads mm_adapter.safetensors beside it).
            projector = {k: v for k, v in state.items() if k.startswith(PROJECTOR_PREFIX)}
            atomic_write(output_dir / LLAVA_NEXT_ADAPTER_FILE, lambda tmp: torch.save(projector, tmp))
            self.model.config.save_pretrained(output_dir)

    def _gather_adapter(self) -> dict[str, torch.Tensor]:
        """Adapter weights, gathered from the ZeRO-3 partitions when needed (a collective: all ranks call it)."""
        names = set(adapter_parameter_names(self.model))
        params = {n: p for n, p in self.model.named_parameters() if n in names}
        if is_deepspeed_zero3_enabled():
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(params.values()), modifier_rank=None):
                return {n: p.detach().cpu().clone().contiguous() for n, p in params.items()}
        return {n: p.detach().cpu().clone().contiguous() for n, p in params.items()}


def _offloads_optimizer(args) -> bool:
    config = getattr(args, "hf_deepspeed_config", None)
    if config is None:
        return False
    device = config.config.get("zero_optimization", {}).get("offload_optimizer", {}).get("device", "none")
    return device in ("cpu", "nvme") and "optimizer" not in config.config
