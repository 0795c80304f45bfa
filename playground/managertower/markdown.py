"""``report.md`` of the demo: the setup, the experts, held-out VQA and retrieval with their intervals, the paper's
tables as ``managertower.report`` fills them, the weight figures and the checks."""

from __future__ import annotations

from dataclasses import dataclass

from playground.managertower.report import PARTS, Outcome, Row
from playground.managertower.settings import BASELINE, VARIANTS, Stage, TwoTowerDemoConfig
from vlcommon.intervals import Interval


@dataclass(frozen=True, kw_only=True, slots=True)
class Sections:
    experts: list[str]
    paper_tables: list[str]
    figures: list[str]  # variant keys with weight figures under analysis/
    checks: list[tuple[str, bool]]
    bounds: dict
    minutes: float


def _cell(interval: Interval, *, signed: bool = False) -> str:
    value = f"{interval.value:+.1f}" if signed else f"{interval.value:.1f}"
    mark = " *" if signed and interval.significant else ""
    return f"{value} [{interval.low:.1f}, {interval.high:.1f}]{mark}"


def _find(rows: list[Row], variant: str, metric: str, kind: str) -> Row | None:
    return next((r for r in rows if (r.variant, r.metric, r.kind) == (variant, metric, kind)), None)


def _stage(name: str, stage: Stage) -> str:
    return (
        f"{name} {stage.steps} steps x {stage.batch} (lr {stage.lr}, head x{stage.head}, "
        f"cross-modal x{stage.cross}, weight decay {stage.weight_decay})"
    )


def setup(cfg: TwoTowerDemoConfig) -> list[str]:
    s, st, c = cfg.sizes, cfg.steps, cfg.counts
    stages = "; ".join(_stage(name, getattr(st, name)) for name in ("pretrain", "vqa", "f30k"))
    models = (
        f"Seed {cfg.seed}{', reduced (CI) run' if cfg.reduced else ''}. Experts: {s.depth}-layer RoBERTa "
        f"(width {s.text_hidden}) and CLIP ViT (width {s.vision_hidden}, patch {s.patch}, {s.image} px), "
        f"pre-trained for {st.clip} (CLIP) and {st.roberta} (RoBERTa) steps; {s.cross_layers} co-attention layers "
        f"of width {s.cross_hidden}; managers over the top N = {s.experts} layers."
    )
    data = (
        f"Data (generated, `managertower.data.synthetic`): pre-training on {c.coco // 2} COCO-style images "
        f"(3 captions each), {c.vg} VG-style and {c.sbu} SBU-style images; VQA on {c.vqa} + {c.vqa // 2} images "
        f"(3 questions each), scored on {c.vqa_held_out} held-out images; retrieval on {c.f30k // 2} images, tested "
        f"on {c.f30k // 4}."
    )
    recipe = f"Every variant: {stages}; retrieval reranks the top {st.k_test} ITC candidates by ITM."
    return [models, "", recipe, "", data]


def vqa_table(outcomes: list[Outcome], rows: list[Row], baselines: list[str]) -> list[str]:
    base = VARIANTS[BASELINE].label
    header = "| Model | preset | VQA score | colour | shape | side | Δ vs " + base + " | val (trained on) |"
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for o in outcomes:
        cells = [_cell(_find(rows, o.label, f"vqa_{p}", "score").interval) for p in PARTS]
        delta = _find(rows, o.label, "vqa_all", f"delta vs {base}")
        change = _cell(delta.interval, signed=True) if delta else "-"
        lines.append(f"| {o.label} | `{VARIANTS[o.key].preset}` | {' | '.join(cells)} | {change} | {o.vqa_seen:.1f} |")
    for name in baselines:
        cells = [_cell(_find(rows, name, f"vqa_{p}", "baseline").interval) for p in PARTS]
        lines.append(f"| *{name}* | - | " + " | ".join(cells) + " | - | - |")
    return lines


def delta_table(outcomes: list[Outcome], rows: list[Row]) -> list[str]:
    base = VARIANTS[BASELINE].label
    lines = ["| Model | " + " | ".join(f"Δ {p}" for p in PARTS) + " |", "|---|" + "---|" * len(PARTS)]
    for o in outcomes:
        found = [_find(rows, o.label, f"vqa_{p}", f"delta vs {base}") for p in PARTS]
        if all(found):
            lines.append(f"| {o.label} | " + " | ".join(_cell(r.interval, signed=True) for r in found) + " |")
    return lines


