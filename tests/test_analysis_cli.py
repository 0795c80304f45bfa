"""The analysis commands end to end on tiny saved checkpoints: LLaVA data and lmms-eval task documents as samples,
outputs written and readable, one-metric modules, the stage-style wrapper script and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from llava.analysis.cli import main
from llava.analysis.tables import read_csv
from llava.model.manager_config import ManagerConfig
from llava.testing import build_qwen2_tokenizer
from llava.testing.lmms_tasks import write_probe_tasks
from llava.testing.synthetic import write_corpus
from llava.testing.tiny import tiny_model

REPO = Path(__file__).resolve().parents[1]
SAUM = ManagerConfig(type="saum", expert_layers=(2, 3, 4), inject_layers=(0, 2))
AAUM = ManagerConfig(type="aaum", expert_layers=(3, 4), inject_layers=(1,))
IMAGES, TEXT_ONLY, MULTI = 4, 1, 1


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("analysis")
    tokenizer = build_qwen2_tokenizer()
    variants = {"base": ("pad", None), "manager": ("pad", SAUM), "grid_aaum": ("anyres_max_9", AAUM)}
    for name, (aspect, manager) in variants.items():
        model = tiny_model(
            seed=1, image_size=56, image_aspect_ratio=aspect, **({"manager": manager.to_dict()} if manager else {})
        )
        if manager is not None and manager.type == "saum":
            for module in model.model.managers.layers.values():
                torch.nn.init.normal_(module.weight, std=0.1)
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    data = write_corpus(root / "data", count=IMAGES, template="qwen_1_5", text_only=TEXT_ONLY, multi_image=MULTI)
    write_probe_tasks(root / "tasks", count=3)
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HOME=str(root / "hf"),
        PYTHON=sys.executable,
    )
    return {"root": root, "data": data, "env": env}


def _checkpoints(workspace, *names):
    return [arg for name in names for arg in ("--checkpoint", str(workspace["root"] / name))]


def test_all_metrics_on_llava_data_write_readable_tables_and_figures(workspace, capsys):
    out = workspace["root"] / "all"
    summary = main(
        [
            *_checkpoints(workspace, "base", "manager", "grid_aaum"),
            "--data",
            str(workspace["data"]),
            "--image-folder",
            str(workspace["data"].parent),
            "--out",
            str(out),
            "--query-chunk",
            "5",
        ]
    )
    labels = ["Baseline", "+Manager", "+Grid+Manager"]
    assert list(summary["checkpoints"]) == labels
    for entry in summary["checkpoints"].values():
        assert entry["samples"] == IMAGES + MULTI  # every record with an image, also the two-image one
        assert [s["reason"] for s in entry["skipped"]] == ["no image"]
    assert json.loads((out / "summary.json").read_text())["checkpoints"]["+Manager"]["inject_layers"] == [1, 3]
    similarity = read_csv(out / "layer_similarity.csv")
    assert {(r["variant"], r["layer"], r["part"]) for r in similarity} == {
        (v, layer, part) for v in labels for layer in range(1, 5) for part in ("visual", "text")
    }
    assert all(-1 <= r["cosine"] <= 1 and r["tokens"] > 0 for r in similarity)
    entropy = read_csv(out / "attention_entropy.csv")
    assert len(entropy) == 3 * 4 * 2
    assert all(0 <= r["entropy"] <= r["uniform_entropy"] + 1e-6 and 0 < r["block_mass"] <= 1 for r in entropy)
    assert all(r["kl"] >= -1e-6 for r in read_csv(out / "head_kl.csv"))
    distance = read_csv(out / "attention_distance.csv")
    assert {(r["layer"], r["head"]) for r in distance} == {(d, h) for d in range(1, 5) for h in range(2)}
    assert all(0 < r["distance_px"] < 14 * 4 * 2**0.5 for r in distance)
    weights = read_csv(out / "manager_weights.csv")
    saum = [r for r in weights if r["variant"] == "+Manager"]
    assert {(r["type"], r["layer"], r["vision_layer"]) for r in saum} == {
        ("saum", layer, k) for layer in (1, 3) for k in (2, 3, 4)
    }
    aaum = [r for r in weights if r["variant"] == "+Grid+Manager"]
    assert {r["type"] for r in aaum} == {"aaum"} and sum(r["weight"] for r in aaum) == pytest.approx(1.0)
    assert not [r for r in weights if r["variant"] == "Baseline"]
    for metric in ("layer_similarity", "attention_entropy", "head_kl", "attention_distance", "manager_weights"):
        with Image.open(out / f"{metric}.png") as image:
            assert image.size[0] > 400 and image.size[1] > 200
    assert "analysing" in capsys.readouterr().err  # a progress bar over the samples


def test_lmms_eval_task_documents_as_samples(workspace):
    out = workspace["root"] / "tasks_out"
    summary = main(
        [
            *_checkpoints(workspace, "grid_aaum"),
            "--tasks",
            "ovm_probe_colour,ovm_probe_text",
            "--include-path",
            str(workspace["root"] / "tasks"),
            "--limit",
            "2",
            "--out",
            str(out),
            "--metrics",
            "attention_entropy,manager_weights",
        ]
    )
    entry = summary["checkpoints"]["+Grid+Manager"]
    assert entry["samples"] == 2
    assert [s["sample_id"] for s in entry["skipped"]] == ["ovm_probe_text/0", "ovm_probe_text/1"]
    assert sorted(p.name for p in out.iterdir()) == [
        "attention_entropy.csv",
        "attention_entropy.png",
        "manager_weights.csv",
        "manager_weights.png",
        "summary.json",
    ]


def test_one_metric_module_writes_only_its_outputs(workspace):
    out = workspace["root"] / "one"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "llava.analysis.head_kl",
            *_checkpoints(workspace, "base"),
            "--checkpoint",
            f"Again={workspace['root'] / 'base'}",
            "--data",
            str(workspace["data"]),
            "--image-folder",
            str(workspace["data"].parent),
            "--limit",
            "2",
            "--out",
            str(out),
        ],
        env=workspace["env"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["head_kl.csv", "head_kl.png", "summary.json"]
    rows = read_csv(out / "head_kl.csv")
    by_label = {label: [r["kl"] for r in rows if r["variant"] == label] for label in ("Baseline", "Again")}
    assert by_label["Baseline"] == by_label["Again"] and len(by_label["Baseline"]) == 8  # same weights, same data


def test_saum_weights_need_no_samples_but_aaum_weights_do(workspace, capsys):
    out = workspace["root"] / "weights"
    summary = main([*_checkpoints(workspace, "manager"), "--out", str(out), "--metrics", "manager_weights"])
    assert summary["checkpoints"]["+Manager"]["samples"] == 0
    assert len(read_csv(out / "manager_weights.csv")) == 2 * 3
    with pytest.raises(SystemExit) as raised:
        main([*_checkpoints(workspace, "grid_aaum"), "--out", str(out), "--metrics", "manager_weights"])
    assert raised.value.code == 2
    assert "measured on samples" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--checkpoint", "/nonexistent/ckpt"], "/nonexistent/ckpt is not a checkpoint directory"),
        (["--checkpoint", "{base}", "--checkpoint", "{base}"], "several checkpoints are called ['Baseline']"),
        (["--checkpoint", "{base}", "--limit", "0"], "--limit 0 must be >= 1"),
        (["--checkpoint", "{base}", "--metrics", "entropy"], "metrics ['entropy']: choose from"),
        (["--checkpoint", "{base}", "--tasks", "no_such_task", "--include-path", "{tasks}"], "unknown lmms-eval task"),
    ],
)
def test_bad_input_is_a_clear_error(workspace, capsys, extra, message):
    root = workspace["root"]
    argv = [a.format(base=root / "base", tasks=root / "tasks") for a in extra]
    if "--tasks" not in argv:
        argv += ["--data", str(workspace["data"]), "--image-folder", str(workspace["data"].parent)]
    with pytest.raises(SystemExit) as raised:
        main([*argv, "--out", str(root / "bad")])
    assert raised.value.code == 2
    assert message in capsys.readouterr().err


def test_wrapper_script_checks_its_variables_and_runs(workspace):
    script = REPO / "scripts" / "analysis" / "analyze.sh"
    env = {k: v for k, v in workspace["env"].items() if k not in ("CHECKPOINTS", "OUT", "DATA", "TASKS")}
    missing = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert missing.returncode == 1 and "CHECKPOINTS is not set" in missing.stderr
    out = workspace["root"] / "script"
    env.update(
        CHECKPOINTS=f"Base={workspace['root'] / 'base'} {workspace['root'] / 'manager'}",
        OUT=str(out),
        DATA=str(workspace["data"]),
        IMAGE_FOLDER=str(workspace["data"].parent),
        LIMIT="2",
        METRICS="layer_similarity",
    )
    done = subprocess.run(
        ["bash", str(script), "--query-chunk", "3"], env=env, capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--query-chunk 3" in done.stderr  # "$@" passed through
    assert {r["variant"] for r in read_csv(out / "layer_similarity.csv")} == {"Base", "+Manager"}
