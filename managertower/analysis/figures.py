"""The analyses' figures (matplotlib PNGs, the paper's style) and CSV files (one row per record, with a header)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import astuple, fields
from pathlib import Path

from managertower.analysis.similarity import SimilarityRecord
from managertower.analysis.weights import WeightRecord
from vlcommon.ledger import atomic_write
from vlcommon.plotting import plt, save_figure

PANELS = {"text": "Textual managers", "image": "Visual managers"}
PART_LABELS = {"unimodal": "unimodal part", "cross": "cross-modal part"}


def write_csv(path: str | Path, kind: type, records: Sequence) -> Path:
    """``records`` (dataclass instances of ``kind``) as CSV: a header of ``kind``'s field names, then one row each
    (floats at full precision); written atomically."""
    header = [f.name for f in fields(kind)]
    assert all(isinstance(r, kind) for r in records), kind

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(header)
            writer.writerows(astuple(r) for r in records)

    atomic_write(path, write)
    return Path(path)


def write_weights_csv(path: str | Path, records: Sequence[WeightRecord]) -> Path:
    return write_csv(path, WeightRecord, records)


def write_similarity_csv(path: str | Path, records: Sequence[SimilarityRecord]) -> Path:
    return write_csv(path, SimilarityRecord, records)


def weights_figure(path: str | Path, records: Sequence[WeightRecord]) -> Path:
    """Figs. 7 and 23-25: a textual and a visual panel; x = the unimodal expert (its layer number), one line per
    cross-modal layer, the legend naming the layer."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for axis, (modality, title) in zip(axes, PANELS.items(), strict=True):
        rows = [r for r in records if r.modality == modality]
        for layer in sorted({r.layer for r in rows}):
            line = [r for r in rows if r.layer == layer]
            axis.plot([r.expert for r in line], [r.weight for r in line], marker="o", label=str(layer))
        axis.set_xticks(sorted({r.expert for r in rows}))
        axis.set_title(title)
        axis.set_xlabel("unimodal expert (layer index)")
        axis.grid(alpha=0.3)
    if records:  # one legend outside the panels (both have the same layers), so it hides no line
        axes[-1].legend(title="cross-modal layer", fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    axes[0].set_ylabel("aggregation weight")
    return save_figure(fig, path)


def similarity_figure(path: str | Path, records: Sequence[SimilarityRecord]) -> Path:
    """Fig. 4: a textual and a visual panel; x = the pair of consecutive managers (l, l+1), one line per part."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for axis, (modality, title) in zip(axes, PANELS.items(), strict=True):
        rows = [r for r in records if r.modality == modality]
        for part, label in PART_LABELS.items():
            line = [r for r in rows if r.part == part]
            if line:
                axis.plot([r.layer for r in line], [r.similarity for r in line], marker="o", label=label)
        pairs = sorted({r.layer for r in rows})
        axis.set_xticks(pairs, [f"{layer}-{layer + 1}" for layer in pairs])
        axis.set_title(title)
        axis.set_xlabel("consecutive managers (cross-modal layers)")
        axis.grid(alpha=0.3)
        if rows:
            axis.legend(fontsize="small")
    axes[0].set_ylabel("cosine similarity")
    return save_figure(fig, path)
