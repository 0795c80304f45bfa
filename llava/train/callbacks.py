"""Trainer callbacks: bad-sample accounting across ranks, and a completeness marker on every checkpoint.

Each rank keeps a ledger of the records its dataloader skipped. When the Trainer is about to log or save, the
ranks gather their ledgers; the merged counts are logged, written as ``bad_samples.json`` into the checkpoint
(and into ``output_dir`` at the end), and kept in the checkpoint's trainer state so a resumed run continues the
counts. A checkpoint directory counts as complete only once ``COMPLETE`` is written into it after everything
else; automatic resume ignores incomplete ones, so a crash during a save never poisons the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch.distributed as dist
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from llava.data.bad_samples import BadSampleLedger, write_json_atomic

BAD_SAMPLES_FILE = "bad_samples.json"
COMPLETE_MARKER = "COMPLETE"


class BadSampleCallback(TrainerCallback, ExportableState):
    def __init__(self, max_share: float = 0.01, min_seen: int = 200, restored: dict | None = None) -> None:
        self.max_share = max_share
        self.min_seen = min_seen
        self.restored = restored  # merged counts of the run before a resume (all ranks)
        self.local = BadSampleLedger(max_share=max_share, min_seen=min_seen)
        self.merged = self._merge([self.local.to_dict()])

    def state(self) -> dict:
        return {"args": {"max_share": self.max_share, "min_seen": self.min_seen, "restored": self.merged.to_dict()},
                "attributes": {}}

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

    def on_save(self, args, state, control, **kwargs):
        if dist.is_available() and dist.is_initialized():
            dist.barrier()  # every rank's shards and RNG state are on disk before the checkpoint is marked complete
        if args.should_save:
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            if folder.is_dir():
                write_json_atomic(folder / BAD_SAMPLES_FILE, self.merged.to_dict())
                (folder / COMPLETE_MARKER).write_text(f"{state.global_step}\n")

    def on_train_end(self, args, state, control, **kwargs):
        self.gather()
        if args.should_save:
            write_json_atomic(Path(args.output_dir) / BAD_SAMPLES_FILE, self.merged.to_dict())


def _checkpoints(output_dir: str | Path, required_file: str) -> list[tuple[int, Path]]:
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        step = child.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-")
        if child.is_dir() and step.isdigit() and (child / required_file).is_file():
            found.append((int(step), child))
    return sorted(found)


def latest_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest ``checkpoint-N`` holding the completeness marker.

    transformers deletes older checkpoints (``save_total_limit``) before ``on_save`` writes the marker; a crash in
    that window leaves only an unmarked checkpoint. Its ``trainer_state.json`` is written after the weights, the
    optimizer and the RNG states, so when no checkpoint is marked, the newest one holding that file is used.
    """
    marked = _checkpoints(output_dir, COMPLETE_MARKER)
    if marked:
        return marked[-1][1]
    saved = _checkpoints(output_dir, TRAINER_STATE_NAME)
    return saved[-1][1] if saved else None


def incomplete_checkpoints(output_dir: str | Path) -> list[str]:
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    return sorted(os.fspath(c) for c in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*")
                  if c.is_dir() and not (c / COMPLETE_MARKER).is_file())
