"""The variant and stage-recipe registry: the flags it produces, its overrides, its CLI, and that every caller reads it
(the stage scripts, the eval scripts, the docs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llava.train import recipes
from llava.train.recipes import STAGES, VARIANTS, RecipeError, stage, stage_argv, variant, variant_of
from llava.train.train import parse_args

ROOT = Path(__file__).resolve().parents[1]
CASES = [(s, v) for s in STAGES for v in VARIANTS]


def _value(argv: list[str], flag: str) -> str | None:
    """The last value of ``flag`` (argparse keeps the last of a repeated flag)."""
    values = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]
    return values[-1] if values else None


@pytest.mark.parametrize("recipe,var", CASES, ids=[f"{s.name}-{v.key}" for s, v in CASES])
def test_argv_parses_into_the_train_entry_with_the_recipe_values(recipe, var):
    argv = stage_argv(recipe, var, env={})
    model, data, training = parse_args([*argv, "--model_name_or_path", "m", "--data_path", "d", "--output_dir", "o"])
    images = recipe.grid_images if var.grid else recipe.plain_images
    assert data.image_aspect_ratio == images.aspect_ratio
    assert data.image_grid_pinpoints == images.pinpoints
    assert model.mm_patch_merge_type == images.merge_type
    assert training.learning_rate == float(recipe.learning_rate)
    assert training.per_device_train_batch_size == recipe.batch_size
    assert training.gradient_accumulation_steps == recipe.grad_accum
    assert training.model_max_length == recipe.max_length
    assert training.save_steps == recipe.save_steps
    assert training.group_by_modality_length is recipe.grouped_sampler
    assert model.version == recipe.version
    parts = model.mm_tunable_parts.split(",")
    assert ("mm_manager" in parts) is var.manager and parts[: len(recipe.tunable_parts)] == list(recipe.tunable_parts)
    assert (model.manager_type == "saum") is var.manager and (training.mm_manager_lr is not None) is var.manager
    expected_tower_lr = None if recipe.vision_tower_lr is None else float(recipe.vision_tower_lr)
    assert training.mm_vision_tower_lr == expected_tower_lr


def test_environment_overrides_and_the_manager_lr_following_the_stage_lr():
    env = {"LR_STAGE2": "2e-5", "BS_STAGE2": "3", "PINPOINTS_STAGE2": "(1x1),...,(3x3)", "SAVE_STEPS": "7"}
    argv = stage_argv(stage("stage2"), variant("grid_manager"), env=env)
    assert _value(argv, "--learning_rate") == "2e-5" and _value(argv, "--mm_manager_lr") == "2e-5"
    assert _value(argv, "--per_device_train_batch_size") == "3" and _value(argv, "--save_steps") == "7"
    assert _value(argv, "--image_grid_pinpoints") == "(1x1),...,(3x3)"
    env.update(MANAGER_LR_STAGE2="1e-4", MANAGER_TYPE="aaum", MANAGER_INJECT="count:2")
    argv = stage_argv(stage("2"), variant("+Grid+Manager"), env=env)
    assert _value(argv, "--mm_manager_lr") == "1e-4" and _value(argv, "--learning_rate") == "2e-5"
    assert _value(argv, "--manager_type") == "aaum" and _value(argv, "--manager_inject_layers") == "count:2"
    stage1 = stage_argv(stage("stage1"), variant("grid"), env={"SAVE_STEPS": "7", "PINPOINTS_STAGE2": "(1x1)"})
    assert _value(stage1, "--save_steps") == "2000", "stage 1 has its own interval, SAVE_STEPS_STAGE1"
    assert _value(stage1, "--image_grid_pinpoints") is None and _value(stage1, "--image_aspect_ratio") == "square"


@pytest.mark.parametrize(
    "env,name", [({"BS_STAGE1": "16x"}, "BS_STAGE1"), ({"LR_STAGE1": "fast"}, "LR_STAGE1"), ({"NUM_WORKERS": "-1"}, "")]
)
def test_a_bad_override_names_its_variable(env, name):
    with pytest.raises(RecipeError, match=name or "NUM_WORKERS"):
        stage_argv(stage("stage1"), variant("manager"), env=env)


def test_lookups_and_their_errors():
    assert [variant_of(grid=v.grid, manager=v.manager) for v in VARIANTS] == list(VARIANTS)
    assert variant("+Manager") is variant("manager")
    with pytest.raises(ValueError, match="huge.*baseline, manager, grid, grid_manager"):
        variant("huge")
    with pytest.raises(ValueError, match="stage3"):
        stage("stage3")
    assert len({v.key for v in VARIANTS}) == len({v.label for v in VARIANTS}) == 4


def test_docs_tables_are_the_registry():
    docs = (ROOT / "docs" / "training.md").read_text()
    assert recipes.variant_table() in docs, "re-render with: python -m llava.train.recipes tables"
    assert recipes.stage_table() in docs, "re-render with: python -m llava.train.recipes tables"


def test_cli_runs_by_path_without_torch_and_as_a_module(tmp_path):
    script = str(ROOT / "llava" / "train" / "recipes.py")
    check = tmp_path / "check.py"
    check.write_text(
        "import runpy, sys\n"
        f"sys.argv = [{script!r}, 'variants']\n"
        "try:\n"
        f"    runpy.run_path({script!r}, run_name='__main__')\n"
        "except SystemExit as exit_:\n"
        "    assert exit_.code == 0, exit_.code\n"
        "assert 'torch' not in sys.modules, 'the scripts read the table without importing torch'\n"
    )
    by_path = subprocess.run([sys.executable, str(check)], capture_output=True, text=True, cwd=tmp_path)
    assert by_path.returncode == 0, by_path.stderr
    assert [line.split()[0] for line in by_path.stdout.splitlines()] == [v.key for v in VARIANTS]
    shown = subprocess.run(
        [sys.executable, "-m", "llava.train.recipes", "show", "stage2", "--variant", "grid_manager"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "LR_STAGE2": "3e-5"},
    )
    assert shown.returncode == 0, shown.stderr
    assert "--learning_rate 3e-5" in shown.stdout and "--image_grid_pinpoints '(1x1),...,(6x6)'" in shown.stdout
    bad = subprocess.run(
        [sys.executable, script, "argv", "stage2", "--variant", "huge"], capture_output=True, text=True, cwd=ROOT
    )
    assert bad.returncode == 2 and "unknown variant 'huge'" in bad.stderr


def _fake_stage1_5(folder: Path) -> None:
    folder.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer_config.json", "COMPLETE"):
        (folder / name).write_text("{}")


def _dry_run(script: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    keep = {k: v for k, v in os.environ.items() if not k.endswith(("_STAGE1", "_STAGE1_5", "_STAGE2"))}
    full = {**keep, "PYTHON": sys.executable, "NUM_GPUS": "1", "DEEPSPEED": "none", "REPORT_TO": "none"}
    full.update(DRY_RUN="1", PRECISION="fp32", ATTN="sdpa", **env)
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "train" / script), *args], env=full, capture_output=True, text=True
    )


def test_stage_script_runs_paths_plus_recipe_plus_machine_plus_user_args(tmp_path):
    _fake_stage1_5(tmp_path / "s15")
    (tmp_path / "mix.yaml").write_text("datasets: []\n")
    env = {"VARIANT": "grid_manager", "STAGE1_5_DIR": str(tmp_path / "s15"), "DATA_STAGE2": str(tmp_path / "mix.yaml")}
    env.update(STAGE2_DIR=str(tmp_path / "out"), GA_STAGE2="16")
    result = _dry_run("stage2.sh", env, "--max_steps", "3", "--learning_rate", "5e-6")
    assert result.returncode == 0, result.stderr
    command = result.stdout.splitlines()
    train = command[command.index("llava.train.train") + 1 :]
    recipe = stage_argv(stage("stage2"), variant("grid_manager"), env={"GA_STAGE2": "16"})
    start = train.index(recipe[0])
    assert train[start : start + len(recipe)] == recipe, "the recipe's flags, in order"
    paths = train[:start]
    assert _value(paths, "--model_name_or_path") == str(tmp_path / "s15")
    assert _value(paths, "--output_dir") == str(tmp_path / "out")
    machine = train[start + len(recipe) : -4]
    assert machine == ["--attn_implementation", "sdpa", "--report_to", "none"]
    assert train[-4:] == ["--max_steps", "3", "--learning_rate", "5e-6"], "the user's arguments come last"
    assert not (tmp_path / "out").exists(), "a dry run creates nothing"


def test_a_bad_override_stops_the_curriculum_before_any_stage(tmp_path):
    llm = tmp_path / "llm"
    llm.mkdir()
    (llm / "config.json").write_text(json.dumps({}))
    (tmp_path / "d.json").write_text("[]")
    env = {"VARIANT": "baseline", "LLM": str(llm), "VISION_TOWER": str(llm), "IMAGE_FOLDER": str(tmp_path)}
    env.update(DATA_STAGE1=str(tmp_path / "d.json"), DATA_STAGE1_5=str(tmp_path / "d.json"), BS_STAGE1_5="four")
    env["DATA_STAGE2"] = str(tmp_path / "d.json")
    result = _dry_run("curriculum.sh", env)
    assert result.returncode != 0 and "BS_STAGE1_5=four" in result.stderr, result.stderr
    assert "llava.train.train" not in result.stdout, "stage 1 did not start"


def test_eval_scripts_read_the_variant_table(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OUTPUT_ROOT": str(tmp_path), "VARIANT": "huge"}
    bad = subprocess.run(
        ["bash", str(ROOT / "scripts/eval/eval_variant.sh")], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert bad.returncode != 0 and "unknown variant 'huge'" in bad.stderr
    empty = subprocess.run(
        ["bash", str(ROOT / "scripts/eval/report.sh")], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert empty.returncode != 0 and "no results under" in empty.stderr
    assert [line.split()[5] for line in empty.stderr.splitlines() if "left out" in line] == [v.key for v in VARIANTS]
