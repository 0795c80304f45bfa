"""The flags both train entries share, and how both parse their command line.

``RunArguments`` joins each entry's ``TrainingArguments`` (resume, the launcher's run config) and
``BadSampleArguments`` its ``DataArguments`` (the bad-record budget). :func:`parse_arguments` reads a command line
into the entry's dataclasses: on a machine without CUDA ``--use_cpu True`` is implied, and the values of
``--run_config FILE`` (what a launcher resolved from a recipe, ``vlcommon.runconfig``) are the flags' defaults,
handed over as typed values (no string passes through a parser), so a flag given on the command line still wins.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import HfArgumentParser

from vlcommon.entry import check_deepspeed_file
from vlcommon.ledger import DEFAULT_MAX_SHARE, DEFAULT_MIN_SEEN


@dataclass(kw_only=True)
class RunArguments:
    run_config: str | None = field(
        default=None, metadata={"help": "a launcher's run config (JSON): its values are the other flags' defaults"}
    )
    resume: str = field(
        default="auto", metadata={"help": "auto (newest checkpoint that verifies) | never | a checkpoint dir"}
    )
    allow_partial_resume: bool = field(
        default=False,
        metadata={
            "help": "resume from a checkpoint lacking optimizer, scheduler or RNG state (weights only: not exact)"
        },
    )
    # transformers restores callback states (our bad-sample counts) only when asked; a resume must continue them.
    restore_callback_states_from_checkpoint: bool = True

    def __post_init__(self) -> None:
        # Mixed in before transformers.TrainingArguments: check the file, then hand on along the MRO.
        check_deepspeed_file(self.deepspeed)
        super().__post_init__()


@dataclass(kw_only=True)
class BadSampleArguments:
    max_bad_sample_share: float = field(
        default=DEFAULT_MAX_SHARE, metadata={"help": "stop when more records than this are bad"}
    )
    bad_sample_min_seen: int = field(
        default=DEFAULT_MIN_SEEN, metadata={"help": "records seen before the share is enforced"}
    )


def run_config_path(argv: list[str]) -> str | None:
    """The ``--run_config`` of a command line (argparse's reading: the last one wins)."""
    reader = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    reader.add_argument("--run_config", default=None)
    return reader.parse_known_args(argv)[0].run_config


def parse_arguments(types: tuple[type, ...], argv: list[str] | None, *,
                    defaults: Callable[[str], dict] | None = None) -> tuple:  # fmt: skip
    """``argv`` (default: the process's) into instances of ``types``; ``defaults(path)`` gives the typed defaults
    that the ``--run_config`` file holds."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not torch.cuda.is_available() and not any(a.startswith("--use_cpu") for a in argv):
        argv += ["--use_cpu", "True"]
    parser = HfArgumentParser(types)
    path = run_config_path(argv)
    if path is not None and defaults is not None:
        parser.set_defaults(**defaults(path))
    return parser.parse_args_into_dataclasses(args=argv)
