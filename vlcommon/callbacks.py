"""Trainer callbacks: bad-sample accounting across ranks, and the completion and rotation of checkpoints.

Each rank keeps a ledger of the records its dataloader skipped. When the Trainer is about to log or save, the
ranks gather their ledgers; the merged counts are logged, written as ``bad_samples.json`` into each checkpoint
(and into ``output_dir`` at the end), and kept in the checkpoint's trainer state so a resumed run continues the
counts.

``CheckpointCallback`` finishes each save once every rank has written its files: the reports, then the
``COMPLETE`` marker with its manifest, then the rotation of old checkpoints (``vlcommon.checkpoints``), in
that order, so a kill at any moment leaves the newest good checkpoint marked.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch.distributed as dist
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from vlcommon.checkpoints import Layout, mark_complete, rotate
from vlcommon.ledger import DEFAULT_MAX_SHARE, DEFAULT_MIN_SEEN, BadSampleLedger, write_json_atomic

BAD_SAMPLES_FILE = "bad_samples.json"


class BadSampleCallback(TrainerCallback, ExportableState):
    def __init__(
        self, max_share: float = DEFAULT_MAX_SHARE, min_seen: int = DEFAULT_MIN_SEEN, restored: dict | None = None
    ) -> None:
        self.max_share = max_share
        self.min_seen = min_seen
        self.restored = restored  # merged counts of the run before a resume (all ranks)
        self.local = BadSampleLedger(max_share=max_share, min_seen=min_seen)
        self.merged = self._merge([self.local.to_dict()])

    def state(self) -> dict:
        return {
            "args": {"max_share": self.max_share, "min_seen": self.min_seen, "restored": self.merged.to_dict()},
            "attributes": {},
        }

    def record(self, report: dict) -> None:
        """Count one batch's ``data_report`` and stop the run if too many records are bad on this rank."""
        self.local.record(seen=report["seen"], events=report["skipped"], truncated=report["truncated"])
        self.local.check()

    def _merge(self, dicts: list[dict]) -> BadSampleLedger:
        merged = BadSampleLedger(max_share=self.max_share, min_seen=self.min_seen)
        for data in ([self.restored] if self.restored else []) + dicts:
            merged.merge(BadSampleLedger.from_dict(data, max_share=self.max_share, min_seen=self.min_seen))
        return merged

    def gather(self) -> None:
        """Collective: every rank must call it at the same point."""
        local = self.local.to_dict()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            everyone = [None] * dist.get_world_size()
            dist.all_gather_object(everyone, local)
        else:
            everyone = [local]
        self.merged = self._merge(everyone)

    def on_step_end(self, args, state, control, **kwargs):
        # DefaultFlowCallback ran first and decided whether this step logs or saves; all ranks see the same flags.
        if control.should_log or control.should_save:
            self.gather()

    def on_train_end(self, args, state, control, **kwargs):
        self.gather()
        if args.should_save:
            write_json_atomic(Path(args.output_dir) / BAD_SAMPLES_FILE, self.merged.to_dict())


class CheckpointCallback(TrainerCallback):
    """Marks, then rotates (``--save_total_limit``), each checkpoint; ``vlcommon.trainer.MarkedCheckpoints`` (a
    base of both systems' trainers) holds transformers' own rotation off. ``reports()`` gives the JSON files to write
    into each checkpoint before its marker."""

    def __init__(self, *, reports: Callable[[], dict[str, dict]]) -> None:
        self.reports = reports

    def on_save(self, args, state, control, **kwargs):
        if dist.is_available() and dist.is_initialized():
            dist.barrier()  # every rank's shards and RNG state are on disk before the checkpoint is marked complete
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if not args.should_save or not folder.is_dir():
            return
        for name, data in self.reports().items():
            write_json_atomic(folder / name, data)
        mark_complete(folder, state.global_step)
        if args.save_total_limit:
            rotate(
                args.output_dir,
                keep=args.save_total_limit,
                newest=state.global_step,
                layout=run_layout(args),
                protect=state.best_model_checkpoint,
            )


def run_layout(args) -> Layout:
    """What each checkpoint of this run holds (``vlcommon.checkpoints.Layout``), from its training arguments."""
    zero_stage = None
    if args.deepspeed:
        config = getattr(args, "hf_deepspeed_config", None)
        zero_stage = int(config.config.get("zero_optimization", {}).get("stage", 0)) if config is not None else 0
    return Layout(world_size=args.world_size, zero_stage=zero_stage, training_state=not args.save_only_model)
