"""What the ManagerTower demo runs: the variants, the data sizes, the model sizes and the training steps.

One :class:`TwoTowerDemoConfig` holds everything; ``TwoTowerDemoConfig.build(work, reduced=..., seed=...)`` gives
the full run or the CI version. Every variant gets the same steps, learning rates and batches: the comparison changes
the model only. (The LLaVA curriculum demo has its own ``playground.demo.CurriculumDemoConfig``, and its variants are
``llava.variants``: a ``TwoTowerVariant`` is a fusion preset, not one of those.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, kw_only=True, slots=True)
class TwoTowerVariant:
    """A Two-Tower model the demo compares: a ``managertower.presets`` row under the report's name."""

    key: str  # folder name and the ``--results_name`` of its runs (the report's row)
    label: str
    preset: str  # managertower.presets name, applied on the shared base config


# METER, BridgeTower and the two managers of Table VI. The SAUM is ``table1/saum-nd``: the better static manager of
# Table I (N x D weights), the one Table VI compares, and the very SAUM an AAUM model has in layer 1, so the two
# ManagerTower rows differ only in the managers of layers 2..L_C.
VARIANTS = {
    v.key: v
    for v in (
        TwoTowerVariant(key="meter", label="METER", preset="meter"),
        TwoTowerVariant(key="bridgetower", label="BridgeTower", preset="bridgetower"),
        TwoTowerVariant(key="table1/saum-nd", label="ManagerTower-SAUM", preset="table1/saum-nd"),
        TwoTowerVariant(key="managertower", label="ManagerTower-AAUM", preset="managertower"),
    )
}
BASELINE = "bridgetower"  # the differences are taken against it, as in the paper's Tables I, II and VI
REDUCED_VARIANTS = ("bridgetower", "managertower")  # every code path once: the baseline, managers, the analysis


@dataclass(frozen=True, kw_only=True, slots=True)
class Counts:
    """Images per generated source (``managertower.data.synthetic`` writers; each writer splits them itself)."""

    expert_pairs: int = 3000  # CLIP image-caption pairs
    expert_held_out: int = 256
    expert_texts: int = 4000  # RoBERTa sentences
    coco: int = 800  # Karpathy-style: a quarter each train/restval/val/test; pre-training reads train + restval
    vg: int = 200
    sbu: int = 400
    vqa: int = 600  # train images (3 questions each); the writer adds half as many val images, trained on too
    vqa_held_out: int = 240  # the demo's own val images, never trained on: the scored split
    f30k: int = 480  # train + val (half) are trained on, the test quarter is retrieved

    @classmethod
    def reduced(cls) -> Counts:
        return cls(
            expert_pairs=1200,
            expert_held_out=128,
            expert_texts=1500,
            coco=320,
            vg=80,
            sbu=160,
            vqa=240,
            vqa_held_out=160,
            f30k=240,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelSizes:
    """The experts and the cross-modal encoder, in the paper's proportions: its base has 12-layer experts and
    L_C = N = 6, here 6 layers and L_C = N = 3, so METER reads layer 6, BridgeTower layers 4-6 one per co-attention
    layer, and every manager aggregates layers 4-6."""

    depth: int = 6
    text_hidden: int = 64
    text_heads: int = 2
    vision_hidden: int = 64  # CLIP's head width is 64: one head
    patch: int = 8
    image: int = 32
    cross_layers: int = 3
    cross_hidden: int = 64
    cross_heads: int = 2
    experts: int = 3  # N
    max_text_len: int = 16


@dataclass(frozen=True, kw_only=True, slots=True)
class Stage:
    """One call of the train entry, the same for every variant."""

    steps: int
    batch: int
    lr: str
    head: str = "5"  # --lr_mult_head
    cross: str = "5"  # --lr_mult_cross_modal
    weight_decay: float = 0.01


@dataclass(frozen=True, kw_only=True, slots=True)
class Steps:
    clip: int = 500
    roberta: int = 300
    # The multipliers follow the paper's recipes (Tables IX, XIV: x5 for the cross-modal layers, x50 for the VQA
    # head); the base learning rates are larger than the paper's, for models this small and runs this short.
    pretrain: Stage = field(default_factory=lambda: Stage(steps=300, batch=32, lr="2e-4"))
    vqa: Stage = field(default_factory=lambda: Stage(steps=300, batch=32, lr="1e-4", head="50", weight_decay=0.06))
    f30k: Stage = field(default_factory=lambda: Stage(steps=200, batch=32, lr="1e-4"))
    k_test: int = 16  # retrieval: ITC candidates per query reranked by ITM

    @classmethod
    def reduced(cls) -> Steps:
        return cls(
            clip=250,
            roberta=150,
            pretrain=Stage(steps=60, batch=32, lr="2e-4"),
            vqa=Stage(steps=60, batch=32, lr="1e-4", head="50", weight_decay=0.06),
            f30k=Stage(steps=40, batch=32, lr="1e-4"),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class TwoTowerDemoConfig:
    work: Path
    reduced: bool = False
    seed: int = 0
    variants: tuple[str, ...] = tuple(VARIANTS)
    counts: Counts = field(default_factory=Counts)
    sizes: ModelSizes = field(default_factory=ModelSizes)
    steps: Steps = field(default_factory=Steps)
    eval_batch: int = 64
    analysis_batches: int = 8  # held-out VQA batches the weight figures average over

    @classmethod
    def build(cls, work: Path, *, reduced: bool = False, seed: int = 0) -> TwoTowerDemoConfig:
        if not reduced:
            return cls(work=work, seed=seed)
        return cls(
            work=work,
            reduced=True,
            seed=seed,
            variants=REDUCED_VARIANTS,
            counts=Counts.reduced(),
            steps=Steps.reduced(),
            analysis_batches=3,
        )

    @property
    def data(self) -> Path:
        return self.work / "data"

    @property
    def arrow(self) -> Path:
        return self.data / "arrow"

    @property
    def held_out(self) -> Path:
        return self.data / "held_out"

    @property
    def tokenizer(self) -> Path:
        return self.data / "tokenizer"

    @property
    def experts(self) -> Path:
        return self.work / "experts"

    @property
    def runs(self) -> Path:
        return self.work / "runs"

    @property
    def report(self) -> Path:
        return self.work / "report"

    def run_dir(self, variant: str, task: str) -> Path:
        return self.runs / variant.replace("/", "_") / task
