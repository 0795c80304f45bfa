"""``TwoTowerTrainer``: transformers' ``Trainer`` with the original's optimiser groups and the shared checkpoint
and bad-record accounting (``vlcommon``), as ``LLaVATrainer`` on the LLaVA side.

* ``create_optimizer``: the head / cross-modal / base groups with their learning rates and no-decay rules
  (``managertower.train.optim``);
* ``compute_loss``: takes the batch's ``data_report`` into the bad-sample ledger; logs the task's loss parts;
* from ``vlcommon.trainer.MarkedCheckpoints``, as the LLaVA side: no batch past ``max_steps`` on a resume, stale
  checkpoint folders discarded, rotation after the ``COMPLETE`` marker.
"""

from __future__ import annotations

import logging
import math

from transformers import Trainer, TrainerCallback

from managertower.train.optim import parameter_groups, resolve_lr
from vlcommon.ledger import DATA_REPORT_KEY
from vlcommon.trainer import MarkedCheckpoints

logger = logging.getLogger(__name__)
LOSS_PARTS = ("mlm_loss", "itm_loss", "itc_loss")


class EpochCallback(TrainerCallback):
    """Tells the dataset which epoch starts, before its dataloader is iterated: the per-sample seeds (augmentation,
    false images, MLM masks) change every epoch. accelerate's dataloader forwards ``set_epoch`` to the dataset only
    when its sampler has none, which is not the case on several processes."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        # state.epoch is the float progress: exactly the epoch's number at its start (1e-6: float steps).
        self.dataset.set_epoch(math.floor(state.epoch + 1e-6))


class TwoTowerTrainer(MarkedCheckpoints, Trainer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The task losses are batch means (the original's): with accumulation the Trainer averages the micro-batch
        # losses, as Lightning did. The model's **batch forward would otherwise read as handling num_items itself.
        self.model_accepts_loss_kwargs = False
        if hasattr(self.train_dataset, "set_epoch"):
            self.add_callback(EpochCallback(self.train_dataset))
        self._parts: dict[str, list[float]] = {}

    def create_optimizer(self, model=None):
        if self.optimizer is not None:
            return self.optimizer
        args = self.args
        groups = parameter_groups(
            self.model,
            lr=args.learning_rate,
            head_lr=resolve_lr(args.lr_mult_head, args.learning_rate, name="lr_mult_head"),
            cross_lr=resolve_lr(args.lr_mult_cross_modal, args.learning_rate, name="lr_mult_cross_modal"),
            weight_decay=args.weight_decay,
        )
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(args, self.model)
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        summary = ", ".join(f"{g['name']} lr={g['lr']:g} wd={g['weight_decay']:g} ({len(g['params'])})" for g in groups)
        logger.info("optimizer %s: %s", optimizer_cls.__name__, summary)
        return self.optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        report = inputs.pop(DATA_REPORT_KEY, None)
        if report is not None:
            self.bad_samples.record(report)
        outputs = model(**inputs)
        for part in LOSS_PARTS:
            if part in outputs:
                self._parts.setdefault(part, []).append(float(outputs[part]))
        loss = outputs["loss"]
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict, *args, **kwargs) -> None:
        merged = self.bad_samples.merged
        parts = {k: round(sum(v) / len(v), 4) for k, v in self._parts.items() if v}
        self._parts = {}
        super().log({**logs, **parts, "bad_samples": merged.skipped}, *args, **kwargs)
