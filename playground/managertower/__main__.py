"""``python -m playground.managertower [--work DIR] [--reduced] [--seed 0] [--jobs 2]``: the ManagerTower demo.

Data, the two experts, then per variant pre-training, VQA and retrieval through the real train entry (two jobs at a
time, one thread each: :mod:`playground.managertower.worker`), then held-out scoring, the report and the checks. It
exits 1 when a check fails. A rerun in the same work dir reuses every finished stage.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from playground.managertower.settings import TwoTowerDemoConfig

REPO = Path(__file__).resolve().parents[2]


def _log(message: str) -> None:
    print(f"[managertower demo] {message}", flush=True)


def train_all(cfg: TwoTowerDemoConfig, jobs: int) -> None:
    """Data, experts and every variant's runs; each step skipped when its outputs are finished."""
    from playground.managertower import runs
    from playground.managertower.data import generate
    from playground.managertower.experts import base_config
    from playground.managertower.worker import EXPERTS, run_jobs
    from playground.stage0 import finished

    generate(cfg.data, counts=cfg.counts, seed=cfg.seed)
    tokenizer = _tokenizer(cfg)
    runs.write_base_config(cfg, base_config(cfg.sizes, len(tokenizer)))
    _log(f"data in {cfg.data}; logs in {cfg.work / 'logs'}")

    def trained(variant: str) -> bool:
        return all(runs.finished(cfg.run_dir(variant, task), task) for task in runs.TASKS)

    seconds = run_jobs(cfg, list(EXPERTS), parallel=jobs, done=lambda job: finished(cfg.experts / job))
    seconds |= run_jobs(cfg, list(cfg.variants), parallel=jobs, done=trained)
    for job, took in seconds.items():
        _log(f"{job}: {took:.0f} s")


def _tokenizer(cfg: TwoTowerDemoConfig):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(cfg.tokenizer)


def evaluate_all(cfg: TwoTowerDemoConfig, started: float) -> int:
    """Held-out scores, intervals, figures, the report; prints the tables and the checks. Returns the exit code."""
    import torch

    from managertower.config import Fusion
    from managertower.presets import preset
    from playground.managertower import experts, markdown, report, runs, scoring
    from playground.managertower.settings import VARIANTS

    # One thread, as the workers: scores that do not depend on the machine's cores, and no stalls on shared ones.
    torch.set_num_threads(1)
    tokenizer = _tokenizer(cfg)
    dataset = scoring.held_out_dataset(cfg, tokenizer)
    outcomes = [
        report.Outcome(
            key=v,
            vqa=scoring.vqa_scores(cfg, cfg.run_dir(v, "vqa"), dataset, tokenizer),
            vqa_seen=runs.results(cfg, v, "vqa")["metrics"]["val"],
            f30k=runs.results(cfg, v, "f30k")["metrics"],
            pretrain_losses=runs.losses(cfg, v, "pretrain"),
            parts={task: runs.loss_parts(cfg, v, task) for task in runs.TASKS},
        )
        for v in cfg.variants
    ]
    baselines, bounds = scoring.blind_baselines(cfg), scoring.retrieval_bounds(cfg, tokenizer)
    rows = report.interval_rows(cfg, outcomes, baselines, bounds)
    out = cfg.report
    out.mkdir(parents=True, exist_ok=True)
    report.write_csvs(out, outcomes, rows)
    report.plot(out, outcomes, rows, bounds)
    figures = [v for v in cfg.variants if preset(VARIANTS[v].preset).fusion is Fusion.MANAGERTOWER]
    for variant in figures:
        scoring.manager_figures(cfg, variant, dataset, tokenizer)
    expert_reports = experts.reports(cfg)
    lines = experts.checks(expert_reports) + report.checks(outcomes, baselines, bounds)
    sections = markdown.Sections(
        experts=experts.summary(expert_reports),
        paper_tables=report.paper_tables(cfg, out / "paper_tables"),
        figures=figures,
        checks=lines,
        bounds=bounds,
        minutes=(time.time() - started) / 60,
    )
    text = markdown.render(cfg, outcomes, rows, list(baselines), sections)
    (out / "report.md").write_text(text)
    print(text.split("![intervals]")[0])
    for line, ok in lines:
        print(f"  [{'ok' if ok else 'FAILED'}] {line}")
    _log(f"report, CSVs and figures in {out}")
    return 0 if all(ok for _, ok in lines) else 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--work",
        type=Path,
        default=REPO / "playground" / "runs" / "managertower",
        help="working directory (default playground/runs/managertower)",
    )
    parser.add_argument("--reduced", action="store_true", help="the CI version: two variants, fewer steps and data")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, experts and training (default 0)")
    parser.add_argument("--jobs", type=int, default=2, help="jobs side by side, one thread each (default 2)")
    args = parser.parse_args(argv)
    started = time.time()
    cfg = TwoTowerDemoConfig.build(args.work, reduced=args.reduced, seed=args.seed)
    train_all(cfg, args.jobs)
    raise SystemExit(evaluate_all(cfg, started))


if __name__ == "__main__":
    main()
