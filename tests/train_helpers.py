"""Shared pieces of the training tests: tiny checkpoints and data written once, and argv builders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from llava.testing.synthetic import write_corpus, write_tiny_llm, write_tiny_siglip

STAGE1_PARTS = "mm_mlp_adapter,mm_manager"
FULL_PARTS = "mm_vision_tower,mm_mlp_adapter,mm_language_model,mm_manager"


def make_assets(root: Path) -> dict[str, Path]:
    assets = {"llm": root / "qwen2-tiny", "vision": root / "siglip-tiny", "data": root / "data"}
    if not (root / "done").exists():
        write_tiny_llm(assets["llm"])
        write_tiny_siglip(assets["vision"])
        write_corpus(assets["data"], count=16, template="plain", name="stage1.json", seed=1)
        write_corpus(
            assets["data"], count=12, template="qwen_1_5", name="stage2.json", seed=2, text_only=4, multi_image=2
        )
        (root / "done").write_text("ok")
    return assets


def common_args(output_dir: Path, *, steps: int, lr: float = 1e-3) -> list[str]:
    return [
        "--output_dir",
        str(output_dir),
        "--mm_projector_type",
        "mlp2x_gelu",
        "--per_device_train_batch_size",
        "2",
        "--learning_rate",
        str(lr),
        "--max_steps",
        str(steps),
        "--logging_steps",
        "1",
        "--report_to",
        "none",
        "--attn_implementation",
        "sdpa",
        "--model_max_length",
        "1024",
        "--seed",
        "3",
        "--lr_scheduler_type",
        "cosine",
        "--warmup_ratio",
        "0.0",
        "--disable_tqdm",
        "True",
    ]


def stage1_args(assets, output_dir: Path, *, steps: int = 2, manager: bool = True) -> list[str]:
    flags = [
        "--model_name_or_path",
        str(assets["llm"]),
        "--vision_tower",
        str(assets["vision"]),
        "--version",
        "plain",
        "--data_path",
        str(assets["data"] / "stage1.json"),
        "--image_folder",
        str(assets["data"]),
        "--image_aspect_ratio",
        "square",
        "--mm_patch_merge_type",
        "flat",
        "--save_strategy",
        "no",
        "--mm_tunable_parts",
        STAGE1_PARTS if manager else "mm_mlp_adapter",
    ]
    if manager:
        flags += ["--manager_type", "saum", "--manager_inject_layers", "count:2"]
    return flags + common_args(output_dir, steps=steps)


def stage2_args(assets, model: Path, output_dir: Path, *, steps: int = 2, extra: list[str] = ()) -> list[str]:
    return [
        "--model_name_or_path",
        str(model),
        "--version",
        "qwen_1_5",
        "--data_path",
        str(assets["data"] / "stage2.json"),
        "--image_folder",
        str(assets["data"]),
        "--mm_tunable_parts",
        FULL_PARTS,
        "--mm_vision_tower_lr",
        "2e-4",
        *extra,
    ] + common_args(output_dir, steps=steps)


def losses(output_dir: Path) -> dict[int, float]:
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    return {entry["step"]: entry["loss"] for entry in history if "loss" in entry}


def rewind_to(output_dir: Path, step: int) -> None:
    """Make ``output_dir`` look like a run that died right after saving ``checkpoint-{step}``."""
    for child in output_dir.iterdir():
        keep = child.name == f"checkpoint-{step}" or (
            child.name.startswith("checkpoint-") and int(child.name.split("-")[1]) < step
        )
        if not keep:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
