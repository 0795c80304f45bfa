"""Run the train entry and SIGKILL this process at a chosen file event (a helper of ``test_resume``).

    python tests/kill_at.py EVENT FOLDER [DETAIL] [--entry MODULE] -- TRAIN_ARGS...

EVENT is one of
  enter   the first file opened inside a folder named FOLDER (the folder has just appeared, holds nothing yet);
  open    a file whose name contains DETAIL is opened for writing inside FOLDER (before anything is
          written to it);
  remove  the first removal after DETAIL's while FOLDER is being deleted (DETAIL is gone, and whatever was
          deleted before it);
  weights the safetensors file at path FOLDER has half its bytes on disk;
  rename  an atomic write's temporary of file DETAIL inside FOLDER is complete, and about to be renamed onto it.

MODULE is the train entry (``llava.train.train`` by default, or ``managertower.train.train``).

Python's audit hooks see the file events of the training process itself, so the kill lands at the same point on
every run; safetensors writes from Rust, so weights are written through a wrapper instead.
"""

from __future__ import annotations

import os
import signal
import sys


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _audit_trigger(event: str, pattern: str, detail: str):
    state = {"deleting": False, "removed": False}

    def hook(name: str, args: tuple) -> None:
        if name == "open" and isinstance(args[0], str):
            inside = os.path.basename(os.path.dirname(args[0])) == pattern
            writing = isinstance(args[1], str) and any(c in args[1] for c in "wax+")
            if inside and (event == "enter" or (event == "open" and writing and detail in os.path.basename(args[0]))):
                _die()
        elif name == "os.rename" and event == "rename":
            source = os.fspath(args[0])
            inside = os.path.basename(os.path.dirname(source)) == pattern
            if inside and os.path.basename(source).startswith(f".{detail}.tmp"):
                _die()
        elif name == "shutil.rmtree" and event == "remove":
            state["deleting"] = os.path.basename(os.fspath(args[0])) == pattern
        elif name in ("os.remove", "os.rmdir") and event == "remove" and state["deleting"]:
            if state["removed"]:
                _die()
            state["removed"] = os.path.basename(os.fspath(args[0])) == detail

    return hook


def _kill_while_writing(target: str) -> None:
    import safetensors.torch
    from transformers import modeling_utils

    original = modeling_utils.safe_save_file

    def save_file(tensors, filename, metadata=None):
        if os.path.abspath(filename) != os.path.abspath(target):
            return original(tensors, filename, metadata=metadata)
        data = safetensors.torch.save(tensors, metadata=metadata)
        with open(filename, "wb") as f:
            f.write(data[: len(data) // 2])
        _die()

    modeling_utils.safe_save_file = save_file


def main() -> None:
    split = sys.argv.index("--")
    event, pattern, *rest = sys.argv[1:split]
    entry = "llava.train.train"
    if "--entry" in rest:
        at = rest.index("--entry")
        entry = rest[at + 1]
        rest = rest[:at] + rest[at + 2 :]
    train_args = sys.argv[split + 1 :]
    if event == "weights":
        _kill_while_writing(pattern)
    else:
        sys.addaudithook(_audit_trigger(event, pattern, rest[0] if rest else ""))
    import importlib

    importlib.import_module(entry).train(train_args)


if __name__ == "__main__":
    main()
