"""Run the probe over a sample set for each checkpoint, then write the CSVs, the figures and a summary.

Checkpoints are loaded one at a time (only one model in memory) and see the same records in the same order.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from llava.analysis import plots
from llava.analysis.checkpoints import Checkpoint, load
from llava.analysis.probes import METRICS, Probe
from llava.analysis.tables import FILES, rows, write_csv

FIGURES = {
    "layer_similarity": {
        "value": "cosine",
        "panel": "part",
        "ylabel": "cosine similarity with the previous layer",
        "title": "Similarity between consecutive layers' outputs (Fig. 18)",
    },
    "attention_entropy": {
        "value": "entropy",
        "panel": "block",
        "ylabel": "mean attention entropy (nats)",
        "title": "Entropy of attention weight distributions (Figs. 19, 32)",
    },
    "head_kl": {
        "value": "kl",
        "panel": "block",
        "ylabel": "mean KL divergence between heads (nats)",
        "title": "Divergence between attention heads (Figs. 20, 33)",
    },
}


@dataclass(frozen=True, kw_only=True, slots=True)
class AnalysisConfig:
    metrics: tuple[str, ...] = METRICS
    out: Path = Path("analysis")
    device: str = "cpu"
    dtype: str = "float32"
    query_chunk: int = 512

    def __post_init__(self) -> None:
        unknown = sorted(set(self.metrics) - set(METRICS))
        if unknown or not self.metrics:
            raise ValueError(f"metrics {unknown or '(none)'}: choose from {METRICS}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"--device {self.device}: CUDA is not available")


def needs_samples(config: AnalysisConfig, checkpoints: list[Checkpoint]) -> bool:
    """Everything but SAUM weights (learned, the same for every token) is measured on samples."""
    static = {"manager_weights"} if all(c.manager.type != "aaum" for c in checkpoints) else set()
    return bool(set(config.metrics) - static)


def analyse(checkpoints: list[Checkpoint], samples, config: AnalysisConfig) -> dict:
    """Measure, write ``config.out``/{CSVs, PNGs, summary.json}; returns the summary."""
    if samples is None and needs_samples(config, checkpoints):
        raise ValueError(f"metrics {config.metrics} are measured on samples: give --data or --tasks")
    if "manager_weights" in config.metrics and not any(c.manager.enabled for c in checkpoints):
        warnings.warn("manager_weights: no checkpoint has managers, the table stays empty", stacklevel=2)
    config.out.mkdir(parents=True, exist_ok=True)
    tables: dict[str, list[dict]] = {metric: [] for metric in config.metrics}
    summary = {"metrics": list(config.metrics), "samples_from": getattr(samples, "name", None), "checkpoints": {}}
    patch_size = None
    for checkpoint in checkpoints:
        started = time.time()
        tokenizer, model, image_processor = load(checkpoint, device=config.device, dtype=config.dtype)
        patch_size = model.config.vision_config.patch_size
        with Probe(model, config.metrics, query_chunk=config.query_chunk) as probe:
            if samples is not None:
                items = samples.iterate(tokenizer, image_processor, model.config)
                for sample in tqdm(items, total=len(samples), desc=f"analysing {checkpoint.label}", unit="sample"):
                    probe.observe(sample)
        if samples is not None and probe.samples == 0:
            raise ValueError(
                f"{checkpoint.label}: no usable sample in {samples.name} "
                f"(skipped: {[(s.sample_id, s.reason) for s in samples.skipped[:5]]})"
            )
        for metric, table in rows(probe, checkpoint).items():
            tables[metric].extend(table)
        skipped = list(samples.skipped) if samples is not None else []
        summary["checkpoints"][checkpoint.label] = {
            "path": str(checkpoint.path),
            "variant": checkpoint.variant,
            "manager": checkpoint.manager.type,
            "inject_layers": list(checkpoint.inject_layers),
            "samples": probe.samples,
            "skipped": [{"sample_id": s.sample_id, "reason": s.reason} for s in skipped],
            "seconds": round(time.time() - started, 1),
        }
        del model
    summary["outputs"] = write_outputs(tables, checkpoints, config.out, patch_size=patch_size)
    (config.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def write_outputs(
    tables: dict[str, list[dict]], checkpoints: list[Checkpoint], out: Path, *, patch_size: int | None
) -> list[str]:
    written = []
    for metric, table in tables.items():
        written.append(write_csv(out / FILES[metric], table))
        figure = out / f"{metric}.png"
        if metric in FIGURES:
            written.append(plots.layer_curves(table, checkpoints=checkpoints, path=figure, **FIGURES[metric]))
        elif metric == "attention_distance":
            written.append(plots.attention_distance(table, checkpoints=checkpoints, patch_size=patch_size, path=figure))
        elif metric == "manager_weights":
            written.append(plots.manager_weights(table, checkpoints=checkpoints, path=figure))
    return [str(path) for path in written if path is not None]
