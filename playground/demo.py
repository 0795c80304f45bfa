"""The embedded default: train and evaluate all four variants on the synthetic curriculum, on a CPU.

    python -m playground.demo [--work DIR] [--reduced] [--seed 0 | --seeds 0,1,2] [--variants ...] [--jobs 2]

1. generates the playground data (``playground.data``) and pre-trains the tiny experts (stage 0,
   ``playground.stage0``: a SigLIP tower with SigLIP's sigmoid loss, a Qwen2 LM with the real Qwen2 tokenizer);
2. trains stage 1 -> 1.5 -> 2 for each variant from those experts with the cluster's stage scripts
   (``scripts/train/curriculum.sh``, one CPU process, no DeepSpeed); stage 1 is shared by the variants it is
   identical for;
3. evaluates every variant with lmms-eval through ``scripts/eval/eval_checkpoint.sh`` on the held-out tasks;
4. writes the Table-XI-style report with 95% intervals, loss curves, manager weights and the stage-0 probe under
   ``DIR/report`` and prints the table and the checks (``playground.checks``);
5. draws the paper's analysis figures for the trained variants (``llava.analysis``) under ``DIR/report/analysis``.

Fixed seeds: a rerun in a fresh directory gives the same numbers. A rerun in the same directory reuses finished
stages (their COMPLETE markers) and evaluations.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from llava.train.recipes import stage as recipe_stage
from llava.variants import VARIANT_KEYS
from llava.variants import VARIANTS as PAPER_VARIANTS
from llava.variants import variant as paper_variant
from playground.checks import bar, expert_checks, variant_checks
from playground.experts import expert_dirs, pretrain_experts
from playground.experts import summary as expert_summary
from playground.jobs import run_logged
from playground.plots import loss_history, plot_losses, plot_manager_weights, plot_probe_and_weights

REPO = Path(__file__).resolve().parents[1]
VARIANTS = VARIANT_KEYS
NAMES = {v.key: v.label for v in PAPER_VARIANTS}
STAGES = ("stage1", "stage1_5", "stage2")
FULL_EPOCHS = {"stage1": 1, "stage1_5": 1, "stage2": 3}
# The reduced data has a fifth of the descriptions, so stage 2 starts from a model that has not yet learned the chat
# template; twice the epochs over its smaller QA set give it the steps to learn the template and then the image.
REDUCED_EPOCHS = {"stage1": 1, "stage1_5": 1, "stage2": 6}


@dataclass(frozen=True, kw_only=True)
class CurriculumDemoConfig:
    work: Path
    reduced: bool = False
    seed: int = 0
    variants: tuple[str, ...] = VARIANTS
    batch: dict[str, int] = field(default_factory=lambda: {"stage1": 8, "stage1_5": 4, "stage2": 4})
    lr: dict[str, str] = field(default_factory=lambda: {"stage1": "1e-3", "stage1_5": "1e-3", "stage2": "1e-3"})
    tower_lr: str = "2e-5"  # stages 1.5 and 2 (the tower is frozen in stage 1)
    eval_batch: int = 8
    # LLaVA-NeXT supervises every chat token of the sequence (llava.data.formatting); with the 151,936-row vocabulary
    # of a 64-wide model those positions are most of a step's cost, so the demo supervises answers only.
    supervise_chat_tokens: bool = False
    jobs: int = 2  # variants trained side by side, each on cpu_count // jobs threads
    # Pre-training steps of the tower and the LLM (the sizes are stage 0's defaults). ``--reduced`` keeps them: from
    # experts of 300 and 150 steps the curriculum taught no skill but the background (docs/playground.md).
    stage0_steps: dict[str, int] = field(default_factory=lambda: {"tower": 1600, "llm": 300})

    @property
    def epochs(self) -> dict[str, float]:
        return REDUCED_EPOCHS if self.reduced else FULL_EPOCHS

    @property
    def threads(self) -> int:
        return max(1, (os.cpu_count() or 1) // self.jobs)

    @property
    def data(self) -> Path:
        return self.work / "data"


def _log(message: str) -> None:
    tqdm.write(f"[playground] {message}")


def prepare(cfg: CurriculumDemoConfig) -> dict[str, dict]:
    """Data and the pre-trained experts (stage 0); deterministic from the seed, reused when present."""
    from playground.data import Counts, generate

    if not (cfg.data / "manifest.json").exists():
        counts = Counts.reduced() if cfg.reduced else Counts()
        generate(cfg.data, seed=cfg.seed, counts=counts)
        _log(f"data written to {cfg.data}")
    reports = pretrain_experts(cfg.work, seed=cfg.seed, steps=cfg.stage0_steps, jobs=cfg.jobs, repo=REPO)
    for line in expert_summary(reports):
        _log(line)
    return reports


def _stage1_dir(cfg: CurriculumDemoConfig, variant: str) -> Path:
    # Stage 1 (square images, projector + managers) does not depend on the grid: baseline/grid share one,
    # manager/grid_manager another.
    kind = "manager" if paper_variant(variant).manager else "plain"
    return cfg.work / "runs" / f"shared_stage1_{kind}"


def _train_env(cfg: CurriculumDemoConfig, variant: str) -> dict[str, str]:
    env = dict(
        os.environ,
        VARIANT=variant,
        PYTHON=sys.executable,
        LLM=str(expert_dirs(cfg.work)["llm"]),
        VISION_TOWER=str(expert_dirs(cfg.work)["tower"]),
        IMAGE_FOLDER=str(cfg.data),
        DATA_STAGE1=str(cfg.data / "stage1.json"),
        DATA_STAGE1_5=str(cfg.data / "stage1_5.json"),
        DATA_STAGE2=str(cfg.data / "stage2.json"),
        OUTPUT_ROOT=str(cfg.work / "runs"),
        STAGE1_DIR=str(_stage1_dir(cfg, variant)),
        NUM_GPUS="1",
        DEEPSPEED="none",
        PRECISION="fp32",
        ATTN="sdpa",
        REPORT_TO="none",
        NUM_WORKERS="0",
        SAVE_STEPS="100000",
        SAVE_STEPS_STAGE1="100000",
        MANAGER_INJECT="count:2",
        PINPOINTS_STAGE1_5="(1x1),...,(3x3)",
        PINPOINTS_STAGE2="(1x1),...,(6x6)",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        OMP_NUM_THREADS=str(cfg.threads),
    )
    for stage, suffix in (("stage1", "STAGE1"), ("stage1_5", "STAGE1_5"), ("stage2", "STAGE2")):
        env[f"BS_{suffix}"], env[f"GA_{suffix}"] = str(cfg.batch[stage]), "1"
        env[f"LR_{suffix}"] = cfg.lr[stage]
    env["VISION_LR_STAGE1_5"] = env["VISION_LR_STAGE2"] = cfg.tower_lr
    return env


def _free_port() -> int:
    # A port the OS reports free now, not a fixed one: two demos (or a demo and a test run) on one machine must not
    # collide on the launcher's rendezvous port (EADDRINUSE kills the stage).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stage_dir(cfg: CurriculumDemoConfig, variant: str, stage: str) -> Path:
    return _stage1_dir(cfg, variant) if stage == "stage1" else cfg.work / "runs" / variant / stage


# Variants that share a stage-1 directory run side by side: the second waits for the first to finish it.
_STAGE1_LOCKS: dict[Path, threading.Lock] = defaultdict(threading.Lock)


def train(cfg: CurriculumDemoConfig, variant: str, bar: tqdm) -> None:
    """Run the variant's unfinished stages through the cluster's curriculum script."""
    for stage in STAGES:
        with _STAGE1_LOCKS[_stage1_dir(cfg, variant)] if stage == "stage1" else nullcontext():
            if not (_stage_dir(cfg, variant, stage) / "COMPLETE").exists():
                _train_stage(cfg, variant, stage)
        bar.update(1)


def _train_stage(cfg: CurriculumDemoConfig, variant: str, stage: str) -> None:
    env = dict(
        _train_env(cfg, variant),
        STAGES=recipe_stage(stage).number,
        MASTER_PORT=str(_free_port()),
    )
    log = cfg.work / "logs" / f"{variant}_{stage}.log"
    args = [
        "--num_train_epochs",
        str(cfg.epochs[stage]),
        "--seed",
        str(cfg.seed),
        "--data_seed",
        str(cfg.seed),
        "--gradient_checkpointing",
        "False",
        "--logging_steps",
        "2",
        "--disable_tqdm",
        "True",
    ]
    if stage != "stage1":  # stage 1 is the plain template: no chat tokens
        args += ["--unmask_chat_tokens", str(cfg.supervise_chat_tokens)]
    script = str(REPO / "scripts" / "train" / "curriculum.sh")
    seconds = run_logged(["bash", script, *args], env=env, log=log, cwd=REPO, who=f"[playground] {variant} {stage}")
    losses = [loss for _, loss in loss_history(_stage_dir(cfg, variant, stage))]
    _log(f"{NAMES[variant]} {stage}: loss {losses[0]:.3f} -> {losses[-1]:.3f} in {seconds:.0f} s")


def evaluate(cfg: CurriculumDemoConfig, variant: str, tasks: list[str]) -> Path:
    out = cfg.work / "eval" / variant
    if any(out.rglob("*_results.json")):
        return out
    env = dict(
        os.environ,
        CKPT=str(_stage_dir(cfg, variant, "stage2")),
        OUT=str(out),
        PYTHON=sys.executable,
        NUM_GPUS="1",
        TASKS=",".join(tasks),
        INCLUDE_PATH=str(cfg.data / "tasks"),
        BATCH_SIZE=str(cfg.eval_batch),
        OMP_NUM_THREADS=str(cfg.threads),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HOME=str(cfg.work / "hf_home"),
    )
    log = cfg.work / "logs" / f"{variant}_eval.log"
    script = str(REPO / "scripts" / "eval" / "eval_checkpoint.sh")
    run_logged(["bash", script], env=env, log=log, cwd=REPO, who=f"[playground] evaluating {variant}")
    return out


def report(
    cfg: CurriculumDemoConfig, evals: dict[str, Path], chance: dict[str, float], experts: dict[str, dict]
) -> dict:
    from llava.eval.benchmarks import load_benchmarks
    from llava.eval.report import build_report

    benchmarks = load_benchmarks(cfg.data / "tasks" / "benchmarks.json")
    out = cfg.work / "report"
    result = build_report(
        {NAMES[v]: [str(path)] for v, path in evals.items()},
        out,
        benchmarks=benchmarks,
        title="Playground: zero-shot on the held-out synthetic tasks (tiny CPU models)",
        chance=chance,
    )
    runs = {NAMES[v]: {stage: _stage_dir(cfg, v, stage) for stage in STAGES} for v in evals}
    plot_losses(runs, out)
    managed = {NAMES[v]: _stage_dir(cfg, v, "stage2") for v in evals if paper_variant(v).manager}
    plot_manager_weights(managed, out)
    plot_probe_and_weights(experts["tower"], managed, out)
    analyse_variants(cfg, list(evals), out / "analysis")
    result["fit"] = fit_variants(cfg, list(evals), out)
    return result


FIT_CONVERSATIONS = 100  # stage-2 conversations scored per variant: seconds each, and +-10 points per kind


def fit_variants(cfg: CurriculumDemoConfig, variants: list[str], out: Path) -> list[str]:
    """Training-set answer accuracy per kind (playground.fit): whether a skill missed on held-out images was learned on
    the training images at all. Written to ``fit.md``/``fit.json``; returns the table's lines."""
    from playground.fit import heading, measure, table

    fits = {NAMES[v]: measure(_stage_dir(cfg, v, "stage2"), cfg.data, limit=FIT_CONVERSATIONS) for v in variants}
    lines = table(fits)
    (out / "fit.json").write_text(json.dumps({name: fit.to_dict() for name, fit in fits.items()}, indent=1) + "\n")
    title = heading(FIT_CONVERSATIONS)
    (out / "fit.md").write_text(f"# {title}\n\n" + "\n".join(lines) + "\n")
    return [title + ":", *lines]


