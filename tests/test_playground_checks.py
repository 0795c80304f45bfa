"""The demo's own checks: losses fell, background and one other task above chance, the bar reported per variant."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # playground/ is not an installed package

from playground.checks import bar, variant_checks

CHANCE = {"playground_background": 0.125, "playground_colour": 0.19, "playground_shape": 0.35}


def _stage(root: Path, losses: list[float]) -> Path:
    root.mkdir(parents=True)
    history = [{"step": i, "loss": loss} for i, loss in enumerate(losses)]
    (root / "trainer_state.json").write_text(json.dumps({"log_history": [*history, {"train_runtime": 1.0}]}))
    return root


def test_checks_pass_only_with_background_and_another_task(tmp_path):
    dirs = {"a": _stage(tmp_path / "a", [2.0, 1.5, 1.0, 0.5]), "b": _stage(tmp_path / "b", [1.0, 1.0, 1.2, 1.3])}
    result = {"scores": {"A": {"playground_background": 100.0, "playground_colour": 34.0, "playground_shape": 40.0},
                         "B": {"playground_background": 100.0, "playground_colour": 33.5}}}  # fmt: skip
    lines = dict(variant_checks({"a": "A", "b": "B"}, lambda v, _stage: dirs[v], ("stage2",), result, CHANCE))
    assert lines == {
        "A stage2: loss fell": True,
        "A background: +87.5 points vs chance (needs +15)": True,
        "A best other task: playground_colour +15.0 points vs chance (needs +15)": True,
        "B stage2: loss fell": False,
        "B background: +87.5 points vs chance (needs +15)": True,
        # A missing score counts as 0 %: shape is -35 points, colour the best at +14.5.
        "B best other task: playground_colour +14.5 points vs chance (needs +15)": False,
    }
    assert bar(["A"], result, CHANCE) == [
        "A: +15 points on 2/3 tasks (playground_background, playground_colour), misses the bar of 5"
    ]
