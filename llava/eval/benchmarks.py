"""The paper's evaluation datasets (Table X) and how lmms-eval 0.7.3 reports each of them.

Table X lists 19 datasets; MM-LiveBench is evaluated on two monthly subsets (2407 and 2409) that the paper averages
as two datasets, which makes its "20 datasets": 20 scores whose mean is Table IV's overall score (50.61, 51.67,
53.87, 55.21). Each score is kept in the paper's unit (percent; OCRBench as a count out of 1000), and
``average_divisor`` is what the paper divides by before averaging (10 for OCRBench).

lmms-eval facts (installed 0.7.3 source): fractions in [0, 1] are ``exact_match``, ``anls``, ``relaxed_overall``,
``seed_image``, ``mmmu_acc``, ``ocrbench_accuracy`` (count / 1000) and ``dc100_en``'s ``llm_as_judge_eval``;
percentages are ``gpt_eval_score`` (MMVet), ``gpt4_eval_score`` (LiveBench), ``gpt_eval_llava_all`` (LLaVA-W,
relative score) and MathVista's ``llm_as_judge_eval``. DocVQA and InfoVQA were reported on their test splits,
which only the server scores; the offline runs use the validation splits (``docvqa_val``, ``infovqa_val``).

``python -m llava.eval.benchmarks [--offline|--judged]`` prints the lmms-eval task list (for the eval scripts).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import KW_ONLY, dataclass
from enum import Enum
from pathlib import Path

# Offline copies of built-in tasks run under new names (llava.eval.prepare_offline): lmms-eval silently prefers a
# built-in task over an --include_path task of the same name.
LOCAL_SUFFIX = "_local"


class Capability(str, Enum):
    GENERAL = "General"
    TEXT_RICH = "Text-Rich"
    KNOWLEDGE = "Knowledge"
    REAL_WORLD = "Real-World"


class ImageCategory(str, Enum):
    NATURAL = "Natural"
    ABSTRACT = "Abstract"
    HYBRID = "Hybrid"


class Resolution(str, Enum):
    LOW = "Low"
    HIGH = "High"


@dataclass(frozen=True, slots=True)
class Benchmark:
    key: str  # our identifier, used in fixtures and CSVs
    name: str  # as printed in the paper
    split: str  # the split the paper reports (Tables XII-XIII)
    capability: Capability
    image: ImageCategory
    resolution: Resolution
    task: str  # lmms-eval 0.7.3 task that scores it offline (or with a judge)
    metric: str  # key in results[task]
    scale: float  # lmms-eval value x scale = the paper's unit
    # The fields above may be given by position (the table below does); the rest only by name.
    _: KW_ONLY
    judged: bool = False  # needs a GPT judge
    average_divisor: float = 1.0
    ablation: bool = False  # one of the 9 datasets of the paper's ablations (a star in Table X)
    description: str = ""
    answer: str = ""
    resolution_stats: str = ""  # min / max / mean of the longer side, Table X
    aspect_stats: str = ""  # min / max / mean aspect ratio, Table X
    samples: str = ""
    server_task: str | None = None  # the split the paper used, when only a server scores it

    @property
    def label(self) -> str:
        return f"{self.name} {self.split}"

    @property
    def task_names(self) -> tuple[str, str]:
        """The stock task and its offline copy; results may hold either."""
        return self.task, self.task + LOCAL_SUFFIX


_b = Benchmark  # a short name, so that the table's rows fit the line length


G, T, K, R = Capability.GENERAL, Capability.TEXT_RICH, Capability.KNOWLEDGE, Capability.REAL_WORLD
N, A, H = ImageCategory.NATURAL, ImageCategory.ABSTRACT, ImageCategory.HYBRID
LO, HI = Resolution.LOW, Resolution.HIGH
EM = "exact_match,none"

# A table, one benchmark per entry as Table X lists them: kept out of the formatter.
# fmt: off
BENCHMARKS: tuple[Benchmark, ...] = (
    _b("vqav2", "VQAv2", "val", G, N, LO, "vqav2_val", EM, 100, ablation=True, description="Scene understanding VQA",
       answer="Open form (Short)", resolution_stats="120/640/523", aspect_stats="0.17/1.00/0.72", samples="214.00K"),
    _b("okvqa", "OKVQA", "val", G, N, LO, "ok_vqa_val2014", EM, 100, description="External knowledge VQA",
       answer="Open form (Short)", resolution_stats="208/640/524", aspect_stats="0.26/1.00/0.72", samples="5.05K"),
    _b("gqa", "GQA", "testdev", G, N, LO, "gqa", EM, 100, ablation=True, description="Compositional VQA",
       answer="Open form (Short)", resolution_stats="314/640/523", aspect_stats="0.36/1.00/0.71", samples="12.58K"),
    _b("mmvet", "MMVet", "test", G, H, HI, "mmvet", "gpt_eval_score,none", 1, judged=True,
       description="Multi-discipline", answer="Open form (Long)", resolution_stats="181/4180/909",
       aspect_stats="0.27/1.00/0.74", samples="0.22K"),
    _b("seed", "SEED-Bench", "image", G, N, HI, "seedbench", "seed_image,none", 100, ablation=True,
       description="Multi-discipline; Large-scale", answer="Multi-choice", resolution_stats="240/9906/791",
       aspect_stats="0.50/1.00/0.66", samples="18.00K"),
    _b("realworldqa", "RealWorldQA", "test", G, N, HI, "realworldqa", EM, 100, ablation=True,
       description="Real-world VQA", answer="Multi-choice; Open form (Short)", resolution_stats="512/1469/1147",
       aspect_stats="0.45/1.00/0.67", samples="0.77K"),
    _b("textvqa", "TextVQA", "val", T, N, HI, "textvqa_val", EM, 100, ablation=True,
       description="Scene Text Recognition", answer="Open form (Short)", resolution_stats="512/3991/872",
       aspect_stats="0.25/1.00/0.73", samples="5.00K"),
    _b("chartqa", "ChartQA", "test", T, A, LO, "chartqa", "relaxed_overall,none", 100,
       description="Chart Understanding", answer="Open form (Short)", resolution_stats="245/1199/665",
       aspect_stats="0.39/0.99/0.71", samples="2.50K"),
    _b("docvqa", "DocVQA", "test", T, A, HI, "docvqa_val", "anls,none", 100, ablation=True,
       description="Document Understanding", answer="Extractive", resolution_stats="418/6209/1918",
       aspect_stats="0.33/0.99/0.75", samples="5.19K", server_task="docvqa_test"),
    _b("infovqa", "InfoVQA", "test", T, A, HI, "infovqa_val", "anls,none", 100,
       description="Infographic Understanding", answer="Extractive; Numerical", resolution_stats="452/7655/1724",
       aspect_stats="0.09/1.00/0.46", samples="3.29K", server_task="infovqa_test"),
    _b("ocrbench", "OCRBench", "test", T, H, LO, "ocrbench", "ocrbench_accuracy,none", 1000, average_divisor=10,
       description="Text Recognition", answer="Open form (Short)", resolution_stats="20/5900/627",
       aspect_stats="0.08/1.00/0.57", samples="1.00K"),
    _b("ai2d", "AI2D", "test", K, A, LO, "ai2d", "exact_match,flexible-extract", 100, ablation=True,
       description="Science Diagrams", answer="Multi-choice", resolution_stats="152/1500/547",
       aspect_stats="0.18/1.00/0.72", samples="3.09K"),
    _b("scienceqa", "ScienceQA", "test", K, H, LO, "scienceqa_img", EM, 100, ablation=True,
       description="High-school Science", answer="Multi-choice", resolution_stats="114/685/378",
       aspect_stats="0.10/1.00/0.66", samples="2.02K"),
    _b("mmmu", "MMMU", "val", K, H, LO, "mmmu_val", "mmmu_acc,none", 100, ablation=True,
       description="College-level Multi-discipline", answer="Multi-choice; Open form (Short)",
       resolution_stats="185/2217/580", aspect_stats="0.11/1.00/0.60", samples="0.90K"),
    _b("mathvista", "MathVista", "testmini", K, H, LO, "mathvista_testmini_format", "llm_as_judge_eval,none", 1,
       judged=True, description="General Math Understanding", answer="Multi-choice; Open form (Short)",
       resolution_stats="58/4275/499", aspect_stats="0.10/1.00/0.72", samples="1.00K"),
    _b("imagedc", "ImageDC", "test", R, H, LO, "dc100_en", "llm_as_judge_eval,none", 100, judged=True,
       description="Image Detail Description", answer="Open form (Long)", resolution_stats="470/512/499",
       aspect_stats="0.60/1.00/0.76", samples="0.10K"),
    _b("livebench_2407", "MM-LiveBench", "July", R, H, HI, "live_bench_2407", "gpt4_eval_score,none", 1,
       judged=True, description="Internet Content Understanding", answer="Open form (Long)",
       resolution_stats="980/2051/1788", aspect_stats="0.51/0.92/0.61", samples="0.25K"),
    _b("livebench_2409", "MM-LiveBench", "Sep", R, H, HI, "live_bench_2409", "gpt4_eval_score,none", 1,
       judged=True, description="Internet Content Understanding", answer="Open form (Long)",
       resolution_stats="980/2051/1788", aspect_stats="0.51/0.92/0.61", samples="0.25K"),
    _b("llava_wild", "LLaVA-Wild", "test", R, H, HI, "llava_in_the_wild", "gpt_eval_llava_all,none", 1,
       judged=True, description="Real-world Chat", answer="Open form (Long)", resolution_stats="465/3921/1277",
       aspect_stats="0.51/1.00/0.80", samples="0.06K"),
    _b("llava_wilder", "LLaVA-Wilder", "test", R, H, HI, "llava_wilder_small", "gpt_eval_llava_all,none", 1,
       judged=True, description="Real-world Chat", answer="Open form (Long)", resolution_stats="224/3492/870",
       aspect_stats="0.37/1.00/0.72", samples="0.21K"),
)
# fmt: on

BY_KEY = {b.key: b for b in BENCHMARKS}
assert len(BY_KEY) == len(BENCHMARKS) == 20  # 19 datasets, MM-LiveBench twice


def load_benchmarks(path) -> tuple[Benchmark, ...]:
    """A benchmark set from JSON (a list of Benchmark fields; enum fields as their values, e.g. "Text-Rich")."""
    entries = json.loads(Path(path).read_text())
    out = []
    for index, entry in enumerate(entries):
        try:
            fields = dict(
                entry,
                capability=Capability(entry["capability"]),
                image=ImageCategory(entry["image"]),
                resolution=Resolution(entry["resolution"]),
            )
            out.append(Benchmark(**fields))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path}: entry {index} is not a valid benchmark: {error}") from None
    keys = [b.key for b in out]
    if len(set(keys)) != len(keys) or not keys:
        raise ValueError(f"{path}: benchmark keys must be unique and non-empty, got {keys}")
    return tuple(out)


def offline_tasks() -> list[str]:
    """The lmms-eval tasks scored with rule-based metrics (no judge)."""
    return [b.task for b in BENCHMARKS if not b.judged]


def judged_tasks() -> list[str]:
    return [b.task for b in BENCHMARKS if b.judged]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print the lmms-eval task names of the paper's benchmarks.")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--offline", action="store_true", help="only the rule-scored tasks")
    which.add_argument("--judged", action="store_true", help="only the GPT-judged tasks")
    parser.add_argument(
        "--local",
        action="store_true",
        help="names of the offline copies written by llava.eval.prepare_offline (<task>_local)",
    )
    args = parser.parse_args(argv)
    tasks = offline_tasks() if args.offline else judged_tasks() if args.judged else [b.task for b in BENCHMARKS]
    print(",".join(task + LOCAL_SUFFIX if args.local else task for task in tasks))


if __name__ == "__main__":
    main()
