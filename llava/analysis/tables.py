"""A probe's running statistics as table rows (one CSV per metric), and the CSV reading and writing.

Columns (``variant`` is the checkpoint's label; layers are 1-based):

* ``layer_similarity.csv``: variant, layer, part (visual | text), cosine, cosine_std, tokens
* ``attention_entropy.csv``: variant, layer, block (visual_self | text_to_visual), entropy, entropy_std,
  uniform_entropy (mean log of the keys each query may see: the maximum), block_mass (attention mass the queries
  put on the block's keys before renormalising), values
* ``head_kl.csv``: variant, layer, block, kl, kl_std, queries
* ``attention_distance.csv``: variant, layer (SigLIP), head, distance_px, patches
* ``manager_weights.csv``: variant, type, layer (decoder layer receiving the manager), expert, vision_layer (V_k),
  weight (SAUM: mean over channels; AAUM: mean over tokens), weight_abs, tokens (AAUM only; 0 for SAUM)
"""

from __future__ import annotations

import csv
from pathlib import Path

from llava.analysis.checkpoints import Checkpoint
from llava.analysis.probes import Probe

FILES = {
    "layer_similarity": "layer_similarity.csv",
    "attention_entropy": "attention_entropy.csv",
    "head_kl": "head_kl.csv",
    "attention_distance": "attention_distance.csv",
    "manager_weights": "manager_weights.csv",
}


def rows(probe: Probe, checkpoint: Checkpoint) -> dict[str, list[dict]]:
    """Rows of every metric the probe measured."""
    builders = {
        "layer_similarity": _similarity,
        "attention_entropy": _entropy,
        "head_kl": _kl,
        "attention_distance": _distance,
        "manager_weights": _manager,
    }
    return {metric: builders[metric](probe, checkpoint.label, checkpoint) for metric in probe.metrics}


def _stat_rows(stats, label: str, keys: tuple[str, str], mean: str, count: str, *, std=True, extra=None) -> list[dict]:
    """One row per key of ``stats`` (a ``Running``): the key's two parts, its mean, std, ``extra(key)``, count.

    The column order is the CSV's (``write_csv`` takes the first row's keys), hence the fixed sequence.
    """
    table = []
    for key in stats.keys():
        row = {"variant": label, **dict(zip(keys, key, strict=True)), mean: stats.mean(key)}
        if std:
            row[f"{mean}_std"] = stats.std(key)
        row.update(extra(key) if extra else {})
        row[count] = stats.count(key)
        table.append(row)
    return table


def _similarity(probe: Probe, label: str, checkpoint: Checkpoint) -> list[dict]:
    return _stat_rows(probe.similarity, label, ("layer", "part"), "cosine", "tokens")


def _entropy(probe: Probe, label: str, checkpoint: Checkpoint) -> list[dict]:
    def bounds(key) -> dict:
        return {"uniform_entropy": probe.max_entropy.mean(key), "block_mass": probe.mass.mean(key)}

    return _stat_rows(probe.entropy, label, ("layer", "block"), "entropy", "values", extra=bounds)


def _kl(probe: Probe, label: str, checkpoint: Checkpoint) -> list[dict]:
    return _stat_rows(probe.kl, label, ("layer", "block"), "kl", "queries")


def _distance(probe: Probe, label: str, checkpoint: Checkpoint) -> list[dict]:
    # SigLIP's depth goes in the ``layer`` column; the probe adds distances as pre-reduced sums, so no std exists
    return _stat_rows(probe.distance, label, ("layer", "head"), "distance_px", "patches", std=False)


def _manager(probe: Probe, label: str, checkpoint: Checkpoint) -> list[dict]:
    config = checkpoint.manager
    found = []
    for layer, weights in probe.saum_weights().items():  # (E, D)
        for expert, vision_layer in enumerate(config.expert_layers):
            found.append(
                {
                    "variant": label,
                    "type": "saum",
                    "layer": layer,
                    "expert": expert,
                    "vision_layer": vision_layer,
                    "weight": float(weights[expert].mean()),
                    "weight_abs": float(weights[expert].abs().mean()),
                    "tokens": 0,
                }
            )
    stats = probe.token_weights
    for layer, expert in stats.keys():
        key = (layer, expert)
        found.append(
            {
                "variant": label,
                "type": "aaum",
                "layer": layer,
                "expert": expert,
                "vision_layer": config.expert_layers[expert],
                "weight": stats.mean(key),
                "weight_abs": stats.mean(key),
                "tokens": stats.count(key),
            }
        )
    return found


def write_csv(path: Path, table: list[dict]) -> Path:
    """Write ``table`` (rows with the same keys); an empty table writes an empty file."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as handle:
        if table:
            writer = csv.DictWriter(handle, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
    tmp.replace(path)
    return path


def read_csv(path: Path) -> list[dict]:
    """Rows with numbers parsed back (ints stay ints)."""
    with open(path, newline="") as handle:
        return [{key: _number(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
