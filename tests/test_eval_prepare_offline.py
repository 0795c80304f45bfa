"""``llava.eval.prepare_offline`` with fake hub loaders: the local copies load and score in lmms-eval 0.7.3 offline.

* ``ai2d`` -> ``ai2d_local``: data, YAML and manifest are written, and ``simple_evaluate`` runs the stock prompts,
  filter and metric on the saved rows with a tiny in-memory model;
* ``gqa`` -> ``gqa_local``: both configs are saved and the generated ``process_docs`` (resolved through the YAML,
  as lmms-eval does) joins each question to its image;
* unknown names and groups raise ``ValueError``; ``relink`` rewrites the paths after DIR is moved.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
from PIL import Image

from llava.eval import prepare_offline as po

AI2D_ROWS = 4
COLOURS = {"n1": (255, 255, 255), "n2": (0, 255, 0), "n3": (0, 0, 255)}  # GQA image id -> solid colour


def _noise(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def fake_ai2d_loader(calls: list):
    """Rows in the schema of lmms-lab-encoder/ai2d: question, options, answer (an index string), image."""
    import datasets

    def load(path, name, split, kwargs):
        calls.append((path, name, split, kwargs))
        features = datasets.Features(
            {
                "question": datasets.Value("string"),
                "options": datasets.Sequence(datasets.Value("string")),
                "answer": datasets.Value("string"),
                "image": datasets.Image(),
            }
        )
        rows = {
            "question": [f"Which label is part {i}?" for i in range(AI2D_ROWS)],
            "options": [["leaf", "root", "stem", "flower"]] * AI2D_ROWS,
            "answer": [str(i % 4) for i in range(AI2D_ROWS)],
            "image": [_noise(40 + 16 * i, 48, seed=i) for i in range(AI2D_ROWS)],
        }
        return datasets.Dataset.from_dict(rows, features=features)

    return load


def fake_gqa_loader(calls: list):
    """``testdev_balanced_instructions`` questions point at ``testdev_balanced_images`` rows through imageId."""
    import datasets

    def load(path, name, split, kwargs):
        calls.append((path, name, split, kwargs))
        if name == po.GQA_IMAGES_CONFIG:
            ids = list(COLOURS)
            images = [
                Image.new("RGB", (24 + 8 * i, 24), COLOURS[k]).convert("L" if i == 0 else "RGB")
                for i, k in enumerate(ids)
            ]  # one greyscale image: process_docs must convert to RGB
            return datasets.Dataset.from_dict(
                {"id": ids, "image": images},
                features=datasets.Features({"id": datasets.Value("string"), "image": datasets.Image()}),
            )
        image_ids = ["n3", "n1", "n3", "n2", "n1"]
        return datasets.Dataset.from_dict(
            {
                "id": [f"q{i}" for i in range(len(image_ids))],
                "imageId": image_ids,
                "question": [f"What colour is it {i}?" for i in range(len(image_ids))],
                "answer": ["blue", "red", "blue", "green", "red"],
            }
        )

    return load


@pytest.fixture(scope="module")
def stock_index():
    from lmms_eval.tasks import TaskManager

    return TaskManager()  # indexing the stock tasks takes ~10 s; share it


@pytest.fixture(scope="module")
def ai2d_dir(tmp_path_factory, stock_index):
    out = tmp_path_factory.mktemp("offline")
    calls: list = []
    manifest = po.prepare(["ai2d"], out, loader=fake_ai2d_loader(calls), task_manager=stock_index)
    return out, manifest, calls


def test_prepare_ai2d_writes_data_yaml_and_manifest(ai2d_dir):
    from datasets import load_from_disk

    out, manifest, calls = ai2d_dir
    assert calls == [("lmms-lab-encoder/ai2d", None, "test", {})]  # token: True dropped
    assert len(load_from_disk(str(out / "data" / "ai2d"))["test"]) == AI2D_ROWS
    config = yaml.safe_load((out / "tasks" / "ai2d_local.yaml").read_text())
    assert config["task"] == "ai2d_local" and config["dataset_kwargs"] == {"load_from_disk": True}
    assert config["include"].endswith("lmms_eval/tasks/ai2d/ai2d.yaml") and config["dataset_path"] == str(
        (out / "data" / "ai2d").resolve()
    )
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest and on_disk["lmms_eval_version"] == "0.7.3"
    assert on_disk["tasks"]["ai2d"]["rows"] == {"test": AI2D_ROWS} and on_disk["created"]


def test_ai2d_local_runs_in_lmms_eval(ai2d_dir):
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager

    from llava.eval.lmms_model import LlavaOvManager
    from llava.testing import build_qwen2_tokenizer, tiny_model

    out, _, _ = ai2d_dir
    lm = LlavaOvManager(model=tiny_model(seed=0, image_size=56), tokenizer=build_qwen2_tokenizer(), batch_size=1)
    results = simple_evaluate(
        model=lm, tasks=["ai2d_local"], task_manager=TaskManager(include_path=str(out / "tasks")), log_samples=True
    )
    assert "exact_match,flexible-extract" in results["results"]["ai2d_local"]
    assert results["n-samples"]["ai2d_local"]["effective"] == AI2D_ROWS
    samples = results["samples"]["ai2d_local"]
    assert len(samples) == AI2D_ROWS and samples[1]["target"] == "B"  # stock doc_to_target on the saved rows
    assert "Answer with the option's letter" in samples[0]["arguments"][0]  # stock prompt (the context)


def test_gqa_local_process_docs_joins_the_saved_images(tmp_path, stock_index):
    from datasets import load_from_disk
    from lmms_eval import utils

    calls: list = []
    manifest = po.prepare(["gqa"], tmp_path, loader=fake_gqa_loader(calls), task_manager=stock_index)
    assert calls == [
        ("lmms-lab-encoder/GQA", "testdev_balanced_instructions", "testdev", {}),
        ("lmms-lab-encoder/GQA", "testdev_balanced_images", "testdev", {}),
    ]
    assert manifest["tasks"]["gqa"]["rows"] == {"testdev": 5}
    assert manifest["tasks"]["gqa"]["images_rows"] == {"testdev": 3}
    # Resolve the YAML as lmms-eval does (mode="full" imports !function): our process_docs overrides the stock one.
    config = utils.load_yaml_config(str(tmp_path / "tasks" / "gqa_local.yaml"), mode="full")
    assert config["task"] == "gqa_local" and config["process_docs"].__module__ == po.GQA_UTILS
    docs = config["process_docs"](load_from_disk(config["dataset_path"])["testdev"])
    assert len(docs) == 5
    for doc in docs:
        assert doc["image"].mode == "RGB"
        assert doc["image"].getpixel((0, 0)) == COLOURS[doc["imageId"]]
    assert [d["image"].size[0] for d in docs] == [40, 24, 40, 32, 24]  # the right row, not just the right colour


def test_unknown_task_and_group_raise(tmp_path, stock_index):
    with pytest.raises(ValueError, match="unknown lmms-eval task.*no_such_task"):
        po.prepare(["ai2d", "no_such_task"], tmp_path, loader=fake_ai2d_loader([]), task_manager=stock_index)
    with pytest.raises(ValueError, match="groups or tags"):
        po.prepare(["mathvista_testmini"], tmp_path, loader=fake_ai2d_loader([]), task_manager=stock_index)
    assert not any(tmp_path.iterdir())  # names are checked before anything is written


def test_relink_rewrites_paths_after_moving(ai2d_dir, tmp_path, stock_index):
    out, _, _ = ai2d_dir
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    [path] = po.relink(moved, task_manager=stock_index)
    config = yaml.safe_load(path.read_text())
    assert config["dataset_path"] == str((moved / "data" / "ai2d").resolve())
