"""The playground curriculum generator: byte-determinism, LLaVA format, lmms-eval tasks, held-out images, metadata."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # playground/ is not an installed package

from llava.eval.benchmarks import Benchmark, Capability, ImageCategory, Resolution
from playground.data import FIRST_KINDS, Counts, generate
from playground.questions import KINDS, QUESTIONS, SUFFIX
from playground.tasks import TASKS, chance_accuracy

STAGES = ("stage1.json", "stage1_5.json", "stage2.json")


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("playground") / "data"
    generate(root, seed=0, counts=Counts.reduced())
    return root


def test_same_seed_same_bytes_other_seed_other_bytes(out, tmp_path):
    again = tmp_path / "again"
    manifest = generate(again, seed=0, counts=Counts.reduced())
    first, second = _hashes(out), _hashes(again)
    assert first == second
    assert set(first) == set(manifest["files"]) | {"manifest.json"}
    assert all(first[path] == sha for path, sha in manifest["files"].items())
    other = generate(tmp_path / "other", seed=1, counts=Counts(stage1=4, stage1_5=4, stage2=4, eval=2))
    for name in (*STAGES, "tasks/playground_colour.jsonl", "images/stage1/00000.png"):
        assert other["files"][name] != manifest["files"][name], name
    # Regenerating over a previous output replaces it; a foreign non-empty folder is refused.
    generate(again, seed=0, counts=Counts.reduced())
    assert _hashes(again) == first
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        generate(tmp_path / "foreign", counts=Counts.reduced())


def test_llava_format(out):
    counts = Counts.reduced()
    for name, expected in zip(STAGES, (counts.stage1, counts.stage1_5 + counts.stage1_5_questions, counts.stage2)):
        records = json.loads((out / name).read_text())
        assert len(records) == expected
        assert len({r["id"] for r in records}) == len(records)
        for record in records:
            assert (out / record["image"]).is_file()
            turns = record["conversations"]
            assert len(turns) >= 2 and len(turns) % 2 == 0
            assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
            assert all(isinstance(t["value"], str) and t["value"] for t in turns)
            assert sum(t["value"].count("<image>") for t in turns) == 1
            assert turns[0]["value"].startswith("<image>")
            if name == "stage1.json":
                assert len(turns) == 2 and turns[0]["value"] == "<image>"
            else:
                assert turns[0]["value"].startswith("<image>\n")
            if name == "stage2.json":
                assert all(t["value"].endswith(SUFFIX) for t in turns[::2])
                assert all(" " not in t["value"] for t in turns[1::2])  # one-word answers


def test_every_kind_of_question_is_trained_and_prompts_match_evaluation(out):
    asked = {
        turn["value"].removeprefix("<image>\n")
        for record in json.loads((out / "stage2.json").read_text())
        for turn in record["conversations"][::2]
    }
    assert asked == {QUESTIONS[kind] + SUFFIX for kind in KINDS}
    for kind in KINDS:
        docs = [json.loads(line) for line in (out / "tasks" / f"{TASKS[kind]}.jsonl").read_text().splitlines()]
        assert {doc["question"] for doc in docs} == {QUESTIONS[kind]}


def _kinds(record: dict) -> list[str]:
    by_question = {QUESTIONS[kind] + SUFFIX: kind for kind in KINDS}
    return [by_question.get(turn["value"].removeprefix("<image>\n")) for turn in record["conversations"][::2]]


def test_the_kinds_taught_first_lead_the_curriculum(out):
    # Stage 1.5 asks the first kinds alone (after its descriptions); every stage-2 conversation asks them and exactly
    # one other kind, and every other kind is asked.
    counts = Counts.reduced()
    questions = json.loads((out / "stage1_5.json").read_text())[counts.stage1_5 :]
    assert len(questions) == counts.stage1_5_questions
    assert all(sorted(_kinds(r)) == sorted(FIRST_KINDS) for r in questions)
    others = []
    for record in json.loads((out / "stage2.json").read_text()):
        kinds = _kinds(record)
        assert len(kinds) == len(FIRST_KINDS) + 1 and set(FIRST_KINDS) <= set(kinds), record["id"]
        others += [kind for kind in kinds if kind not in FIRST_KINDS]
    assert set(others) == set(KINDS) - set(FIRST_KINDS)
    assert min(others.count(kind) for kind in set(others)) > counts.stage2 / len(set(others)) / 2


def test_eval_images_are_held_out(out):
    def image_hashes(paths):
        return {hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}

    train = image_hashes((out / "images").rglob("*.png"))
    held_out = image_hashes((out / "tasks" / "images").glob("*.png"))
    assert len(held_out) == len(KINDS) * Counts.reduced().eval
    assert not train & held_out
    for kind in KINDS:
        for line in (out / "tasks" / f"{TASKS[kind]}.jsonl").read_text().splitlines():
            assert (out / "tasks" / json.loads(line)["image"]).is_file()


def test_tasks_load_with_lmms_eval(out, tmp_path, monkeypatch):
    pytest.importorskip("lmms_eval")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # data files must resolve against the YAML, not the working directory
    from lmms_eval.tasks import TaskManager, get_task_dict

    manager = TaskManager(include_path=str(out / "tasks"))
    assert all(task in manager.all_tasks for task in [*TASKS.values(), "playground"])
    task = get_task_dict(["playground_colour"], manager)["playground_colour"]
    docs = list(task.test_docs())
    assert len(docs) == Counts.reduced().eval
    assert task.doc_to_text(docs[0]) == QUESTIONS["colour"] + SUFFIX
    assert task.doc_to_target(docs[0]) == docs[0]["answer"]
    assert task.doc_to_visual(docs[0])[0].size == (docs[0]["width"], docs[0]["height"])
    assert task.config.generation_kwargs["max_new_tokens"] == 4


def test_benchmarks_json_and_chance(out):
    entries = json.loads((out / "tasks" / "benchmarks.json").read_text())
    benches = [
        Benchmark(
            **dict(
                e,
                capability=Capability(e["capability"]),
                image=ImageCategory(e["image"]),
                resolution=Resolution(e["resolution"]),
            )
        )
        for e in entries
    ]
    assert [b.task for b in benches] == list(TASKS.values())
    assert all(
        b.split == "test" and b.metric == "exact_match,none" and b.scale == 100 and not b.judged for b in benches
    )
    # Every column of a Table-XI-style report is filled.
    assert {b.capability for b in benches} == set(Capability)
    assert {b.image for b in benches} == set(ImageCategory)
    assert {b.resolution for b in benches} == set(Resolution)
    chance = json.loads((out / "manifest.json").read_text())["chance"]
    assert chance_accuracy(out / "tasks" / "playground_shape.jsonl") == pytest.approx(1 / 3)
    floors = json.loads((out / "tasks" / "chance.json").read_text())
    assert list(floors) == list(TASKS.values())
    for task in TASKS.values():
        assert 0 < chance[task]["uniform"] < 1 and 0 < chance[task]["majority"] <= 1
        assert floors[task] == max(chance[task]["uniform"], chance[task]["majority"])