def retrieval_table(outcomes: list[Outcome], rows: list[Row], bounds: dict) -> list[str]:
    lines = ["| Model | IR@1 | TR@1 | IR@10 | TR@10 | R_mean |", "|---|---|---|---|---|---|"]
    for o in outcomes:
        ir, tr = _find(rows, o.label, "ir1", "score"), _find(rows, o.label, "tr1", "score")
        tens = f"{o.f30k['ir10']:.1f} | {o.f30k['tr10']:.1f} | {o.f30k['r_mean']:.1f}"
        lines.append(f"| {o.label} | {_cell(ir.interval)} | {_cell(tr.interval)} | {tens} |")
    lines.append(f"| *chance* | - | - | - | - | {bounds['chance']:.1f} |")
    lines.append(f"| *ceiling (scene-perfect)* | - | - | - | - | {bounds['ceiling']:.1f} |")
    return lines


VQA_LEGEND = (
    "VQA score (%) with its 95% Wilson interval; Δ: the difference from {base} with its 95% paired bootstrap "
    "interval over the questions (`*`: the interval excludes 0); val: the train entry's own score (`results.json`), "
    "on questions it also trained on."
)
RETRIEVAL_LEGEND = (
    "Recalls (%), R@1 with 95% Wilson intervals. Chance: random scores. Ceiling: a model that knows every scene but "
    "cannot tell two images of one scene apart (their captions are the same). The ranking is the ITM logit alone on "
    "the ITC top-k (`managertower.objectives.rerank`): read the retrieval ITM loss below first, an ITM at chance "
    "orders those candidates by noise."
)
TABLES_LEGEND = (
    "Only the tables these runs fill (the full output is in `paper_tables/`). Their VQA cells read test-dev, which "
    "has no local answers, so they stay empty: the held-out table above is the VQA comparison."
)


LOSS_COLUMNS = (
    ("pretrain", "mlm_loss", "pre-training MLM"),
    ("pretrain", "itm_loss", "pre-training ITM"),
    ("vqa", "loss", "VQA (BCE x answers)"),
    ("f30k", "itc_loss", "retrieval ITC"),
    ("f30k", "itm_loss", "retrieval ITM"),
)
LOSS_LEGEND = (
    "First and last logged value (each a 5-step mean). ITM at chance: ln 2 = 0.693 in pre-training (half the "
    "images false), 0.637 in retrieval (two negatives per positive)."
)


def loss_table(outcomes: list[Outcome]) -> list[str]:
    lines = [
        "| Model | " + " | ".join(label for *_, label in LOSS_COLUMNS) + " |",
        "|---|" + "---|" * len(LOSS_COLUMNS),
    ]
    for o in outcomes:
        cells = [o.parts[task].get(part) for task, part, _ in LOSS_COLUMNS]
        lines.append(f"| {o.label} | " + " | ".join(f"{c[0]:.3f} -> {c[1]:.3f}" if c else "-" for c in cells) + " |")
    return lines


def render(
    cfg: TwoTowerDemoConfig, outcomes: list[Outcome], rows: list[Row], baselines: list[str], parts: Sections
) -> str:
    base, n = VARIANTS[BASELINE].label, len(outcomes[0].vqa.scores)
    bounds = parts.bounds
    lines = ["# ManagerTower demo: tiny Two-Tower models on generated data, on a CPU", "", *setup(cfg), ""]
    lines += ["## Experts", "", *(f"- {line}" for line in parts.experts), ""]
    lines += [f"## Held-out VQA ({n} questions on images never trained on)", "", VQA_LEGEND.format(base=base), ""]
    lines += [*vqa_table(outcomes, rows, baselines), "", "Differences per kind of question:", ""]
    lines += [*delta_table(outcomes, rows), ""]
    lines += [f"## Retrieval ({bounds['images']} test images, {bounds['texts']} captions)", "", RETRIEVAL_LEGEND, ""]
    lines += [*retrieval_table(outcomes, rows, bounds), "", "![intervals](intervals.png)", ""]
    lines += ["## Training losses", "", LOSS_LEGEND, "", *loss_table(outcomes), ""]
    lines += ["## The paper's tables (`python -m managertower.report`)", "", TABLES_LEGEND, "", *parts.paper_tables]
    lines += ["## Manager weights (`managertower.analysis`, on held-out VQA batches)", ""]
    for key in parts.figures:
        folder = f"analysis/{key.replace('/', '_')}"
        lines += [f"{VARIANTS[key].label}:", "", f"![weights]({folder}/manager_weights.png)", ""]
        lines += [f"![similarity]({folder}/manager_similarity.png)", ""]
    lines += ["## Checks", "", *(f"- [{'ok' if ok else 'FAILED'}] {text}" for text, ok in parts.checks), ""]
    lines.append(f"Wall time of this run: {parts.minutes:.1f} min.")
    return "\n".join(lines) + "\n"
