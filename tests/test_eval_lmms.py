"""lmms-eval 0.7.3 for real, offline, on generated local tasks and a tiny checkpoint.

* the stock ``llava_onevision`` wrapper and our ``llava_ov_manager`` give the same answers and scores;
* batched evaluation gives the answers of batch size 1 (in-memory model through ``simple_evaluate``);
* log-likelihoods equal the model's own label loss and multiple choice scores through the evaluator;
* our runner exits non-zero where lmms-eval itself exits 0, and refuses shadowed task names.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from llava.testing import build_qwen2_tokenizer, tiny_model
from llava.testing.lmms_tasks import write_probe_tasks

GENERATE_TASKS = ["ovm_probe_colour", "ovm_probe_pair", "ovm_probe_text"]
DOCS = 6


def _model():
    # A larger init scale than training's 0.02 makes the random model's answers depend on the prompt and image,
    # so identical answers mean identical inputs.
    return tiny_model(seed=3, initializer_range=0.2)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("lmms")
    ckpt = root / "ckpt"
    _model().save_pretrained(ckpt)
    build_qwen2_tokenizer().save_pretrained(ckpt)
    write_probe_tasks(root / "tasks", count=DOCS)
    env = dict(
        os.environ,
        HF_HOME=str(root / "hf"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return {"root": root, "ckpt": ckpt, "tasks": root / "tasks", "env": env}


def _run(workspace, model_args: list[str], tasks: list[str], out: str, *, runner=True, extra=()):
    lmms = [
        *model_args,
        "--tasks",
        ",".join(tasks),
        "--include_path",
        str(workspace["tasks"]),
        "--device",
        "cpu",
        "--output_path",
        str(workspace["root"] / out),
        "--log_samples",
        *extra,
    ]
    command = (
        [sys.executable, "-m", "llava.eval.run", "--", *lmms] if runner else [sys.executable, "-m", "lmms_eval", *lmms]
    )
    return subprocess.run(
        command, cwd=workspace["root"], env=workspace["env"], capture_output=True, text=True, timeout=600
    )


def _results(workspace, out) -> tuple[dict, dict]:
    folder = workspace["root"] / out  # an absolute `out` replaces the root
    results = json.loads(max(folder.rglob("*_results.json")).read_text())
    answers = {}
    for path in folder.rglob("*_samples_*.jsonl"):
        for line in path.read_text().splitlines():
            sample = json.loads(line)
            task = path.name.split("_samples_")[1].removesuffix(".jsonl")
            answers[(task, sample["doc_id"])] = sample["filtered_resps"]
    return results, answers


@pytest.mark.slow
def test_stock_wrapper_and_our_model_give_the_same_answers_and_scores(workspace):
    stock = _run(
        workspace,
        [
            "--model",
            "llava_onevision",
            "--model_args",
            (f"pretrained={workspace['ckpt']},conv_template=qwen_1_5,model_name=llava_qwen,device_map=auto"),
            "--batch_size",
            "1",
        ],
        GENERATE_TASKS,
        "stock",
    )
    assert stock.returncode == 0, stock.stderr[-3000:]
    ours = _run(
        workspace,
        ["--model", "llava_ov_manager", "--model_args", f"pretrained={workspace['ckpt']}", "--batch_size", "1"],
        GENERATE_TASKS,
        "ours",
    )
    assert ours.returncode == 0, ours.stderr[-3000:]
    stock_results, stock_answers = _results(workspace, "stock")
    our_results, our_answers = _results(workspace, "ours")
    for results in (stock_results, our_results):
        assert set(GENERATE_TASKS) <= set(results["results"])
        assert all(results["n-samples"][task]["effective"] == DOCS for task in GENERATE_TASKS)
    assert len(our_answers) == len(GENERATE_TASKS) * DOCS
    assert our_answers == stock_answers
    colour_answers = {str(our_answers[("ovm_probe_colour", i)]) for i in range(DOCS)}
    assert len(colour_answers) > 1, "answers do not depend on the input: the comparison would prove nothing"
    for task in GENERATE_TASKS:
        assert our_results["results"][task]["exact_match,none"] == stock_results["results"][task]["exact_match,none"]
    assert "LlavaOvManager" in our_results["config"]["model_backend"]


@pytest.fixture(scope="module")
def in_memory(workspace):
    from lmms_eval.tasks import TaskManager

    return {
        "model": _model(),
        "tokenizer": build_qwen2_tokenizer(),
        "tasks": TaskManager(include_path=str(workspace["tasks"])),
    }


def _evaluate(in_memory, tasks, batch_size):
    from lmms_eval.evaluator import simple_evaluate

    from llava.eval.lmms_model import LlavaOvManager

    lm = LlavaOvManager(model=in_memory["model"], tokenizer=in_memory["tokenizer"], batch_size=batch_size)
    return simple_evaluate(model=lm, tasks=tasks, task_manager=in_memory["tasks"], log_samples=True)


def _answers(output) -> dict:
    return {(task, s["doc_id"]): s["filtered_resps"] for task, samples in output["samples"].items() for s in samples}


def test_batched_evaluation_gives_the_answers_of_batch_size_one(workspace, in_memory):
    single = _answers(_evaluate(in_memory, GENERATE_TASKS, 1))
    batched = _answers(_evaluate(in_memory, GENERATE_TASKS, 4))
    assert len(single) == len(GENERATE_TASKS) * DOCS
    assert batched == single


def _label_loss(model, tokenizer, prompt: str, answer_prompt: str, images, sizes) -> float:
    """Reference: the model's own training loss with the prompt masked out."""
    from llava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
    from llava.mm_utils import tokenizer_image_token

    prompt_ids = tokenizer_image_token(prompt, tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt")
    ids = tokenizer_image_token(answer_prompt, tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt")[None]
    labels = ids.clone()
    labels[0, : prompt_ids.numel()] = IGNORE_INDEX
    with torch.no_grad():
        return model(input_ids=ids, labels=labels, images=images, image_sizes=sizes).loss.item()


def test_loglikelihood_equals_the_models_label_loss_and_scores_multiple_choice(workspace, in_memory):
    from llava.eval import requests as rq
    from llava.eval.loglikelihood import continuation_loss
    from llava.eval.prompts import conversation
    from llava.processing import SigLipImageProcessor

    model, tokenizer = in_memory["model"], in_memory["tokenizer"]
    docs = [json.loads(line) for line in (workspace["tasks"] / "ovm_probe_choice.jsonl").read_text().splitlines()]
    processor = SigLipImageProcessor(size=(384, 384))
    expected_hits, checked = [], 0
    for doc in docs:
        visuals = [Image.open(workspace["tasks"] / name).convert("RGB") for name in doc["images"]]
        context = doc["question"] + "\nAnswer with one word."
        item = rq.prepare(
            0,
            context,
            visuals,
            tokenizer,
            processor,
            model.config,
            template="qwen_1_5",
            dtype=model.dtype,
            device=model.device,
        )
        losses = []
        for choice in doc["choices"]:
            prompt = conversation(context, 1, "qwen_1_5").get_prompt()
            full = conversation(context, 1, "qwen_1_5", answer=" " + choice).get_prompt()
            loss, _ = continuation_loss(model, tokenizer, item, prompt, full)
            if not losses:  # the reference computes every position's logits: once per document
                reference = _label_loss(model, tokenizer, prompt, full, [item.images], item.sizes)
                assert loss == pytest.approx(reference, rel=1e-5, abs=1e-5)
                checked += 1
            losses.append(loss)
        expected_hits.append(float(losses.index(min(losses)) == doc["choices"].index(doc["answer"])))
    assert checked == len(docs)
    output = _evaluate(in_memory, ["ovm_probe_choice"], 1)
    assert output["results"]["ovm_probe_choice"]["acc,none"] == pytest.approx(sum(expected_hits) / len(docs))


@pytest.mark.slow
def test_failed_run_exits_non_zero_where_lmms_eval_exits_zero(workspace):
    broken = [
        "--model",
        "llava_ov_manager",
        "--model_args",
        f"pretrained={workspace['root'] / 'no-such-ckpt'}",
        "--batch_size",
        "1",
    ]
    plain = _run(workspace, broken, ["ovm_probe_text"], "broken_plain", runner=False)
    assert plain.returncode == 0, "lmms-eval 0.7.3 was expected to exit 0 on failure (the bug the runner guards)"
    guarded = _run(workspace, broken, ["ovm_probe_text"], "broken_guarded")
    assert guarded.returncode == 1
    assert "llava.eval.run: FAILED" in guarded.stderr


def test_runner_refuses_local_tasks_that_shadow_builtin_ones(workspace, tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "ai2d.yaml").write_text("task: ai2d\ndataset_path: json\n")
    from llava.eval.run import EvalFailed, check_no_shadowing

    with pytest.raises(EvalFailed, match=r"ai2d \("):
        check_no_shadowing(shadow)
    check_no_shadowing(workspace["tasks"])  # the probe tasks have their own names


def _script(workspace, name: str, out: Path, **env):
    script = Path(__file__).resolve().parents[1] / "scripts" / "eval" / name
    base = {key: value for key, value in workspace["env"].items() if key != "OPENAI_API_KEY"}
    defaults = {
        "CKPT": str(workspace["ckpt"]),
        "OUT": str(out),
        "PYTHON": sys.executable,
        "NUM_GPUS": "1",
        "TASKS": "ovm_probe_colour",
        "INCLUDE_PATH": str(workspace["tasks"]),
    }
    full_env = {**base, **defaults, **env}
    return subprocess.run(
        ["bash", str(script)], cwd=workspace["root"], env=full_env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_eval_scripts_predict_then_replay_scores_like_a_direct_run(workspace, tmp_path):
    out = tmp_path / "eval"
    direct = _script(workspace, "eval_checkpoint.sh", out, BATCH_SIZE="2")
    assert direct.returncode == 0, direct.stderr[-3000:]
    refused = _script(workspace, "score_judged.sh", out)
    assert refused.returncode == 1 and "OPENAI_API_KEY is not set" in refused.stderr
    predicted = _script(workspace, "predict_judged.sh", out)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    scored = _script(workspace, "score_judged.sh", out, OPENAI_API_KEY="unused-by-exact-match")
    assert scored.returncode == 0, scored.stderr[-3000:]

    def result(folder):
        return json.loads(max((out / folder).rglob("*_results.json")).read_text())["results"]["ovm_probe_colour"]

    assert "bypass,none" in result("judged_predict")
    assert result("judged_scored")["exact_match,none"] == result("offline")["exact_match,none"]
    _, direct_answers = _results(workspace, out / "offline")
    _, replayed = _results(workspace, out / "judged_scored")
    assert replayed == direct_answers and len(replayed) == DOCS


def test_eval_script_checks_its_environment_first(workspace, tmp_path):
    missing = _script(workspace, "eval_checkpoint.sh", tmp_path, CKPT=str(tmp_path / "nothing"))
    assert missing.returncode == 1 and "not a checkpoint directory" in missing.stderr
    stock_batch = _script(workspace, "eval_checkpoint.sh", tmp_path, MODEL="llava_onevision", BATCH_SIZE="4")
    assert stock_batch.returncode == 1 and "only runs BATCH_SIZE=1" in stock_batch.stderr
