"""Plots of the demo: loss curves per stage and variant, and the managers' learned aggregation weights."""

from __future__ import annotations

import json
from pathlib import Path

from vlcommon.plotting import plt, save_figure


def loss_history(stage_dir: Path) -> list[tuple[int, float]]:
    """``(step, loss)`` pairs the Trainer logged (``trainer_state.json``, written by ``save_state`` at the end)."""
    state = json.loads((Path(stage_dir) / "trainer_state.json").read_text())
    return [(entry["step"], entry["loss"]) for entry in state["log_history"] if "loss" in entry]


def loss_fell(history: list[tuple[int, float]]) -> bool:
    """The mean of the last quarter of the logged losses is below the mean of the first quarter."""
    losses = [loss for _, loss in history]
    quarter = max(1, len(losses) // 4)
    return sum(losses[-quarter:]) / quarter < sum(losses[:quarter]) / quarter


def plot_losses(runs: dict[str, dict[str, Path]], out: Path) -> Path:
    """``runs[variant name][stage] = stage directory`` -> one panel per stage, one line per variant."""
    stages = ["stage1", "stage1_5", "stage2"]
    fig, axes = plt.subplots(1, len(stages), figsize=(15, 4))
    for axis, stage in zip(axes, stages):
        for name, dirs in runs.items():
            history = loss_history(dirs[stage])
            axis.plot([s for s, _ in history], [loss for _, loss in history], label=name, linewidth=1.2)
        axis.set_title(stage.replace("_", "."))
        axis.set_xlabel("step")
        axis.set_ylabel("training loss")
        axis.legend(fontsize=8)
    return save_figure(fig, out / "loss_curves.png")


def manager_weights(checkpoint: Path) -> dict[int, list[float]]:
    """Per injection layer, the mean learned SAUM weight of each expert (``model.managers.layers.<i>.weight``)."""
    from llava.model.weights import read_weights

    state = read_weights(checkpoint)
    found = {}
    for key, tensor in state.items():
        if key.startswith("model.managers.layers.") and key.endswith(".weight") and tensor.dim() == 2:
            found[int(key.split(".")[3])] = tensor.float().mean(dim=1).tolist()  # (E, D) -> (E,)
    return dict(sorted(found.items()))


def plot_manager_weights(checkpoints: dict[str, Path], out: Path) -> Path | None:
    """One panel per manager variant: bars per expert, grouped by injection layer."""
    weights = {name: manager_weights(path) for name, path in checkpoints.items()}
    weights = {name: layers for name, layers in weights.items() if layers}
    if not weights:
        return None
    fig, axes = plt.subplots(1, len(weights), figsize=(6 * len(weights), 4), squeeze=False)
    for axis, (name, layers) in zip(axes[0], weights.items()):
        experts = len(next(iter(layers.values())))
        expert_layers = json.loads((Path(checkpoints[name]) / "config.json").read_text())["manager"]["expert_layers"]
        assert len(expert_layers) == experts, (expert_layers, experts)
        width = 0.8 / experts
        for expert, vision_layer in enumerate(expert_layers):
            xs = [index + expert * width for index in range(len(layers))]
            axis.bar(xs, [values[expert] for values in layers.values()], width, label=f"vision layer {vision_layer}")
        axis.set_xticks(
            [index + 0.4 - width / 2 for index in range(len(layers))], [f"LLM layer {layer}" for layer in layers]
        )
        axis.axhline(0, color="black", linewidth=0.8)
        axis.set_title(f"{name}: mean SAUM weight per expert")
        axis.legend(fontsize=8)
    return save_figure(fig, out / "manager_weights.png")


def plot_probe_and_weights(tower_report: dict, checkpoints: dict[str, Path], out: Path) -> Path:
    """Left: the stage-0 linear probe per tower layer (what each layer holds); right: each manager variant's mean
    learned weight per expert, averaged over its managers (what the managers take from each layer)."""
    probe, chance = tower_report["after"]["probe"], tower_report["after"]["chance"]
    weights = {name: manager_weights(path) for name, path in checkpoints.items()}
    weights = {name: layers for name, layers in weights.items() if layers}
    fig, axes = plt.subplots(1, 1 + len(weights), figsize=(5 * (1 + len(weights)), 3.6), squeeze=False)
    left = axes[0][0]
    for kind, accuracies in probe.items():
        line = left.plot(range(1, len(accuracies) + 1), [100 * a for a in accuracies], marker="o", label=kind)[0]
        left.axhline(100 * chance[kind], color=line.get_color(), linestyle=":", linewidth=0.8)
    left.set_xlabel("tower layer k (output of layer k)")
    left.set_ylabel("held-out linear-probe accuracy (%)")
    left.set_title("Stage-0 tower: linear probe per layer (dotted: majority)")
    left.legend(fontsize=7)
    for axis, (name, layers) in zip(axes[0][1:], weights.items()):
        expert_layers = json.loads((Path(checkpoints[name]) / "config.json").read_text())["manager"]["expert_layers"]
        mean = [sum(values[e] for values in layers.values()) / len(layers) for e in range(len(expert_layers))]
        axis.bar([str(k) for k in expert_layers], mean)
        axis.axhline(0, color="black", linewidth=0.8)
        axis.set_xlabel("expert: tower layer k")
        axis.set_title(f"{name}: mean SAUM weight per expert")
    return save_figure(fig, out / "probe_and_manager_weights.png")
