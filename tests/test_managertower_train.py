"""ManagerTower training: optimiser groups and no-decay rules, every task's loss on a tiny batch, the train entry
(one process: VQA with accumulation and evaluation), and 2-process ZeRO-2 pre-training that resumes exactly."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_helpers import losses, rewind_to

from managertower import objectives as obj
from managertower.data.arrow import Task
from managertower.data.collate import TwoTowerCollator
from managertower.data.datasets import DataConfig, TwoTowerDataset
from managertower.model import ManagerTowerModel
from managertower.tasks import HeadConfig, TwoTowerForTask
from managertower.testing import tiny_arrow, tiny_config, tiny_tokenizer
from managertower.train.optim import LrScale, _undecayed_norms, parameter_groups

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("mt_train")
    tiny_arrow(root / "arrow")
    tiny_tokenizer().save_pretrained(root / "tokenizer")
    (root / "config.json").write_text(json.dumps(tiny_config(manager={"type": "aaum"}).to_dict()))
    return root


def _batch(assets, task: Task, split: str = "train", size: int = 4, **config) -> dict:
    tok = tiny_tokenizer()
    data = TwoTowerDataset(assets / "arrow", task, split, tokenizer=tok,
                           config=DataConfig(image_size=32, transform="albef", max_text_len=12, **config))  # fmt: skip
    batch = TwoTowerCollator(tokenizer=tok, mlm_probability=0.15 if task is Task.PRETRAIN else None)(
        [data[i] for i in range(size)]
    )
    batch.pop("data_report")
    return batch


def test_the_epoch_reaches_the_dataset_at_every_epoch_start():
    from types import SimpleNamespace

    from managertower.train.trainer import EpochCallback

    class Data:
        epoch = -1

        def set_epoch(self, epoch):
            self.epoch = epoch

    data = Data()
    for progress, expected in ((0.0, 0), (0.9999999999, 1), (2.0, 2), (3.5, 3)):  # 3.5: resumed mid-epoch
        EpochCallback(data).on_epoch_begin(None, SimpleNamespace(epoch=progress), None)
        assert data.epoch == expected


def test_learning_rate_specs():
    def resolve_lr(spec: str, base: float, *, name: str) -> float:  # the command line's spelling, read once
        return LrScale.parse(spec, name=name).resolve(base)

    assert resolve_lr("5", 1e-5, name="x") == pytest.approx(5e-5)
    assert resolve_lr("2e-5", 1e-5, name="x") == pytest.approx(2e-5)
    assert resolve_lr("0.5", 1e-5, name="x") == 0.5  # a float is an absolute lr, as in the original
    assert resolve_lr("5.0", 1e-5, name="x") == 5.0  # a point makes it absolute, however round
    with pytest.raises(ValueError, match="lr_mult_head"):
        resolve_lr("five", 1e-5, name="lr_mult_head")
    with pytest.raises(ValueError, match="must be > 0"):
        resolve_lr("0", 1e-5, name="x")
    for spec in ("5", "+50", "2e-5", "0.5", "5.0"):  # typed values spell back as the flag that means them
        scale = LrScale.parse(spec, name="x")
        assert LrScale.parse(scale.flag(), name="x") == scale
    assert LrScale.parse("50", name="x") == LrScale(multiplier=50)
    with pytest.raises(ValueError, match="exactly one"):
        LrScale(multiplier=5, absolute=1e-5)
    with pytest.raises(ValueError, match="integer"):
        LrScale(multiplier=2.5)


def test_parameter_groups_follow_the_original_rules():
    model = TwoTowerForTask(
        ManagerTowerModel(tiny_config(manager={"type": "aaum"})), Task.VQA, HeadConfig(vqa_classes=5)
    )
    groups = parameter_groups(model, lr=1.0, head_lr=50.0, cross_lr=5.0, weight_decay=0.01)
    where = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    assert sum(len(g["params"]) for g in groups) == len(where) == len(list(model.parameters()))
    named = dict(model.named_parameters())

    def of(name: str) -> tuple[float, float]:
        return where[id(named[name])]

    b = "backbone."
    assert of("heads.classifier.net.0.weight") == (50.0, 0.01)
    assert of("heads.classifier.net.1.weight") == (50.0, 0.01)  # the classifier's LayerNorm: decayed (quirk)
    assert of("heads.classifier.net.0.bias") == (50.0, 0.0)
    assert of(b + "cross_modal_text_transform.weight") == (5.0, 0.01)
    assert of(b + "text_inputs.managers.1.norms.0.weight") == (5.0, 0.01)  # a manager LayerNorm: decayed (quirk)
    assert of(b + "text_inputs.layer_embeddings.weight") == (1.0, 0.01)  # base lr, as in the original
    assert of(b + "token_type_embeddings.weight") == (1.0, 0.01)
    text_ln = next(n for n in named if n.startswith(b + "text_model") and n.endswith("LayerNorm.weight"))
    assert of(text_ln) == (1.0, 0.0)
    clip_ln = next(n for n in named if n.startswith(b + "vision_model") and ".ln_" in n and n.endswith("weight"))
    assert of(clip_ln) == (1.0, 0.01)  # CLIP's ln_* weights: decayed (quirk)
    cross_ln = next(n for n in named if n.startswith(b + "cross_modal_image_layers") and n.endswith("LayerNorm.weight"))
    assert of(cross_ln) == (5.0, 0.0)
    assert of(b + "image_inputs.managers.1.other_norm.weight") == (5.0, 0.0)  # the original's extra_query_LayerNorm
    in_proj = next(n for n in named if n.startswith(b + "vision_model") and n.endswith("in_proj_bias"))
    assert of(in_proj) == (1.0, 0.0)


def _groups_by_the_original_rule(model, groups) -> dict[str, str]:
    """Each parameter's group name as the rule before typed selection chose it: the same modules, and every
    parameter whose attribute name *contains* "bias" undecayed."""
    no_decay = {id(norm.weight) for norm in _undecayed_norms(model)}
    no_decay |= {id(p) for m in model.modules() for name, p in m.named_parameters(recurse=False) if "bias" in name}
    lr_group = {id(p): g["name"].removesuffix("_no_decay") for g in groups for p in g["params"]}
    return {n: lr_group[id(p)] + ("_no_decay" if id(p) in no_decay else "") for n, p in model.named_parameters()}


@pytest.mark.parametrize("name", ["meter", "bridgetower", "managertower", "table1/saum-nd", "table1/sam-n1",
                                  "table1/cross-attention-fused", "table1/concat-attention-own"])  # fmt: skip
def test_parameter_groups_are_the_name_rules_groups(name):
    from managertower.presets import preset

    for task in (Task.PRETRAIN, Task.NLVR2, Task.F30K):
        model = TwoTowerForTask(ManagerTowerModel(preset(name, tiny_config())), task, HeadConfig(vqa_classes=5))
        groups = parameter_groups(model, lr=1.0, head_lr=50.0, cross_lr=5.0, weight_decay=0.01)
        chosen = {n: g["name"] for g in groups for n, p in model.named_parameters() if any(p is q for q in g["params"])}
        assert chosen == _groups_by_the_original_rule(model, groups), (name, task)


def test_loss_parts_wait_for_no_device_until_logged():
    from managertower.train.trainer import LossParts

    parts = LossParts()
    # Meta tensors have no values: adding one that was read (float(), .item()) would raise.
    parts.add({"mlm_loss": torch.ones((), device="meta"), "loss": torch.ones((), device="meta")})
    torch.manual_seed(0)
    steps = [{"mlm_loss": torch.rand(()) * 3, "itm_loss": torch.rand(()).bfloat16()} for _ in range(7)]
    steps.append({"itc_loss": torch.rand((), requires_grad=True) * 2})
    parts = LossParts()
    for outputs in steps:
        parts.add(outputs)
    # What the per-micro-batch float() gave: the mean of Python floats, rounded to 4 places.
    floats: dict[str, list[float]] = {}
    for outputs in steps:
        for name, value in outputs.items():
            floats.setdefault(name, []).append(float(value.detach()))
    assert parts.means() == {k: round(sum(v) / len(v), 4) for k, v in floats.items()}
    assert parts.means() == {}  # a fresh start after each log


@pytest.mark.parametrize("task", list(Task))
def test_every_task_loss_is_finite_and_reaches_every_head(assets, task):
    torch.manual_seed(0)
    model = TwoTowerForTask(ManagerTowerModel(tiny_config(manager={"type": "aaum"})), task, HeadConfig(vqa_classes=12))
    extra = {"answer_classes": 12} if task is Task.VQA else {}
    if task is Task.PRETRAIN:
        extra["draw_false_image"] = True
    out = model(**_batch(assets, task, **extra))
    assert math.isfinite(out["loss"].item())
    out["loss"].backward()
    for name, param in model.heads.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def _train_argv(assets, out: Path, *, task: str, steps: int, extra=()) -> list[str]:
    return [
        "--data_root", str(assets / "arrow"), "--task", task, "--model_config", str(assets / "config.json"),
        "--tokenizer", str(assets / "tokenizer"), "--output_dir", str(out), "--max_steps", str(steps),
        "--per_device_train_batch_size", "4", "--learning_rate", "1e-3", "--logging_steps", "1",
        "--report_to", "none", "--max_text_len", "12", "--dataloader_num_workers", "0", "--seed", "0",
        "--bad_sample_min_seen", "1000", *extra,
    ]  # fmt: skip


def test_train_entry_vqa_with_accumulation_and_evaluation(assets, tmp_path):
    from managertower.train.train import train

    extra = ["--gradient_accumulation_steps", "2", "--do_eval", "True", "--results_name", "managertower",
             "--save_strategy", "no", "--lr_mult_head", "50"]  # fmt: skip
    argv = _train_argv(assets, tmp_path, task="vqa", steps=2, extra=extra)
    trainer = train(argv)
    assert trainer.state.global_step == 2
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["name"] == "managertower" and results["task"] == "vqa"
    assert results["n"]["val"] == 3 * 24
    # The reported score equals the model's own per-question VQA score over the val split, one sample at a time.
    model, tok = trainer.model.eval(), tiny_tokenizer()
    val = TwoTowerDataset(assets / "arrow", Task.VQA, "val", tokenizer=tok,
                          config=DataConfig(image_size=32, transform="albef", max_text_len=12,
                                            answer_classes=model.head_config.vqa_classes))  # fmt: skip
    collate, total = TwoTowerCollator(tokenizer=tok), 0.0
    with torch.no_grad():
        for i in range(len(val)):
            batch = collate([val[i]])
            batch.pop("data_report")
            out = model(**batch)
            total += float(obj.vqa_score(out["logits"], out["targets"]).sum())
    assert results["metrics"]["val"] == pytest.approx(100 * total / len(val), abs=1e-3)
    assert (tmp_path / "COMPLETE").is_file() and (tmp_path / "backbone" / "model.safetensors").is_file()
    assert (tmp_path / "vqa_submit_test.json").is_file()
    reloaded = ManagerTowerModel.from_pretrained(tmp_path / "backbone")
    assert torch.equal(reloaded.token_type_embeddings.weight, trainer.model.backbone.token_type_embeddings.weight)


def _torchrun(argv: list[str], port: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu", PYTHONPATH=str(ROOT))
    env.setdefault("TORCH_EXTENSIONS_DIR", str(ROOT / ".cache" / "torch_extensions"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", str(port),
           "-m", "managertower.train.train", *argv]  # fmt: skip
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-6000:]
    return result


@pytest.mark.slow
def test_zero2_pretraining_on_two_processes_resumes_exactly(assets, tmp_path):
    pytest.importorskip("deepspeed", reason="DeepSpeed is in the dev/train extras")
    argv = _train_argv(assets, tmp_path, task="pretrain", steps=4,
                       extra=["--deepspeed", str(ROOT / "scripts" / "zero2.json"), "--save_strategy", "steps",
                              "--save_steps", "2", "--per_device_train_batch_size", "2"])  # fmt: skip
    _torchrun(argv, port=29631)
    uninterrupted = losses(tmp_path)
    assert len(uninterrupted) == 4 and all(math.isfinite(v) for v in uninterrupted.values()), uninterrupted
    assert (tmp_path / "checkpoint-2" / "global_step2").is_dir(), "DeepSpeed engine checkpoint"
    assert (tmp_path / "checkpoint-2" / "COMPLETE").is_file()
    rewind_to(tmp_path, 2)
    result = _torchrun(argv, port=29632)
    assert "checkpoint-2" in result.stdout + result.stderr
    resumed = losses(tmp_path)
    assert [resumed[s] for s in (3, 4)] == [uninterrupted[s] for s in (3, 4)], (resumed, uninterrupted)


def test_retrieval_evaluation_reranks_every_pair_when_k_covers_the_pool(assets, tmp_path):
    from managertower.evaluate import evaluate

    torch.manual_seed(0)
    model = TwoTowerForTask(ManagerTowerModel(tiny_config()), Task.F30K).eval()
    tok = tiny_tokenizer()
    config = DataConfig(image_size=32, transform="albef", max_text_len=12)
    results = evaluate(model, assets / "arrow", tokenizer=tok, config=config, name="bridgetower", seed=0,
                       out=tmp_path, k_test=1000)  # fmt: skip
    metrics = results["metrics"]
    recalls = [metrics[k] for k in ("ir1", "ir5", "ir10", "tr1", "tr5", "tr10")]
    assert metrics["r_mean"] == pytest.approx(sum(recalls) / 6, abs=1e-3)
    # With k past the pool every pair is scored by ITM: image-to-text R@1 is the share of images whose best ITM
    # caption is one of their own, computed here by brute force.
    data = TwoTowerDataset(assets / "arrow", Task.F30K, "test", tokenizer=tok, config=config)
    items = [data[i] for i in range(len(data))]
    images = sorted({item["image_index"] for item in items})
    pixels = {item["image_index"]: item["pixel_values"] for item in items}
    with torch.no_grad():
        hits = 0
        for image in images:
            batch = len(items)
            out = model.backbone(torch.stack([it["input_ids"] for it in items]),
                                 torch.stack([it["attention_mask"] for it in items]),
                                 pixels[image][None].expand(batch, -1, -1, -1))  # fmt: skip
            best = int(model.heads["itm"](out.cls_feats)[:, 1].argmax())
            hits += items[best]["image_index"] == image
    assert metrics["tr1"] == pytest.approx(100 * hits / len(images), abs=1e-3)
    assert json.loads((tmp_path / "results.json").read_text())["task"] == "f30k"


def test_f30k_itc_gathered_over_two_ranks_equals_one_process_on_the_whole_batch(tmp_path):
    import _itc_worker

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{ROOT}:{ROOT / 'tests'}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", "29633",
           str(ROOT / "tests" / "_itc_worker.py"), str(tmp_path)]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    task = _itc_worker.model()
    out = task(**_itc_worker.batch())
    out["itc_loss"].backward()
    # The full batch's ITC is the mean of the ranks' (each over its own rows, against every rank's features).
    assert sum(r["itc_loss"] for r in ranks) / 2 == pytest.approx(out["itc_loss"].item(), rel=1e-5)
    assert ranks[0]["grad"] == pytest.approx(task.itc.text.weight.grad.flatten()[:64].tolist(), rel=1e-4, abs=1e-7)
    for r in ranks:  # hard negatives come from the other rank too, and are never a positive (the same image)
        assert all(n != own for n, own in zip(r["negative_images"], r["image_index"], strict=True))
        assert all(n != own for n, own in zip(r["negative_texts"], r["image_index"], strict=True))
    drawn = {n for r in ranks for n in r["negative_images"] + r["negative_texts"]}
    assert drawn - set(ranks[0]["image_index"]) and drawn - set(ranks[1]["image_index"])


def test_a_kill_during_the_final_save_leaves_no_copy_of_the_weights_after_a_relaunch(assets, tmp_path):
    """SIGKILL once the backbone's weights are fully written to their temporary, before the rename (the cleanup in
    ``atomic_write``'s ``finally`` never runs): the relaunch removes that full-size copy before it writes."""
    from managertower.train.train import train

    argv = _train_argv(assets, tmp_path, task="pretrain", steps=1, extra=["--save_strategy", "no"])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    kill = ["rename", "backbone", "model.safetensors", "--entry", "managertower.train.train"]
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "kill_at.py"), *kill, "--", *argv], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == -9, done.stderr[-4000:]
    (leftover,) = (tmp_path / "backbone").glob(".model.safetensors.tmp*")
    assert leftover.stat().st_size > 100_000 and not (tmp_path / "backbone" / "model.safetensors").exists()
    train(argv)
    assert not [p.name for p in tmp_path.rglob("*.tmp*")], "a temporary outlived the relaunch"
    assert (tmp_path / "COMPLETE").is_file() and (tmp_path / "backbone" / "model.safetensors").is_file()


def test_a_relaunch_over_another_models_checkpoints_is_refused_by_name(assets, tmp_path):
    """The same output folder, now a ManagerTower-SAUM config over an AAUM run's checkpoint: refused before the
    model is built, naming the folder and the parameters; ``--resume never`` is the explicit way out."""
    from managertower.train.train import train

    argv = _train_argv(
        assets, tmp_path, task="pretrain", steps=1, extra=["--save_strategy", "steps", "--save_steps", "1"]
    )
    train(argv)
    saum = tmp_path / "saum.json"
    saum.write_text(json.dumps(tiny_config(manager={"type": "saum"}).to_dict()))
    argv[argv.index("--model_config") + 1] = str(saum)
    with pytest.raises(ValueError, match=rf"{tmp_path / 'checkpoint-1'} is a checkpoint of another model .*managers"):
        train(argv)
    assert train([*argv, "--resume", "never"]).state.global_step == 1
