"""What both systems' Trainers share: checkpoint saving that cooperates with the ``COMPLETE`` markers, the
bad-sample ledger, the end of a run resumed at ``max_steps``, and leaving the process group together.

``MarkedCheckpoints`` goes before transformers' ``Trainer`` in a subclass's bases (``class T(MarkedCheckpoints,
Trainer)``); it adds ``CheckpointCallback`` itself, with ``checkpoint_reports()`` as the reports it writes.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from vlcommon.callbacks import BAD_SAMPLES_FILE, BadSampleCallback, CheckpointCallback
from vlcommon.checkpoints import discard


class MarkedCheckpoints:
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.add_callback(CheckpointCallback(reports=self.checkpoint_reports))

    def checkpoint_reports(self) -> dict[str, dict]:
        """JSON files written into each checkpoint before its marker."""
        return {BAD_SAMPLES_FILE: self.bad_samples.merged.to_dict()}

    @property
    def bad_samples(self) -> BadSampleCallback:
        # Looked up each time: resuming replaces the callback with one rebuilt from the checkpoint.
        return next(cb for cb in self.callback_handler.callbacks if isinstance(cb, BadSampleCallback))

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        # A run resumed from a checkpoint at max_steps would train one step more (transformers checks for the end
        # only after a step): it draws no batch, so it finishes without training.
        if 0 < self.state.max_steps <= self.state.global_step:
            return [], None
        return super().get_batch_samples(epoch_iterator, num_batches, device)

    def _save_checkpoint(self, model, trial) -> None:
        # The one private hook (transformers is pinned): a resume that fell back past a damaged checkpoint saves
        # into its step again, and stale files must not mix with new ones; and transformers rotates before any
        # callback can mark the new checkpoint complete, deleting file by file in modification-time order, so
        # its rotation is held off here and CheckpointCallback rotates after the marker (vlcommon.checkpoints).
        folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        if self.args.should_save:
            discard(folder)
        if dist.is_available() and dist.is_initialized():
            dist.barrier()
        keep, self.args.save_total_limit = self.args.save_total_limit, None
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = keep


def leave_distributed() -> None:
    """All ranks leave together and tear the process group down. A rank that exited while the other's collectives
    or DeepSpeed's shared-memory threads were still alive aborted now and then ("terminate called without an active
    exception", exit -6) after a finished ZeRO-3 run. Only on success: after an error a barrier would hang."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
