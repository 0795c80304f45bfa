"""Checkpoint folders on disk: what a complete one holds, how it is marked, rotated and chosen for a resume.

transformers writes ``checkpoint-N`` file by file (weights, optimizer, scheduler, RNG states, ``trainer_state.json``)
and, with ``save_total_limit``, deletes old folders file by file too, ordered by modification time. A kill in
either leaves a folder that looks like a checkpoint but cannot resume a run exactly. Here:

* a checkpoint is marked ``COMPLETE`` once every rank has written its files; the marker holds a manifest (each
  file's size), so a later truncation is seen;
* rotation runs only after the marker is written, orders by step number, keeps the newest *good* checkpoints, and
  removes a folder's marker before its files;
* a resume verifies the contents (manifest, safetensors headers, torch archives, the training state every rank
  needs) and falls back to an older good checkpoint, with a warning naming the bad file.
"""

from __future__ import annotations

import json
import logging
import shutil
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from transformers.trainer import OPTIMIZER_NAME, SCHEDULER_NAME, TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from vlcommon.ledger import write_json_atomic

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "COMPLETE"
# A folder being deleted is renamed first, so no resume or rotation ever takes it for a checkpoint again.
DELETING_SUFFIX = ".deleting"
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


@dataclass(frozen=True)
class Problem:
    """One reason a checkpoint cannot resume a run exactly. ``training_state``: only the optimizer, scheduler or
    RNG state is missing (the weights are fine), which ``--allow_partial_resume`` accepts."""

    file: str
    what: str
    training_state: bool = False

    def __str__(self) -> str:
        return f"{self.file}: {self.what}"


@dataclass(frozen=True)
class Layout:
    """What every checkpoint of this run must hold: one RNG state per rank, a DeepSpeed engine state or not."""

    world_size: int = 1
    zero_stage: int | None = None  # the DeepSpeed ZeRO stage; None without DeepSpeed
    training_state: bool = True  # False with --save_only_model: no optimizer, scheduler or RNG state is saved

    @property
    def deepspeed(self) -> bool:
        return self.zero_stage is not None


