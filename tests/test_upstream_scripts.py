"""LLaVA-NeXT's own ways in: its entry path, DeepSpeed config paths, OneVision stage scripts (tests/upstream/, the
upstream flag sets with paths, steps and process counts changed), a stage-1 file of its own, torch.compile under
ZeRO-3 and a plain-DDP run that trains the tower."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import stage2_args

from llava.testing import tiny_model
from llava.train.compile import compile_blocks

# Minutes of end-to-end runs: scheduled first (beside the demo) so that it does not finish last under xdist.
pytestmark = pytest.mark.early
ROOT = Path(__file__).resolve().parents[1]
UPSTREAM = Path(__file__).resolve().parent / "upstream"


def _env(**extra) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu", WANDB_MODE="offline", PYTHONUNBUFFERED="1")
    env.setdefault("TORCH_EXTENSIONS_DIR", str(ROOT / ".cache" / "torch_extensions"))
    # torchrun and python as the upstream scripts call them: this interpreter's.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _run(cmd: list[str], env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


def test_train_mem_entry_is_the_train_entry():
    result = _run([sys.executable, str(ROOT / "llava" / "train" / "train_mem.py"), "--help"], _env())
    assert "--mm_tunable_parts" in result.stdout and "--manager_type" in result.stdout


@pytest.mark.parametrize("name", ["zero2", "zero3", "zero3_offload"])
def test_deepspeed_configs_at_upstream_paths_have_one_source(name):
    upstream, ours = ROOT / "scripts" / f"{name}.json", ROOT / "scripts" / "train" / f"{name}.json"
    assert upstream.is_file() and os.path.samefile(upstream, ours)
    stage = json.loads(upstream.read_text())["zero_optimization"]["stage"]
    assert stage == int(name[4])


def test_compiled_blocks_give_the_eager_loss_and_gradients(make_image):
    """aot_eager: Dynamo's graph capture and AOTAutograd without code generation (inductor is exercised by the
    upstream scripts below); managers inject between the compiled layers."""
    from torch._dynamo.utils import counters

    from llava.mm_utils import process_images
    from llava.model.manager_config import paper_default
    from llava.processing import SigLipImageProcessor

    manager = paper_default("saum").to_dict() | {"inject_layers": (0, 2), "expert_layers": (3, 4)}
    eager = tiny_model(seed=2, vocab_size=512, image_size=56, manager=manager).train()
    with torch.no_grad():  # non-zero managers, so their injection matters
        for param in eager.get_model().managers.parameters():
            param.normal_(0, 0.1)
    compiled = tiny_model(seed=2, vocab_size=512, image_size=56, manager=manager).train()
    compiled.load_state_dict(eager.state_dict())
    assert compile_blocks(compiled, backend="aot_eager") == 4 + 4
    image = make_image(120, 80, seed=3)
    pixels = process_images([image], SigLipImageProcessor(size=(56, 56)), eager.config)
    ids = torch.tensor([[5, 6, -200, 7, 8, 9, 10]])

    def step(model):
        torch.manual_seed(0)  # the managers' jitter
        loss = model(input_ids=ids, labels=ids.clamp_min(0), images=pixels, image_sizes=[image.size]).loss
        loss.backward()
        return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}

    counters.clear()
    (loss, grads), (loss_c, grads_c) = step(eager), step(compiled)
    assert counters["stats"]["unique_graphs"] >= 2, "decoder and vision layers were captured"
    assert torch.equal(loss, loss_c)
    assert grads.keys() == grads_c.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grads_c[name], grad, rtol=0, atol=1e-6, msg=name)


@pytest.mark.slow
def test_plain_ddp_trains_the_vision_tower(assets, tmp_path):
    """No DeepSpeed: DDP stops at step 2 when a trainable parameter (SigLIP's unused post_layernorm) gets no
    gradient."""
    argv = stage2_args(
        assets,
        assets["llm"],
        tmp_path,
        steps=3,
        extra=[
            "--vision_tower",
            str(assets["vision"]),
            "--image_aspect_ratio",
            "pad",
            "--mm_patch_merge_type",
            "spatial_unpad",
            "--save_strategy",
            "no",
        ],
    )
    argv[argv.index("--mm_tunable_parts") + 1] = "mm_vision_tower,mm_mlp_adapter,mm_language_model"
    _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=1",
            "--master_port=29641",
            "-m",
            "llava.train.train",
            *argv,
        ],
        _env(),
    )
    history = json.loads((tmp_path / "trainer_state.json").read_text())["log_history"]
    assert [entry["step"] for entry in history if "loss" in entry] == [1, 2, 3]
    start = load_file(assets["vision"] / "model.safetensors")
    trained = load_file(tmp_path / "model.safetensors")
    key = "encoder.layers.0.mlp.fc1.weight"
    assert not torch.equal(start[key], trained["model.vision_tower.vision_tower.vision_model." + key])


@pytest.mark.slow
def test_our_stage_script_takes_a_lone_llava_next_projector(assets, tmp_path):
    """An upstream stage-1 mm_projector.bin (bf16, projector only, no config.json) into our stage1_5.sh."""
    from train_helpers import stage1_args

    from llava.train.model_init import build_model
    from llava.train.train import parse_args

    model, _ = build_model(*parse_args(stage1_args(assets, tmp_path / "unused", manager=False)))
    projector = {k: v.to(torch.bfloat16) for k, v in model.state_dict().items() if k.startswith("model.mm_projector.")}
    (tmp_path / "upstream").mkdir()
    torch.save(projector, tmp_path / "upstream" / "mm_projector.bin")
    env = _env(
        VARIANT="baseline",
        PYTHON=sys.executable,
        NUM_GPUS=1,
        DEEPSPEED="none",
        PRECISION="fp32",
        REPORT_TO="none",
        NUM_WORKERS=0,
        LLM=assets["llm"],
        VISION_TOWER=assets["vision"],
        DATA_STAGE1_5=assets["data"] / "stage2.json",
        IMAGE_FOLDER=assets["data"],
        OUTPUT_ROOT=tmp_path / "runs",
        STAGE1_ADAPTER=tmp_path / "upstream" / "mm_projector.bin",
        MASTER_PORT=29642,
        LR_STAGE1_5=0,
        VISION_LR_STAGE1_5=0,
    )
    result = _run(["bash", str(ROOT / "scripts" / "train" / "stage1_5.sh"), "--max_steps", "1"], env)
    assert "no config.json beside" in result.stderr
    saved = load_file(tmp_path / "runs" / "baseline" / "stage1_5" / "model.safetensors")
    for key, value in projector.items():
        assert torch.equal(saved[key], value.float()), key


@pytest.mark.slow
def test_llava_next_onevision_scripts_run_unchanged(assets, tmp_path):
    """pretrain_siglip.sh -> direct_finetune_siglip_a4.sh -> finetune_si.sh, each launched as upstream launches it
    (torchrun llava/train/train_mem.py --deepspeed scripts/zero3.json, torch.compile with inductor, bf16, tf32,
    wandb)."""
    common = {"VISION_TOWER": assets["vision"], "IMAGE_FOLDER": assets["data"], "WANDB_DIR": tmp_path, "NUM_GPUS": 1}
    stage1, mid, single = tmp_path / "stage1", tmp_path / "mid", tmp_path / "si"
    _run(
        ["bash", str(UPSTREAM / "pretrain_siglip.sh")],
        _env(**common, LLM=assets["llm"], DATA=assets["data"] / "stage1.json", OUTPUT=stage1, MASTER_PORT=29643),
    )
    config1 = json.loads((stage1 / "config.json").read_text())
    assert (config1["image_aspect_ratio"], config1["mm_patch_merge_type"]) == ("square", "flat"), (
        "LLaVA-NeXT's defaults"
    )
    assert (stage1 / "mm_projector.bin").is_file()

    result = _run(
        ["bash", str(UPSTREAM / "direct_finetune_siglip_a4.sh")],
        _env(
            **common,
            LLM=assets["llm"],
            DATA=assets["data"] / "stage2.json",
            OUTPUT=mid,
            STAGE1=stage1,
            CROP=56,
            MASTER_PORT=29644,
        ),
    )
    assert "blocks compiled in place" in result.stderr
    result = _run(
        ["bash", str(UPSTREAM / "finetune_si.sh")],
        _env(
            **common, PREV_STAGE_CHECKPOINT=mid, DATA=assets["data"] / "stage2.json", OUTPUT=single, MASTER_PORT=29645
        ),
    )
    assert "blocks compiled in place" in result.stderr
    assert "tf32 has no effect without a CUDA device" in result.stderr
    for out in (stage1, mid, single):
        assert (out / "COMPLETE").is_file(), out
    config = json.loads((single / "config.json").read_text())
    assert config["image_aspect_ratio"] == "anyres_max_9" and len(config["image_grid_pinpoints"]) == 36
    assert json.loads((mid / "config.json").read_text())["image_aspect_ratio"] == "anyres"
    assert list(tmp_path.glob("wandb/offline-run-*")), "report_to wandb ran offline"
