"""Figures of the analysis, drawn from table rows (fresh or read back from the CSVs).

Variants are overlaid so that pairs read at a glance: a plain image and its multi-grid counterpart get different
colours (blue family for Baseline / +Manager, red family for +Grid / +Grid+Manager) and a manager turns a dashed
line solid. Labelled checkpoints that share a variant fall back to the colour cycle. Dotted vertical lines mark the
decoder layers that receive a manager's output (Figs. 18, 32, 33).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from matplotlib.ticker import MaxNLocator

from llava.analysis.checkpoints import Checkpoint
from vlcommon.plotting import plt, save_figure

PAIR_COLOURS = {(False, False): "#1f77b4", (False, True): "#0b3d91", (True, False): "#d62728", (True, True): "#8b0000"}
TITLES = {
    "visual": "visual part",
    "text": "textual part",
    "visual_self": "visual self-attention",
    "text_to_visual": "text-to-visual attention",
}


def styles(checkpoints: list[Checkpoint]) -> dict[str, dict]:
    """Per label: matplotlib line style keywords."""
    kinds = [(c.grid, c.manager.enabled) for c in checkpoints]
    by_variant = len(set(kinds)) == len(kinds)
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    found = {}
    for index, (checkpoint, kind) in enumerate(zip(checkpoints, kinds)):
        colour = PAIR_COLOURS[kind] if by_variant else cycle[index % len(cycle)]
        found[checkpoint.label] = {
            "color": colour,
            "linestyle": "-" if kind[1] else "--",
            "marker": "o",
            "markersize": 3,
            "linewidth": 1.4,
        }
    return found


def _mark_injections(axis, checkpoints: list[Checkpoint], style: dict[str, dict]) -> None:
    managed = [c for c in checkpoints if c.manager.enabled]
    if len({c.inject_layers for c in managed}) == 1:
        for i, layer in enumerate(managed[0].inject_layers):
            axis.axvline(layer, color="grey", linestyle=":", linewidth=1, label="manager injection" if i == 0 else None)
        return
    for checkpoint in managed:
        for layer in checkpoint.inject_layers:
            axis.axvline(layer, color=style[checkpoint.label]["color"], linestyle=":", linewidth=1, alpha=0.6)


def layer_curves(
    table: list[dict], *, value: str, panel: str, ylabel: str, title: str, checkpoints: list[Checkpoint], path: Path
) -> Path:
    """One panel per value of ``panel`` (part or block), one line per checkpoint over decoder layers."""
    panels = list(dict.fromkeys(row[panel] for row in table))
    style = styles(checkpoints)
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(6.5 * max(1, len(panels)), 4), squeeze=False)
    for axis, name in zip(axes[0], panels):
        for checkpoint in checkpoints:
            points = sorted(
                (row["layer"], row[value]) for row in table if row[panel] == name and row["variant"] == checkpoint.label
            )
            if points:
                axis.plot(*zip(*points), label=checkpoint.label, **style[checkpoint.label])
        _mark_injections(axis, checkpoints, style)
        axis.set_title(TITLES.get(name, name))
        axis.set_xlabel("decoder layer")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, path)


def attention_distance(table: list[dict], *, checkpoints: list[Checkpoint], patch_size: int, path: Path) -> Path:
    """Fig. 27: small dots per head, a large dot per layer (mean over heads), checkpoints side by side."""
    style = styles(checkpoints)
    fig, axis = plt.subplots(figsize=(8, 4.5))
    width = 0.6 / max(1, len(checkpoints))
    for index, checkpoint in enumerate(checkpoints):
        per_layer = defaultdict(list)
        for row in table:
            if row["variant"] == checkpoint.label:
                per_layer[row["layer"]].append(row["distance_px"])
        if not per_layer:
            continue
        shift = (index - (len(checkpoints) - 1) / 2) * width
        colour = style[checkpoint.label]["color"]
        for layer, values in per_layer.items():
            axis.scatter([layer + shift] * len(values), values, s=8, color=colour, alpha=0.45)
        layers = sorted(per_layer)
        axis.scatter(
            [layer + shift for layer in layers],
            [sum(per_layer[k]) / len(per_layer[k]) for k in layers],
            s=45,
            color=colour,
            label=f"{checkpoint.label} (mean over heads)",
        )
    axis.set_xlabel("SigLIP layer")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel(f"mean attention distance (pixels, patch {patch_size})")
    axis.set_title("Size of attended area by head and layer depth")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return save_figure(fig, path)


def manager_weights(table: list[dict], *, checkpoints: list[Checkpoint], path: Path) -> Path | None:
    """Figs. 7, 24-25: per managed checkpoint, the weight of each expert, one line per receiving decoder layer."""
    managed = [c for c in checkpoints if any(row["variant"] == c.label for row in table)]
    if not managed:
        return None
    fig, axes = plt.subplots(2, len(managed), figsize=(6.5 * len(managed), 7), squeeze=False)
    for column, checkpoint in enumerate(managed):
        mine = [row for row in table if row["variant"] == checkpoint.label]
        layers = sorted({row["layer"] for row in mine})
        colours = plt.cm.viridis([i / max(1, len(layers) - 1) for i in range(len(layers))])
        kind = mine[0]["type"].upper()
        for row_index, (value, what) in enumerate((("weight", "mean weight"), ("weight_abs", "mean |weight|"))):
            axis = axes[row_index][column]
            if kind == "AAUM" and value == "weight_abs":
                axis.set_visible(False)  # softmax weights are non-negative: the row above says it all
                continue
            for layer, colour in zip(layers, colours):
                points = sorted((row["vision_layer"], row[value]) for row in mine if row["layer"] == layer)
                axis.plot(*zip(*points), marker="o", markersize=3, color=colour, label=f"decoder layer {layer}")
            axis.axhline(0, color="black", linewidth=0.6)
            axis.set_xlabel("expert (SigLIP layer k of V_k)")
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            axis.set_ylabel(what + (" over channels" if kind == "SAUM" else " over tokens"))
            axis.set_title(f"{checkpoint.label}: {kind} aggregation weights")
            axis.grid(alpha=0.3)
            axis.legend(fontsize=7, ncol=2)
    return save_figure(fig, path)
