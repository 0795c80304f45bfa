"""vlcommon's atomic writes: a killed writer's temporaries are found and removed, a live writer's are kept."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from vlcommon.ledger import atomic_write, remove_stale_temporaries


def _finished_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_temporaries_are_removed_and_a_live_writers_kept(tmp_path):
    """This host's temporaries of a dead writer (and of this pid: a relaunch in a container reuses it) go, in the
    folder and its subfolders; a live writer's, another host's (a shared file system), a deeper one and files that
    only look alike stay."""
    host = socket.gethostname()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "backbone" / "deeper").mkdir(parents=True)
        stale = [tmp_path / "backbone" / f".model.safetensors.tmp{_finished_pid()}@{host}",
                 tmp_path / f".config.json.tmp{os.getpid()}@{host}",
                 tmp_path / f".bad_samples.json.tmp{_finished_pid()}"]  # an earlier version's name  # fmt: skip
        kept = [tmp_path / f".model.safetensors.tmp{live.pid}@{host}",
                tmp_path / f".model.safetensors.tmp{_finished_pid()}@another-node",
                tmp_path / "backbone" / "deeper" / f".x.tmp{_finished_pid()}@{host}",
                tmp_path / f".x.tmp{2**70}@{host}", tmp_path / "notes.tmp1", tmp_path / ".hidden"]  # fmt: skip
        for path in stale + kept:
            path.write_bytes(b"x" * 10)
        assert sorted(remove_stale_temporaries(tmp_path)) == sorted(stale)
        assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)
        atomic_write(tmp_path / "a.json", lambda tmp: Path(tmp).write_text("{}"))  # its temporary is renamed
        assert remove_stale_temporaries(tmp_path) == [] and (tmp_path / "a.json").read_text() == "{}"
    finally:
        live.kill()
        live.wait()
