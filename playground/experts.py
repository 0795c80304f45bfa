"""Stage 0 inside the demo: the tower and the LLM pre-trained side by side, each in its own process and threads.

Each runs ``python -m playground.stage0.{tower,llm}`` with a log under ``logs/``; a finished expert (its folder is
``COMPLETE``) is reused. The experts are what every variant starts from, so nothing here depends on a variant.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from playground.jobs import run_logged
from playground.stage0 import finished, read_report

EXPERTS = {"tower": "siglip-pretrained", "llm": "qwen2-pretrained"}


def expert_dirs(work: Path) -> dict[str, Path]:
    return {name: work / "models" / folder for name, folder in EXPERTS.items()}


def _run(name: str, out: Path, *, seed: int, steps: int, threads: int, log: Path, repo: Path) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    command = [sys.executable, "-m", f"playground.stage0.{name}", str(out), "--seed", str(seed), "--steps", str(steps)]
    return run_logged(command, env=env, log=log, cwd=repo, who=f"[playground] stage 0 ({name})")


def pretrain_experts(work: Path, *, seed: int, steps: dict[str, int], jobs: int, repo: Path) -> dict[str, dict]:
    """Pre-train the unfinished experts (in parallel up to ``jobs``); returns each one's report."""
    dirs = expert_dirs(work)
    todo = [name for name, folder in dirs.items() if not finished(folder)]
    threads = max(1, (os.cpu_count() or 1) // max(1, min(jobs, len(todo) or 1)))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {
            name: pool.submit(
                _run, name, dirs[name], seed=seed, steps=steps[name], threads=threads,
                log=work / "logs" / f"stage0_{name}.log", repo=repo,
            )
            for name in todo
        }  # fmt: skip
        for future in futures.values():
            future.result()
    return {name: read_report(folder) for name, folder in dirs.items()}


def summary(reports: dict[str, dict]) -> list[str]:
    """One line per expert: its loss and its probe, before and after pre-training."""
    tower, llm = reports["tower"], reports["llm"]
    retrieval, random_tower = tower["after"]["retrieval"], tower["before"]["retrieval"]
    tower_line = (
        f"stage 0 tower: SigLIP loss {tower['losses'][0]:.2f} -> {tower['losses'][-1]:.2f} in {tower['seconds']:.0f} "
        f"s; held-out retrieval top-1 {100 * retrieval['accuracy']:.1f}% (random tower "
        f"{100 * random_tower['accuracy']:.1f}%, chance {100 * retrieval['chance']:.1f}%, galleries of "
        f"{retrieval['gallery']})"
    )
    llm_line = (
        f"stage 0 LLM: loss {llm['losses'][0]:.2f} -> {llm['losses'][-1]:.2f} in {llm['seconds']:.0f} s; held-out "
        f"perplexity {llm['before']['perplexity']:.0f} -> {llm['after']['perplexity']:.2f}; answers from context "
        f"{100 * llm['after']['answer_top1']:.0f}% top-1"
    )
    return [tower_line, llm_line]