def checkpoint_folders(output_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every ``checkpoint-N`` directory, by step number (not by modification time)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        step = child.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-")
        if child.name.startswith(f"{PREFIX_CHECKPOINT_DIR}-") and step.isdigit() and child.is_dir():
            found.append((int(step), child))
    return sorted(found)


# -- the marker -------------------------------------------------------------------------------------------------


def mark_complete(folder: Path, step: int, *, manifest: bool = True) -> None:
    """Write ``COMPLETE`` (atomically) after everything else; with ``manifest``, the size of every file under it."""
    data: dict = {"step": step}
    if manifest:
        data["files"] = {
            p.relative_to(folder).as_posix(): p.stat().st_size
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != COMPLETE_MARKER
        }
    write_json_atomic(folder / COMPLETE_MARKER, data)


def unmark(folder: Path) -> None:
    (folder / COMPLETE_MARKER).unlink(missing_ok=True)


def _read_marker(folder: Path) -> dict | None:
    path = folder / COMPLETE_MARKER
    if not path.is_file():
        return None
    text = path.read_text().strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {"unreadable": text[:40]}
    return data if isinstance(data, dict) else {"step": data}  # earlier versions wrote the bare step number


# -- verification -----------------------------------------------------------------------------------------------


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read back (missing, truncated, malformed), read cheaply: headers, not tensors."""
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    try:
        if path.suffix == ".safetensors":
            return _safetensors_problem(path, size)
        if path.suffix in (".pt", ".pth", ".bin"):
            # torch.save writes a zip archive whose directory sits at the end: a truncated file has none.
            with zipfile.ZipFile(path) as archive:
                archive.infolist()
        elif path.suffix == ".json":
            json.loads(path.read_text())
    except Exception as err:  # noqa: BLE001 (whatever fails to parse cannot be read back; the caller names the file)
        return f"unreadable ({type(err).__name__}: {err}; {size} bytes)"
    return None


def _safetensors_problem(path: Path, size: int) -> str | None:
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if 8 + header_len > size:
            return f"truncated ({size} bytes, header alone needs {8 + header_len})"
        header = json.loads(f.read(header_len))
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    expected = 8 + header_len + end
    return None if size == expected else f"truncated ({size} of {expected} bytes)"


def checkpoint_problems(folder: Path, layout: Layout) -> list[Problem]:
    """Everything that keeps ``folder`` from resuming a run of this ``layout`` exactly; empty when it can."""
    problems = _state_problems(folder) + _weight_problems(folder, layout)
    if layout.training_state:
        problems += _training_state_problems(folder, layout)
    marker = _read_marker(folder)
    problems += _manifest_problems(folder, marker) if marker else []
    first = {}
    for problem in problems:  # a file two checks flag is named once, as the first (the most specific) says
        first.setdefault(problem.file, problem)
    return list(first.values())


def _manifest_problems(folder: Path, marker: dict) -> list[Problem]:
    if "unreadable" in marker:
        return [Problem(COMPLETE_MARKER, f"unreadable marker {marker['unreadable']!r}")]
    problems = []
    for name, size in marker.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            problems.append(Problem(name, f"missing ({size} bytes when the checkpoint was marked complete)"))
        elif path.stat().st_size != size:
            problems.append(Problem(name, f"{path.stat().st_size} bytes, {size} when marked complete"))
    return problems


def _state_problems(folder: Path) -> list[Problem]:
    problem = file_problem(folder / TRAINER_STATE_NAME)
    if problem:
        return [Problem(TRAINER_STATE_NAME, problem)]
    state = json.loads((folder / TRAINER_STATE_NAME).read_text())
    step = state.get("global_step") if isinstance(state, dict) else None
    if not isinstance(step, int):
        return [Problem(TRAINER_STATE_NAME, "no global_step")]
    named = folder.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-")
    if named.isdigit() and int(named) != step:  # an explicit --resume DIR may be named anything
        return [Problem(TRAINER_STATE_NAME, f"global_step {step}, folder says {named}")]
    return []


def _weight_problems(folder: Path, layout: Layout) -> list[Problem]:
    # DeepSpeed's engine state is written with the optimizer: --save_only_model leaves the weight files alone.
    if layout.deepspeed and layout.training_state:
        engine, problems = _deepspeed_dir(folder)
        if engine is None:
            return problems
        names = (
            ["mp_rank_00_model_states.pt"]
            if layout.zero_stage in (0, 1, 2)
            else [f"zero_pp_rank_{r}_mp_rank_00_model_states.pt" for r in range(layout.world_size)]
        )
        return [Problem(f"{engine.name}/{n}", p) for n in names if (p := file_problem(engine / n))]
    for name in _WEIGHTS:
        if (folder / name).exists():
            problem = file_problem(folder / name)
            return [Problem(name, problem)] if problem else []
    for name in _WEIGHT_INDEXES:
        if (folder / name).exists():
            if problem := file_problem(folder / name):
                return [Problem(name, problem)]
            index = json.loads((folder / name).read_text())
            if not isinstance(index, dict) or not isinstance(index.get("weight_map"), dict):
                return [Problem(name, "no weight_map")]
            shards = sorted(set(index["weight_map"].values()))
            return [Problem(s, p) for s in shards if (p := file_problem(folder / s))]
    return [Problem(_WEIGHTS[0], "missing (no model weights)")]


def _training_state_problems(folder: Path, layout: Layout) -> list[Problem]:
    names = [SCHEDULER_NAME]
    names += ["rng_state.pth"] if layout.world_size <= 1 else [f"rng_state_{r}.pth" for r in range(layout.world_size)]
    problems = []
    if not layout.deepspeed:
        names.append(OPTIMIZER_NAME)
    elif layout.zero_stage:  # stage 0 keeps the optimizer inside mp_rank_00_model_states.pt
        engine, problems = _deepspeed_dir(folder)
        for rank in range(layout.world_size) if engine is not None else ():
            # bf16 runs prefix the file name with "bf16_"
            pattern = f"*zero_pp_rank_{rank}_mp_rank_*_optim_states.pt"
            shards = sorted(engine.glob(pattern))
            names.append(f"{engine.name}/{shards[0].name}" if shards else f"{engine.name}/{pattern}")
    problems += [Problem(n, p) for n in names if (p := file_problem(folder / n))]
    return [Problem(p.file, p.what, training_state=True) for p in problems]


def _deepspeed_dir(folder: Path) -> tuple[Path | None, list[Problem]]:
    """The engine folder named by ``latest`` (DeepSpeed's loader reads that file), or the problem."""
    latest = folder / "latest"
    if not latest.is_file():
        return None, [Problem("latest", "missing (no DeepSpeed engine state; the run uses DeepSpeed)")]
    tag = latest.read_text().strip()
    if not (folder / tag).is_dir():
        return None, [Problem(f"{tag}/", "missing (named by latest)")]
    return folder / tag, []


def is_marked(folder: Path) -> bool:
    return (folder / COMPLETE_MARKER).is_file()


# -- rotation ---------------------------------------------------------------------------------------------------


def rotate(output_dir: str | Path, *, keep: int, newest: int, layout: Layout, protect: str | None = None) -> list[Path]:
    """Delete checkpoints up to step ``newest`` but the ``keep`` newest that verify (and ``protect``, the best
    model's), ordered by step. Damaged and interrupted folders go first. Returns what was deleted."""
    for leftover in Path(output_dir).glob(f"*{DELETING_SUFFIX}"):
        shutil.rmtree(leftover)  # a deletion a kill interrupted
    folders = [(step, f) for step, f in checkpoint_folders(output_dir) if step <= newest]
    good = [f for _, f in folders if not checkpoint_problems(f, layout)]
    kept = set(good[-keep:]) | {f for step, f in folders if step == newest}
    if protect:
        kept |= {f for _, f in folders if f.resolve() == Path(protect).resolve()}
    deleted = [folder for _, folder in folders if folder not in kept]
    for folder in deleted:
        logger.info("deleting %s (save_total_limit=%d)", folder, keep)
        discard(folder)
    return deleted


def discard(folder: Path) -> None:
    """Delete a checkpoint folder so that no moment of the deletion looks like a checkpoint: the marker goes, the
    folder is renamed out of the ``checkpoint-N`` namespace, then its files are deleted."""
    if not folder.exists():
        return
    unmark(folder)
    doomed = folder.with_name(folder.name + DELETING_SUFFIX)
    if doomed.exists():
        shutil.rmtree(doomed)
    folder.rename(doomed)
    shutil.rmtree(doomed)


# -- choosing where to resume -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResumeChoice:
    folder: Path | None
    warnings: tuple[str, ...] = ()


def choose_resume(output_dir: str | Path, layout: Layout, *, allow_partial: bool = False) -> ResumeChoice:
    """The newest checkpoint whose contents verify, newest first; raises when checkpoints marked complete exist but
    none can be used (a silent restart from step 0 would overwrite them)."""
    notes: list[str] = []
    damaged: list[str] = []
    for _, folder in reversed(checkpoint_folders(output_dir)):
        problems = checkpoint_problems(folder, layout)
        hard = [p for p in problems if not p.training_state]
        what = "; ".join(map(str, problems))
        if not hard and (allow_partial or not problems):
            if problems:
                notes.append(f"resuming from {folder} without its training state ({what}): not an exact resume")
            if not is_marked(folder):
                notes.append(
                    f"{folder} has no {COMPLETE_MARKER} marker (killed after its last file was written); "
                    "its contents check out, resuming from it"
                )
            return ResumeChoice(folder, tuple(notes))
        if is_marked(folder):
            damaged.append(f"{folder} ({what})")
            notes.append(f"checkpoint {folder} is damaged ({what}); falling back to an older one")
        else:
            notes.append(
                f"ignoring incomplete checkpoint {folder} (no {COMPLETE_MARKER} marker: the save was "
                f"interrupted; {what})"
            )
    if damaged:
        raise ValueError(
            f"no usable checkpoint in {output_dir}: {'; '.join(damaged)}. Remove or repair them, pass "
            "--resume never to start from step 0, or --allow_partial_resume True to resume from weights "
            "without optimizer, scheduler or RNG state"
        )
    return ResumeChoice(None, tuple(notes))


def require_usable(folder: str | Path, layout: Layout, *, allow_partial: bool = False) -> list[str]:
    """For an explicit ``--resume DIR``: a ValueError naming each bad file, or the warnings to show."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"--resume {folder}: no such checkpoint directory")
    problems = checkpoint_problems(folder, layout)
    blocking = [p for p in problems if not (allow_partial and p.training_state)]
    if blocking:
        hint = (
            " (--allow_partial_resume True accepts a missing training state)"
            if all(p.training_state for p in blocking)
            else ""
        )
        raise ValueError(f"--resume {folder}: cannot resume exactly: {'; '.join(map(str, blocking))}{hint}")
    return (
        [f"resuming from {folder} without its training state ({'; '.join(map(str, problems))}): not exact"]
        if problems
        else []
    )
