"""``TwoTowerTrainer``: transformers' ``Trainer`` with the original's optimiser groups and the shared checkpoint
and bad-record accounting (``vlcommon``), as ``LLaVATrainer`` on the LLaVA side.

* ``create_optimizer``: the head / cross-modal / base groups with their learning rates and no-decay rules
  (``managertower.train.optim``);
* ``compute_loss``: takes the batch's ``data_report`` into the bad-sample ledger; keeps the task's loss parts as
  detached tensors (:class:`LossParts`), read once per logging step rather than once per micro-batch (each read
  waits for the GPU);
* from ``vlcommon.trainer.MarkedCheckpoints``, as the LLaVA side: no batch past ``max_steps`` on a resume, stale
  checkpoint folders discarded, rotation after the ``COMPLETE`` marker.
"""

from __future__ import annotations

import logging
import math

import torch
from transformers import Trainer, TrainerCallback

from managertower.train.optim import parameter_groups
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


class LossParts:
    """The task's loss parts (MLM, ITM, ITC) of the micro-batches since the last log, as detached tensors: adding
    one never waits for the device; :meth:`means` reads them all in one transfer."""

    def __init__(self) -> None:
        self._parts: dict[str, list[torch.Tensor]] = {}

    def add(self, outputs) -> None:
        for part in LOSS_PARTS:
            if part in outputs:
                self._parts.setdefault(part, []).append(outputs[part].detach())

    def means(self) -> dict[str, float]:
        """Each part's mean over the micro-batches, rounded to 4 places, and a fresh start. The values come back as
        Python floats (exact for fp32, bf16, fp16) and are averaged in Python, as one ``float()`` each was."""
        parts, self._parts = self._parts, {}
        if not parts:
            return {}
        # One stack, one transfer; mixed precisions promote to the widest, which holds every value exactly.
        flat = torch.stack([value.reshape(()) for values in parts.values() for value in values]).tolist()
        means, start = {}, 0
        for name, values in parts.items():
            chunk = flat[start : start + len(values)]
            means[name], start = round(sum(chunk) / len(chunk), 4), start + len(values)
        return means


class TwoTowerTrainer(MarkedCheckpoints, Trainer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The task losses are batch means (the original's): with accumulation the Trainer averages the micro-batch
        # losses, as Lightning did. The model's **batch forward would otherwise read as handling num_items itself.
        self.model_accepts_loss_kwargs = False
        if hasattr(self.train_dataset, "set_epoch"):
            self.add_callback(EpochCallback(self.train_dataset))
        self._parts = LossParts()

    def create_optimizer(self, model=None):
        if self.optimizer is not None:
            return self.optimizer
        args = self.args
        groups = parameter_groups(
            self.model,
            lr=args.learning_rate,
            head_lr=args.head_lr_scale.resolve(args.learning_rate),
            cross_lr=args.cross_lr_scale.resolve(args.learning_rate),
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
        self._parts.add(outputs)
        loss = outputs["loss"]
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict, *args, **kwargs) -> None:
        merged = self.bad_samples.merged
        super().log({**logs, **self._parts.means(), "bad_samples": merged.skipped}, *args, **kwargs)
