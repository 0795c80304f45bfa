"""How both train entries end: a problem with the user's flags, data or checkpoints is one line on stderr and exit
status 2; anything else is a bug and keeps its traceback.

``train()`` runs its checks inside :func:`setup_checks`, which turns the ``ValueError`` (or ``OSError``) of a bad
flag, path, mixture, table or checkpoint into a :class:`SetupError` (still a ``ValueError``, so callers of
``train()`` catch what they caught before). :func:`run_entry` is the ``main()`` of both entries: it prints a
:class:`SetupError` or a :class:`~vlcommon.ledger.SkipLimitExceeded` as ``error: ...`` and exits 2. A
``ValueError`` raised once training runs is not converted: there it is more likely a bug, and its stack is what a
report needs.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from vlcommon.callbacks import run_layout
from vlcommon.checkpoints import choose_resume, mark_complete, require_usable, unmark
from vlcommon.ledger import SkipLimitExceeded, remove_stale_temporaries
from vlcommon.trainer import leave_distributed

logger = logging.getLogger(__name__)
USAGE_EXIT_STATUS = 2  # argparse's status for bad flags: the same for a bad value of a flag


class SetupError(ValueError):
    """A flag, data or checkpoint problem found before training: the message names the setting or the record."""


@contextmanager
def setup_checks() -> Iterator[None]:
    """Everything before the first step: a ``ValueError`` here is the user's to fix (see the module docstring)."""
    try:
        yield
    except SetupError:
        raise
    except (ValueError, OSError) as error:  # OSError: a path that does not exist or cannot be read
        raise SetupError(str(error)) from error


def check_deepspeed_file(value) -> None:
    """``--deepspeed FILE``: readable JSON, or a ``ValueError`` naming the flag and the file (transformers' own
    reading names neither: "Expecting property name ... line 1 column 35")."""
    if not isinstance(value, str):
        return  # a dict given in code, or no DeepSpeed
    try:
        json.loads(Path(value).read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"--deepspeed {value}: {error}") from error


def resolve_resume(args) -> str | None:
    """``--resume auto`` picks the newest checkpoint in ``output_dir`` whose contents verify, warning (once, not
    per rank) about each newer one it passes over (LLaVA-NeXT resumes from any ``checkpoint-*``, including one a
    crash left half-written); ``--resume DIR`` must verify too; ``never`` starts afresh."""
    if args.resume == "never":
        return None
    layout = run_layout(args)
    if args.resume != "auto":
        notes = require_usable(args.resume, layout, allow_partial=args.allow_partial_resume)
        chosen = args.resume
    else:
        choice = choose_resume(args.output_dir, layout, allow_partial=args.allow_partial_resume)
        notes, chosen = choice.warnings, choice.folder
    if args.should_log:
        for note in notes:
            warnings.warn(note, stacklevel=2)
    return str(chosen) if chosen is not None else None


def init_distributed_for_cpu(args) -> None:
    """DeepSpeed without CUDA: its process group on gloo (the tests' and laptops' case)."""
    import torch

    if args.deepspeed and not torch.cuda.is_available():
        import deepspeed

        deepspeed.init_distributed(dist_backend="gloo")


def configure_logging(args) -> None:
    """INFO on the process that logs, WARNING on the others: one copy of each message per run, not per rank."""
    logging.basicConfig(
        level=logging.INFO if args.should_log else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def resume_point(args) -> str | None:
    """After the flag and data checks, before the model: the process group (gloo on a CPU), the checkpoint to
    resume from (:func:`resolve_resume`; a bad one stops here) and the leftovers of a killed write removed."""
    init_distributed_for_cpu(args)
    resume = resolve_resume(args)
    remove_leftovers(args)
    return resume


def remove_leftovers(args) -> None:
    """On the process that saves, before anything is written: the temporaries that a killed run's atomic writes
    left in the output folder (a full-size copy of the weights, when the kill hit the final save)."""
    if not args.should_save:
        return
    for path in remove_stale_temporaries(args.output_dir):
        logger.warning("removed %s, left by a write that was killed", path)


def train_and_mark(trainer, resume: str | None, save: Callable[[Path], None]) -> None:
    """Both entries' run after :func:`setup_checks`: train (from ``resume``), then ``save(output_dir)`` the final
    weights, then the ``COMPLETE`` marker. A relaunched finished run rewrites its final output, so the marker is
    removed first: the next stage (and its script) only trusts an output that holds it."""
    args = trainer.args
    out = Path(args.output_dir)
    if resume:
        logger.info("resuming from %s", resume)
    else:
        logger.info("starting from step 0 (no complete checkpoint in %s)", out)
    if args.should_save:
        unmark(out)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_state()
    save(out)
    if args.should_save:
        mark_complete(out, trainer.state.global_step, manifest=False)
    logger.info(trainer.bad_samples.merged.summary())


def run_training(argv: list[str] | None, *, check: Callable, prepare: Callable, save: Callable) -> tuple:
    """The sequence of both train entries: ``check(argv)`` (the flags, data, resume point and config; a user's
    error becomes one :class:`SetupError`, before any weight is read), ``prepare(checked)`` (the model and its
    Trainer), then :func:`train_and_mark` with ``save(trainer, folder)`` for the final weights. ``checked`` must
    carry ``resume``. Returns ``(checked, trainer)``."""
    with setup_checks():
        checked = check(argv)
    trainer = prepare(checked)
    train_and_mark(trainer, checked.resume, lambda out: save(trainer, out))
    return checked, trainer


def run_entry(train: Callable[[], object], *, program: str) -> None:
    """``main()`` of a train entry: run, leave the process group together, or print a user error and exit 2."""
    try:
        train()
    except (SetupError, SkipLimitExceeded) as error:
        print(f"{program}: error: {error}", file=sys.stderr, flush=True)
        sys.exit(USAGE_EXIT_STATUS)
    leave_distributed()
