"""A kill at any moment resumes exactly: real SIGKILLs of a training subprocess at chosen file events, then
``--resume auto``, compared with one uninterrupted run; and the checkpoint checks behind it, on damaged copies of
that run's checkpoints.

Every run here is a subprocess with the same thread count, which bit-exact comparison needs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import stage2_args

from vlcommon.checkpoints import (
    COMPLETE_MARKER,
    Layout,
    checkpoint_folders,
    checkpoint_problems,
    choose_resume,
    mark_complete,
    require_usable,
    rotate,
)

ROOT = Path(__file__).resolve().parents[1]
STEPS = 4
SINGLE = Layout()


def _argv(assets, out: Path, *, keep: int | None = 1) -> list[str]:
    extra = [
        "--vision_tower",
        str(assets["vision"]),
        "--image_aspect_ratio",
        "pad",
        "--manager_type",
        "saum",
        "--manager_inject_layers",
        "count:2",
        "--save_strategy",
        "steps",
        "--save_steps",
        "1",
    ]
    return stage2_args(
        assets, assets["llm"], out, steps=STEPS, extra=extra + (["--save_total_limit", str(keep)] if keep else [])
    )


def _run(argv: list[str], kill: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="2", PYTHONPATH=str(ROOT))
    cmd = (
        [sys.executable, str(ROOT / "tests" / "kill_at.py"), *kill, "--", *argv]
        if kill
        else [sys.executable, "-m", "llava.train.train", *argv]
    )
    result = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=900)
    expected = -9 if kill else 0
    assert result.returncode == expected, (result.returncode, result.stdout[-3000:] + result.stderr[-5000:])
    return result


def _trajectory(out: Path) -> dict[int, tuple]:
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return {e["step"]: (e["loss"], e["grad_norm"], e["learning_rate"]) for e in history if "loss" in e}


def _assert_same_run(out: Path, reference: Path) -> None:
    assert (out / COMPLETE_MARKER).is_file()
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == STEPS
    assert _trajectory(out) == _trajectory(reference)
    ours, theirs = load_file(out / "model.safetensors"), load_file(reference / "model.safetensors")
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours), "final weights differ from the uninterrupted run"
    bad = json.loads((out / "bad_samples.json").read_text())
    assert bad == json.loads((reference / "bad_samples.json").read_text())


@pytest.fixture(scope="module")
def reference(assets, tmp_path_factory) -> Path:
    """The uninterrupted run, every checkpoint kept (the material of the damaged-copy tests)."""
    out = tmp_path_factory.mktemp("reference")
    _run(_argv(assets, out, keep=None))
    assert [step for step, _ in checkpoint_folders(out)] == [1, 2, 3, 4]
    return out


def _copy_checkpoints(reference: Path, dest: Path, steps, *, link: bool = True) -> Path:
    """Copies of the reference checkpoints: hard links for the tests that only read and delete (damage goes
    through ``_truncate``/``_replace``), real copies for a run that rewrites them."""
    dest.mkdir(parents=True, exist_ok=True)
    for step in steps:
        shutil.copytree(
            reference / f"checkpoint-{step}",
            dest / f"checkpoint-{step}",
            copy_function=os.link if link else shutil.copy2,
        )
    return dest


def _replace(path: Path, text: str) -> None:
    path.unlink()
    path.write_text(text)


def _truncate(path: Path) -> None:
    """Halve a (possibly hard-linked) file without touching the reference it links to."""
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data[: len(data) // 2])


# -- real kills ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill, resumes_from",
    [
        (("enter", "checkpoint-3"), "checkpoint-2"),  # the checkpoint folder has just appeared
        (("open", "checkpoint-3", COMPLETE_MARKER), "checkpoint-3"),  # trainer_state.json written, COMPLETE not
        (("remove", "checkpoint-2.deleting", "optimizer.pt"), "checkpoint-3"),  # rotation deleted the old optimizer
        (("weights", "model.safetensors"), "checkpoint-4"),  # the final weights are half written (at max_steps)
    ],
    ids=["folder-appears", "before-marker", "mid-rotation", "final-weights"],
)
def test_a_kill_resumes_exactly(assets, reference, tmp_path, kill, resumes_from):
    out = tmp_path / "run"
    if kill[0] == "weights":
        kill = (kill[0], str(out / kill[1]))
    _run(_argv(assets, out), kill=kill)
    assert not (out / COMPLETE_MARKER).exists()
    if kill[0] == "remove":
        damaged = out / "checkpoint-2.deleting"
        assert damaged.is_dir() and not (damaged / "optimizer.pt").exists(), "killed half-way through the deletion"
        assert not (damaged / COMPLETE_MARKER).exists(), "the marker goes before the files"
        assert 2 not in [step for step, _ in checkpoint_folders(out)], "renamed out of reach before the deletion"
    resumed = _run(_argv(assets, out))
    assert f"resuming from {out / resumes_from}" in resumed.stderr
    _assert_same_run(out, reference)
    assert [step for step, _ in checkpoint_folders(out)] == [STEPS], "rotation kept only the newest checkpoint"
    assert not list(out.glob("*.deleting")), "an interrupted deletion is finished by the next rotation"


@pytest.mark.slow
def test_a_damaged_newest_checkpoint_falls_back_with_a_warning(assets, reference, tmp_path):
    out = _copy_checkpoints(reference, tmp_path / "run", [3, 4], link=False)
    _truncate(out / "checkpoint-4" / "model.safetensors")
    resumed = _run(_argv(assets, out))
    log = resumed.stdout + resumed.stderr
    assert "checkpoint-4 is damaged (model.safetensors: truncated" in log
    assert f"resuming from {out / 'checkpoint-3'}" in log
    _assert_same_run(out, reference)


# -- the checks behind it, on damaged copies ------------------------------------------------------------------------


def test_a_whole_checkpoint_verifies_and_each_damage_is_named(reference, tmp_path):
    assert checkpoint_problems(reference / "checkpoint-2", SINGLE) == []
    for name, damage in [
        ("model.safetensors", _truncate),
        ("optimizer.pt", _truncate),
        ("rng_state.pth", Path.unlink),
        ("scheduler.pt", Path.unlink),
        ("trainer_state.json", _truncate),
    ]:
        folder = _copy_checkpoints(reference, tmp_path / name, [2]) / "checkpoint-2"
        damage(folder / name)
        problems = checkpoint_problems(folder, SINGLE)
        assert [p.file for p in problems] == [name], problems
        assert problems[0].training_state == (name in ("optimizer.pt", "rng_state.pth", "scheduler.pt"))
    # A file the checks do not read (the tokenizer) is still covered by the marker's manifest.
    folder = _copy_checkpoints(reference, tmp_path / "tok", [2]) / "checkpoint-2"
    _truncate(folder / "tokenizer.json")
    assert [str(p).split(":")[0] for p in checkpoint_problems(folder, SINGLE)] == ["tokenizer.json"]
    two_ranks = checkpoint_problems(reference / "checkpoint-2", Layout(world_size=2))
    assert {p.file for p in two_ranks} == {"rng_state_0.pth", "rng_state_1.pth"}


def test_a_marked_checkpoint_missing_its_optimizer_is_not_preferred(reference, tmp_path):
    """Issue 18's reproduction: rotation had deleted checkpoint-2's optimizer.pt but not its marker (written
    by an earlier version: the bare step number), while checkpoint-3 holds every file but no marker."""
    out = _copy_checkpoints(reference, tmp_path / "run", [2, 3])
    (out / "checkpoint-2" / "optimizer.pt").unlink()
    _replace(out / "checkpoint-2" / COMPLETE_MARKER, "2\n")
    (out / "checkpoint-3" / COMPLETE_MARKER).unlink()
    choice = choose_resume(out, SINGLE)
    assert choice.folder == out / "checkpoint-3"
    assert any("no COMPLETE marker" in w and "contents check out" in w for w in choice.warnings)
    shutil.rmtree(out / "checkpoint-3")
    with pytest.raises(ValueError, match=r"checkpoint-2 \(optimizer.pt: missing\).*--allow_partial_resume"):
        choose_resume(out, SINGLE)
    partial = choose_resume(out, SINGLE, allow_partial=True)
    assert partial.folder == out / "checkpoint-2" and "not an exact resume" in partial.warnings[0]
    with pytest.raises(ValueError, match="optimizer.pt: missing"):
        require_usable(out / "checkpoint-2", SINGLE)


def test_an_interrupted_first_save_starts_over(reference, tmp_path):
    out = _copy_checkpoints(reference, tmp_path / "run", [1])
    (out / "checkpoint-1" / COMPLETE_MARKER).unlink()
    _truncate(out / "checkpoint-1" / "optimizer.pt")
    choice = choose_resume(out, SINGLE)
    assert choice.folder is None and "ignoring incomplete checkpoint" in choice.warnings[0]
    assert "optimizer.pt" in choice.warnings[0]


def test_rotation_orders_by_step_and_never_keeps_a_damaged_checkpoint(reference, tmp_path):
    out = _copy_checkpoints(reference, tmp_path / "run", [1, 2, 3, 4])
    _truncate(out / "checkpoint-3" / "optimizer.pt")
    os.utime(out / "checkpoint-1")  # newest modification time: transformers would keep it
    deleted = rotate(out, keep=2, newest=4, layout=SINGLE)
    assert sorted(p.name for p in deleted) == ["checkpoint-1", "checkpoint-3"]
    assert [step for step, _ in checkpoint_folders(out)] == [2, 4]


def test_the_marker_manifest_lists_every_file(reference):
    folder = reference / "checkpoint-1"
    marker = json.loads((folder / COMPLETE_MARKER).read_text())
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {COMPLETE_MARKER}
    assert marker["step"] == 1 and set(marker["files"]) == on_disk and "optimizer.pt" in on_disk


def test_mark_complete_is_atomic_and_overwrites(tmp_path):
    (tmp_path / "a.json").write_text("{}")
    mark_complete(tmp_path, 7)
    mark_complete(tmp_path, 8)
    assert json.loads((tmp_path / COMPLETE_MARKER).read_text()) == {"step": 8, "files": {"a.json": 2}}
    assert sorted(p.name for p in tmp_path.iterdir()) == [COMPLETE_MARKER, "a.json"]


@pytest.mark.parametrize("zero", [2, 3])
def test_deepspeed_checkpoints_need_every_ranks_state(tmp_path, zero):
    """DeepSpeed's layouts (ZeRO-2: one model-states file; ZeRO-3: one per rank; bf16 optimizer shards)."""
    folder = tmp_path / "checkpoint-2"
    engine = folder / "global_step2"
    engine.mkdir(parents=True)
    (folder / "latest").write_text("global_step2")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
    names = [f"bf16_zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in range(2)]
    names += (
        ["mp_rank_00_model_states.pt"]
        if zero == 2
        else [f"zero_pp_rank_{r}_mp_rank_00_model_states.pt" for r in range(2)]
    )
    for name in [f"global_step2/{n}" for n in names] + ["scheduler.pt", "rng_state_0.pth", "rng_state_1.pth"]:
        torch.save({"x": torch.ones(2)}, folder / name)
    layout = Layout(world_size=2, zero_stage=zero)
    assert checkpoint_problems(folder, layout) == []
    (engine / names[1]).unlink()
    missing = "global_step2/*zero_pp_rank_1_mp_rank_*_optim_states.pt"  # named as a pattern: bf16 runs add a prefix
    assert [p.file for p in checkpoint_problems(folder, layout)] == [missing]
    _truncate(engine / names[-1])
    assert f"global_step2/{names[-1]}" in {p.file for p in checkpoint_problems(folder, layout)}
    assert [p.file for p in checkpoint_problems(folder, Layout(world_size=2))] == ["model.safetensors", "optimizer.pt"]
    (folder / "latest").unlink()  # DeepSpeed's loader reads it
    assert "latest" in {p.file for p in checkpoint_problems(folder, layout)}
    # --save_only_model: no engine state is written; the weight files are what counts.
    assert [
        p.file for p in checkpoint_problems(folder, Layout(world_size=2, zero_stage=zero, training_state=False))
    ] == ["model.safetensors"]


def test_checks_report_malformed_files_instead_of_crashing(reference, tmp_path):
    folder = _copy_checkpoints(reference, tmp_path / "run", [2]) / "checkpoint-2"
    weights = folder / "model.safetensors"
    weights.unlink()
    header = b"[1, 2]"
    weights.write_bytes(len(header).to_bytes(8, "little") + header)
    _replace(folder / "trainer_state.json", "[]")
    problems = {p.file: p.what for p in checkpoint_problems(folder, SINGLE)}
    assert problems["model.safetensors"].startswith("unreadable") and "global_step" in problems["trainer_state.json"]
    named = folder.rename(tmp_path / "my-checkpoint")  # --resume DIR may be named anything
    with pytest.raises(ValueError, match="my-checkpoint: cannot resume exactly: trainer_state.json"):
        require_usable(named, SINGLE)


def test_an_interrupted_deletion_is_never_a_checkpoint_and_is_finished_later(reference, tmp_path):
    out = _copy_checkpoints(reference, tmp_path / "run", [2, 3])
    (out / "checkpoint-2").rename(out / "checkpoint-2.deleting")
    assert choose_resume(out, SINGLE).folder == out / "checkpoint-3"
    assert [step for step, _ in checkpoint_folders(out)] == [3]
    rotate(out, keep=1, newest=3, layout=SINGLE)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-3"]
