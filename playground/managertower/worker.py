"""One job of the demo in its own process, on one thread:

    python -m playground.managertower.worker JOB --work DIR [--reduced] [--seed 0]

``JOB`` is an expert (``clip``, ``roberta``) or a variant (``meter``, ``bridgetower``, ``table1/saum-nd``,
``managertower``: its pre-training, VQA and retrieval runs in turn). The demo runs two jobs at a time on two cores.
One thread each: for matrices this small a second thread buys little, and two threads per job stall on each other
whenever the cores are shared. A job's numbers depend on its seed and its one thread only, not on what runs beside
it or on how many jobs run at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from playground.jobs import run_logged
from playground.managertower.settings import VARIANTS, TwoTowerDemoConfig

EXPERTS = ("clip", "roberta")
REPO = Path(__file__).resolve().parents[2]


def log_path(cfg: TwoTowerDemoConfig, job: str) -> Path:
    return cfg.work / "logs" / f"{job.replace('/', '_')}.log"


def _spawn(cfg: TwoTowerDemoConfig, job: str) -> float:
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONPATH=str(REPO),
    )
    command = [
        sys.executable,
        "-m",
        "playground.managertower.worker",
        job,
        "--work",
        str(cfg.work),
        "--seed",
        str(cfg.seed),
        *(["--reduced"] if cfg.reduced else []),
    ]
    return run_logged(command, env=env, log=log_path(cfg, job), cwd=REPO, who=f"[managertower demo] job {job}")


def run_jobs(
    cfg: TwoTowerDemoConfig, jobs: list[str], *, parallel: int, done: Callable[[str], bool]
) -> dict[str, float]:
    """Each unfinished job in its own process, ``parallel`` at a time, in order; returns the seconds of each run."""
    todo = [job for job in jobs if not done(job)]
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = {job: pool.submit(_spawn, cfg, job) for job in todo}
        return {job: future.result() for job, future in futures.items()}


def main(argv: list[str] | None = None) -> None:
    from transformers import AutoTokenizer

    from playground.managertower import experts, runs

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job", choices=(*EXPERTS, *VARIANTS))
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--reduced", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = TwoTowerDemoConfig.build(args.work, reduced=args.reduced, seed=args.seed)
    tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer)
    config = experts.base_config(cfg.sizes, len(tokenizer))
    if args.job == "clip":
        report = experts.pretrain_clip(cfg.experts / "clip", cfg, config, tokenizer)
        print(json.dumps({"after": report["after"], "seconds": report["seconds"]}))
    elif args.job == "roberta":
        report = experts.pretrain_roberta(cfg.experts / "roberta", cfg, config, tokenizer)
        print(json.dumps({"after": report["after"], "seconds": report["seconds"]}))
    else:
        print(json.dumps({"seconds": runs.run_variant(cfg, args.job)}))


if __name__ == "__main__":
    main()