ANALYSIS_DOCS = 4  # documents per held-out task: enough for smooth curves on the tiny models, seconds per variant


def analyse_variants(cfg: CurriculumDemoConfig, variants: list[str], out: Path) -> dict:
    """The paper's analysis figures (llava.analysis) for the trained variants, on the held-out task documents."""
    from llava.analysis.checkpoints import parse_checkpoints
    from llava.analysis.run import AnalysisConfig, analyse
    from llava.analysis.samples import TaskSamples

    tasks = [entry["task"] for entry in json.loads((cfg.data / "tasks" / "benchmarks.json").read_text())]
    checkpoints = parse_checkpoints([f"{NAMES[v]}={_stage_dir(cfg, v, 'stage2')}" for v in variants])
    samples = TaskSamples(tasks, include_path=str(cfg.data / "tasks"), limit=ANALYSIS_DOCS)
    return analyse(checkpoints, samples, AnalysisConfig(out=out))


def _train_and_evaluate(cfg: CurriculumDemoConfig, variant: str, tasks: list[str], bar: tqdm) -> Path:
    train(cfg, variant, bar)
    bar.set_postfix_str(f"evaluating {NAMES[variant]}")
    out = evaluate(cfg, variant, tasks)
    bar.update(1)
    return out


def run(cfg: CurriculumDemoConfig) -> int:
    started = time.time()
    experts = prepare(cfg)
    tasks = [entry["task"] for entry in json.loads((cfg.data / "tasks" / "benchmarks.json").read_text())]
    _log(
        f"training and evaluating {len(cfg.variants)} variants, {cfg.jobs} at a time ({cfg.threads} threads each); "
        f"logs in {cfg.work / 'logs'}"
    )
    with (
        tqdm(total=len(cfg.variants) * (len(STAGES) + 1), desc="stages and evaluations", unit="step") as bar_,
        ThreadPoolExecutor(max_workers=cfg.jobs) as pool,
    ):
        futures = {v: pool.submit(_train_and_evaluate, cfg, v, tasks, bar_) for v in cfg.variants}
        evals = {v: future.result() for v, future in futures.items()}
    chance = json.loads((cfg.data / "tasks" / "chance.json").read_text())
    result = report(cfg, evals, chance, experts)
    print((result["out"] / "report.md").read_text().split("## Table XII")[0])
    print("\n".join(result["fit"]) + "\n")
    names = {v: NAMES[v] for v in cfg.variants}
    lines = expert_checks(experts)
    lines += variant_checks(names, lambda v, stage: _stage_dir(cfg, v, stage), STAGES, result, chance)
    for text, ok in lines:
        print(f"  [{'ok' if ok else 'FAILED'}] {text}")
    for line in expert_summary(experts) + bar(list(names.values()), result, chance):
        print(f"  {line}")
    print(f"report, CSVs and plots in {result['out']} ({(time.time() - started) / 60:.1f} min)")
    return 0 if all(ok for _, ok in lines) else 1


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds needs distinct seeds, got {text!r}")
    return seeds


