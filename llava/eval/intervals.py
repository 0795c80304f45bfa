"""Per-document scores from lmms-eval's logs, for the intervals of :mod:`vlcommon.intervals`.

* :func:`sample_scores`: ``doc_id -> score`` of one task from the ``*_samples_<task>.jsonl`` files that
  ``--log_samples`` writes (the eval scripts always pass it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path


def sample_files(paths: Sequence[str | Path], task: str) -> list[Path]:
    """``*_samples_<task>.jsonl`` named directly or found under directories, oldest first (by name: lmms-eval
    prefixes a timestamp)."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += path.rglob(f"*_samples_{task}.jsonl")
        elif path.name.endswith(f"_samples_{task}.jsonl"):
            found.append(path)
    return sorted(found, key=lambda p: p.name)


def sample_scores(paths: Sequence[str | Path], task: str, metric: str) -> dict[int, float]:
    """Per-document scores of ``task`` (``metric`` as lmms-eval names it, e.g. ``exact_match``); a later file's
    documents replace an earlier one's. Empty when no samples were logged."""
    scores: dict[int, float] = {}
    for path in sample_files(paths, task):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            record = json.loads(line)
            if metric not in record:
                raise ValueError(f"{path}:{number}: no {metric!r} score in the sample (fields {sorted(record)})")
            scores[int(record["doc_id"])] = float(record[metric])
    return scores
