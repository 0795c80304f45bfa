"""A demo step in a process of its own, its output in a log file: what the demos' stages, experts and jobs share."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def run_logged(command: list[str], *, env: dict[str, str], log: Path, cwd: Path, who: str) -> float:
    """Run ``command`` with stdout and stderr into ``log``; the seconds it took.

    A failure stops the demo (``SystemExit``) naming ``who`` failed, the exit code and the log: the traceback is in
    the log, and the demo cannot go on without what the step makes."""
    started = time.time()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        code = subprocess.call(command, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=cwd)
    if code != 0:
        raise SystemExit(f"{who} failed (exit {code}); see {log}")
    return time.time() - started
