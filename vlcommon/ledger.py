"""Bad-sample accounting: a broken record is skipped, named in a warning, counted, and reported.

The dataset raises :class:`BadSample` for a record it cannot use and replaces it with the next good one, so
batches keep their size (every rank must run the same number of steps). The skip events travel with the batch
from the dataloader workers to the trainer, which keeps a :class:`BadSampleLedger`: counts per reason and per
source file, a few examples of each reason, the share of skipped records, and a limit on that share.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

MAX_EXAMPLES_PER_REASON = 5
MAX_FILTERED_DRAWS = 4096  # stand-in draws under a filter (``fits``) before the caller's fallback
# Records seen before ``max_share`` is enforced: the one default of both train entries' ``--bad_sample_min_seen``.
# Fewer and one bad record among the first dozen would stop a run at a share no long run ever reaches.
DEFAULT_MIN_SEEN = 200
DEFAULT_MAX_SHARE = 0.01
DATA_REPORT_KEY = "data_report"  # the batch entry that carries its skip events from the workers to the trainer


class BadSample(Exception):
    """A record that cannot be trained on. ``kind`` is a short category used for counting; the message names the
    field and the problem."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class SkipEvent(NamedTuple):
    sample_id: str
    source: str
    kind: str
    reason: str


class SkipLimitExceeded(RuntimeError):
    pass