def run_seeds(cfg: CurriculumDemoConfig, seeds: tuple[int, ...]) -> int:
    """The demo once per seed under ``work/seed<N>``, then the mean and spread over seeds in ``work/report``."""
    from playground.seeds import summarise

    codes, reports = [], {}
    for seed in seeds:
        _log(f"seed {seed} of {', '.join(map(str, seeds))}")
        seeded = CurriculumDemoConfig(work=cfg.work / f"seed{seed}", reduced=cfg.reduced, seed=seed,
                                      variants=cfg.variants, jobs=cfg.jobs)  # fmt: skip
        codes.append(run(seeded))
        reports[seed] = seeded.work / "report"
    path = summarise(reports, cfg.work / "report")
    print(path.read_text())
    return max(codes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=REPO / "playground" / "runs", help="working directory")
    parser.add_argument("--reduced", action="store_true", help="a few-minute version (CI)")
    parser.add_argument("--seed", type=int, default=0, help="the seed of data, experts and training (default 0)")
    parser.add_argument("--seeds", type=_seeds, help="comma-separated: one whole run per seed, then mean and spread")
    parser.add_argument("--variants", help="comma-separated (default: all four; with --reduced baseline,grid_manager)")
    parser.add_argument("--jobs", type=int, default=2, help="variants trained side by side (default 2)")
    args = parser.parse_args(argv)
    default = "baseline,grid_manager" if args.reduced else ",".join(VARIANTS)
    variants = tuple(v for v in (args.variants or default).split(",") if v)
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    cfg = CurriculumDemoConfig(work=args.work, reduced=args.reduced, seed=args.seed, variants=variants, jobs=args.jobs)
    raise SystemExit(run_seeds(cfg, args.seeds) if args.seeds else run(cfg))


if __name__ == "__main__":
    main()
