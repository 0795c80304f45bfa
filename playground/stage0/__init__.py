"""Stage 0 of the playground: pre-trained tiny unimodal experts, as the paper's method starts from.

* :mod:`playground.stage0.tower`: a tiny SigLIP vision tower trained with SigLIP's own sigmoid contrastive loss
  (transformers' ``SiglipModel``, ``return_loss=True``) against a tiny SigLIP text tower on generated
  image-caption pairs; only the vision tower is kept. Probed by zero-shot retrieval and a linear probe per layer.
* :mod:`playground.stage0.llm`: a tiny Qwen2 trained as a causal LM on generated text with the real Qwen2
  tokenizer. Probed by held-out perplexity.

Each writes its checkpoint into a temporary folder, marks it ``COMPLETE`` (with the size of every file) and renames
it into place, so a folder that exists is finished and a killed run leaves nothing half-written. The same seed
gives the same weights with the same thread count (CPU kernels sum in a thread-dependent order).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from vlcommon.checkpoints import is_marked, mark_complete


def finished(folder: Path) -> bool:
    return folder.is_dir() and is_marked(folder)


def staging(folder: Path) -> Path:
    """An empty temporary sibling of ``folder`` to write into (a leftover of a killed run is removed)."""
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def publish(tmp: Path, folder: Path, *, steps: int, report: dict) -> dict:
    """Write ``report.json``, mark ``tmp`` complete and move it to ``folder`` in one rename."""
    (tmp / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    mark_complete(tmp, steps)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return report


def publish_run(tmp: Path, folder: Path, cfg, started: float, **report) -> dict:
    """``publish`` a stage's training run: its config, ``report`` (losses, probes) and the seconds since ``started``."""
    report = {"config": asdict(cfg), **report, "seconds": round(time.time() - started, 1)}
    return publish(tmp, folder, steps=cfg.steps, report=report)


def stage_parser(doc: str, steps: int) -> argparse.ArgumentParser:
    """The command line every stage takes: the output folder, a seed and the training steps (``steps`` by default)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=steps)
    return parser


def read_report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())