@dataclass(kw_only=True)
class BadSampleLedger:
    """Counts of skipped records; ``max_share`` stops the run once enough records were seen (``min_seen``)."""

    max_share: float = DEFAULT_MAX_SHARE
    min_seen: int = DEFAULT_MIN_SEEN
    seen: int = 0
    skipped: int = 0
    truncated: int = 0
    by_kind: Counter = field(default_factory=Counter)
    by_source: Counter = field(default_factory=Counter)
    examples: dict[str, list[dict]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.max_share <= 1:
            raise ValueError(f"max_bad_sample_share={self.max_share} must be in [0, 1]")

    @property
    def share(self) -> float:
        return self.skipped / self.seen if self.seen else 0.0

    def record(self, *, seen: int, events: list[dict], truncated: int = 0) -> None:
        """``events``: :class:`SkipEvent` fields as dicts (they cross process boundaries inside batches)."""
        self.seen += seen
        self.truncated += truncated
        for event in events:
            self.skipped += 1
            self.by_kind[event["kind"]] += 1
            self.by_source[event["source"]] += 1
            examples = self.examples.setdefault(event["kind"], [])
            if len(examples) < MAX_EXAMPLES_PER_REASON:
                examples.append(dict(event))

    def check(self) -> None:
        if self.seen >= self.min_seen and self.share > self.max_share:
            raise SkipLimitExceeded(
                f"{self.skipped} of {self.seen} records were skipped as bad ({self.share:.1%} > "
                f"max_bad_sample_share={self.max_share:.1%}); by reason: {dict(self.by_kind)}; by file: "
                f"{dict(self.by_source)}. Fix the data or raise --max_bad_sample_share."
            )

    def merge(self, other: BadSampleLedger) -> None:
        self.seen += other.seen
        self.skipped += other.skipped
        self.truncated += other.truncated
        self.by_kind.update(other.by_kind)
        self.by_source.update(other.by_source)
        for kind, examples in other.examples.items():
            mine = self.examples.setdefault(kind, [])
            mine.extend(examples[: MAX_EXAMPLES_PER_REASON - len(mine)])

    def to_dict(self) -> dict:
        return {
            "seen": self.seen,
            "skipped": self.skipped,
            "share": round(self.share, 6),
            "truncated": self.truncated,
            "max_share": self.max_share,
            "by_reason": dict(self.by_kind),
            "by_source": dict(self.by_source),
            "examples": self.examples,
        }

    @classmethod
    def from_dict(cls, data: dict, *, max_share: float, min_seen: int) -> BadSampleLedger:
        return cls(
            max_share=max_share,
            min_seen=min_seen,
            seen=data["seen"],
            skipped=data["skipped"],
            truncated=data.get("truncated", 0),
            by_kind=Counter(data["by_reason"]),
            by_source=Counter(data["by_source"]),
            examples={k: list(v) for k, v in data["examples"].items()},
        )

    def summary(self) -> str:
        reasons = ", ".join(f"{kind}: {count}" for kind, count in self.by_kind.most_common()) or "none"
        return f"bad samples: {self.skipped} of {self.seen} skipped ({self.share:.2%}); {reasons}"


def stand_in(index: int, size: int, build: Callable[[int], dict], known_bad: set[int],
             fits: Callable[[int], bool] | None = None) -> dict | None:  # fmt: skip
    """A good record to train on in place of bad record ``index``: drawn at random, seeded by ``index``, so a block
    of bad records does not make its next good neighbour train once for every bad record before it, and the choice
    is the same on every run (exact resume). Drawn one at a time, not as a permutation of millions of records per
    bad one. ``known_bad`` (updated) spares the rebuild of records already found bad; they are counted when they
    are drawn themselves. ``fits`` (a cheap test, no build) limits the candidates, e.g. to those that fit the bad
    record's slot in a packed row; None is returned when no candidate passing it was found."""
    rng = random.Random(index)
    # A filter that few records pass would otherwise draw 2 x millions of times per bad record in a data worker.
    for _ in range(2 * size if fits is None else min(2 * size, MAX_FILTERED_DRAWS)):
        candidate = rng.randrange(size)
        if candidate == index or candidate in known_bad or (fits is not None and not fits(candidate)):
            continue
        try:
            return build(candidate)
        except BadSample:
            known_bad.add(candidate)
    if fits is not None:
        return None
    raise RuntimeError(f"every one of the {size} samples is bad (record {index}: see the warnings above)")


def item_or_stand_in(
    index: int,
    size: int,
    build: Callable[[int], dict],
    known_bad: set[int],
    event_of: Callable[[int, BadSample], SkipEvent],
    logger,
    *,
    fits: Callable[[int], bool] | None = None,
    blank: Callable[[], dict] | None = None,
) -> dict:
    """Record ``index`` built, or, when it is bad, a good stand-in (so batches keep their size), with the skip
    listed in the item's ``skipped``. Only record ``index`` itself is counted: each record is drawn once an epoch,
    so each bad record counts once an epoch, whatever the stand-in search passes over. With ``fits``, only records
    passing it stand in, and ``blank()`` (an item that trains nothing) is used when none does."""
    try:
        item = build(index)
    except BadSample as bad:
        event = event_of(index, bad)
        logger.warning("skipping sample %r from %s: %s", event.sample_id, event.source, event.reason)
        item = stand_in(index, size, build, known_bad, fits)
        if item is None:
            assert blank is not None, "a stand-in filter needs a blank item to fall back on"
            item = blank()
        item["skipped"] = [event._asdict()]
        return item
    item["skipped"] = []
    return item


# ``.{name}.tmp{pid}@{host}``: atomic_write's temporary beside ``name``, one per writing process. The host tells a
# relaunch whether it can judge the writer's pid (a shared file system sees other nodes' temporaries too); names
# without it are those of earlier versions.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.tmp(?P<pid>\d+)(?:@(?P<host>[^@/]+))?$")
_HOST = socket.gethostname().replace("/", "_").replace("@", "_") or "localhost"


def atomic_write(path: str | Path, write) -> None:
    """``write(tmp)`` into a temporary file beside ``path``, then rename: a reader never sees a half-written file.
    A SIGKILL between the two skips the clean-up below: :func:`remove_stale_temporaries` finds what it left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(path.with_name(f".{path.name}.tmp{os.getpid()}@{_HOST}"))  # per process; the usual permissions
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporaries of :func:`atomic_write` in ``folder`` and its subfolders (a run's output: its files,
    ``backbone/``, ``checkpoint-N/``) whose writer no longer runs: it was killed mid-write, and a relaunch calls
    this before it writes anything. Only this host's temporaries are judged (by pid); another host's are kept, as
    is a temporary of another live process here. This process's own pid counts as stale: a relaunch in a fresh
    container often gets the pid of the run it replaces. Returns what was deleted."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted([*folder.glob(".*.tmp*"), *folder.glob("*/.*.tmp*")]):
        match = _TEMPORARY.match(path.name)
        if match is None or not path.is_file() or match["host"] not in (None, _HOST) or _alive(int(match["pid"])):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # someone else's process; a number no pid of ours can have
        return True
    return True


def write_json_atomic(path: str | Path, data) -> None:
    """Write JSON through a temporary file and a rename, so a crash never leaves half a report."""

    def dump(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)

    atomic_write(path, dump)
