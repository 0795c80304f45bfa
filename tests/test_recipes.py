"""The stage-recipe registry and the run config it resolves into: typed values from the recipe to the train entry
(and on to the model's config), the environment's overrides, the CLIs, and that every caller reads the registry
(the stage scripts, the eval scripts, the docs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import common_args

from llava.model.manager_config import ExpertChoice, InjectChoice, InjectPreset, ManagerType
from llava.tools import recipe_docs
from llava.train.launch import with_overrides
from llava.train.recipes import STAGES, RunConfig, grid_range, run_config, stage
from llava.train.train import check, parse_args
from llava.train.tunable import Part
from llava.variants import VARIANTS, variant, variant_of
from vlcommon import runconfig
from vlcommon.launch import Device, LaunchError, Machine

ROOT = Path(__file__).resolve().parents[1]
CASES = [(s, v) for s in STAGES for v in VARIANTS]


def _written(tmp_path: Path, config: RunConfig) -> Path:
    return runconfig.write(tmp_path / "run_config.json", config)


@pytest.mark.parametrize("recipe,var", CASES, ids=[f"{s.stage}-{v.key}" for s, v in CASES])
def test_the_run_config_gives_the_train_entry_its_values(tmp_path, recipe, var):
    config = with_overrides(run_config(recipe, var), recipe, {})
    path = _written(tmp_path, config)
    assert runconfig.read(path, RunConfig) == config, "typed values survive the hand-over"
    model, data, training = parse_args(["--run_config", str(path), "--model_name_or_path", "m", "--data_path", "d",
                                        "--output_dir", "o"])  # fmt: skip
    images = recipe.grid_images if var.grid else recipe.plain_images
    assert data.image_aspect_ratio == str(images.aspect_ratio) and model.mm_patch_merge_type == images.merge_type
    assert data.image_grid_pinpoints is None, "the grids go typed, not through the LLaVA-NeXT flag"
    assert training.learning_rate == recipe.learning_rate and training.mm_vision_tower_lr == recipe.vision_tower_lr
    assert training.per_device_train_batch_size == recipe.batch_size
    assert training.gradient_accumulation_steps == recipe.grad_accum
    assert training.model_max_length == recipe.max_length and training.save_steps == recipe.save_steps
    assert training.group_by_modality_length is training.dataloader_drop_last is recipe.grouped_sampler
    assert model.version == recipe.template and model.manager_type is None and model.mm_tunable_parts is None
    assert config.tunable_parts[: len(recipe.tunable_parts)] == recipe.tunable_parts
    assert (Part.MANAGER in config.tunable_parts) is var.manager is (config.managers is not None)
    assert training.mm_manager_lr == (recipe.learning_rate if var.manager else None)


def test_a_recipe_setting_reaches_the_model_config_typed_and_flags_still_win(assets, tmp_path):
    """Through the train entry's checks: the recipe's managers and anyres grids, with the environment's overrides,
    become the model's config; the LLaVA-NeXT flags after them win."""
    recipe = stage("stage1_5")
    env = {"MANAGER_INJECT": "count:2", "PINPOINTS_STAGE1_5": "(1x1),...,(2x2)", "MANAGER_EXPERTS": "last:2"}
    config = with_overrides(run_config(recipe, variant("grid_manager")), recipe, env)
    assert config.managers.inject == InjectChoice(preset=InjectPreset.COUNT, n=2)
    paths = ["--run_config", str(_written(tmp_path, config)), "--model_name_or_path", str(assets["llm"]),
             "--vision_tower", str(assets["vision"]), "--data_path", str(assets["data"] / "stage1.json"),
             "--image_folder", str(assets["data"]), *common_args(tmp_path / "out", steps=1)]  # fmt: skip
    model_config, origin = check(paths).config
    crop = model_config.vision_config.image_size
    assert model_config.manager.type == ManagerType.SAUM and model_config.manager.inject_layers == (0, 2)
    assert model_config.manager.expert_layers == (3, 4) and origin["manager"] == "run config"
    assert model_config.image_grid_pinpoints == [[c * crop, r * crop] for c, r in grid_range(2)]
    assert model_config.mm_tunable_parts == "mm_vision_tower,mm_mlp_adapter,mm_language_model,mm_manager"
    flagged = check([*paths, "--manager_inject_layers", "1,3", "--image_grid_pinpoints", "(1x1),...,(1x3)"]).config
    assert flagged[0].manager.inject_layers == (1, 3) and flagged[1]["manager"] == "flag"
    assert flagged[0].manager.expert_layers == (3, 4), "a flag replaces its own field only"
    assert flagged[0].image_grid_pinpoints == [[crop, crop], [crop, 2 * crop], [crop, 3 * crop]]


def test_environment_overrides_are_typed_replacements():
    recipe = stage("stage2")
    env = {"LR_STAGE2": "2e-5", "BS_STAGE2": "3", "PINPOINTS_STAGE2": "(1x1),...,(3x3)", "SAVE_STEPS": "7"}
    config = with_overrides(run_config(recipe, variant("grid_manager")), recipe, env)
    assert config.optimisation.learning_rate == config.optimisation.manager_lr == 2e-5, "follows the stage lr"
    assert config.batching.per_device == 3 and config.saving.steps == 7 and config.images.grids == grid_range(3)
    env.update(MANAGER_LR_STAGE2="1e-4", MANAGER_TYPE="aaum", MANAGER_EXPERTS="14,15")
    config = with_overrides(run_config(recipe, variant("+Grid+Manager")), recipe, env)
    assert config.optimisation.manager_lr == 1e-4 and config.managers.type is ManagerType.AAUM
    assert config.managers.experts == ExpertChoice(preset="explicit", layers=(14, 15))
    others = {"SAVE_STEPS": "7", "PINPOINTS_STAGE2": "(1x1)"}
    stage1 = with_overrides(run_config(STAGES[0], variant("grid")), STAGES[0], others)
    assert stage1.saving.steps == 2000, "stage 1 has its own interval, SAVE_STEPS_STAGE1"
    assert stage1.images.grids == () and str(stage1.images.aspect_ratio) == "square"


@pytest.mark.parametrize(
    "env,name",
    [({"BS_STAGE1": "16x"}, "BS_STAGE1"), ({"LR_STAGE1": "fast"}, "LR_STAGE1"),
     ({"MANAGER_INJECT": "count:x"}, "MANAGER_INJECT"), ({"MANAGER_TYPE": "sam"}, "MANAGER_TYPE")],
)  # fmt: skip
def test_a_bad_override_names_its_variable(env, name):
    with pytest.raises(ValueError, match=name):
        with_overrides(run_config(STAGES[0], variant("manager")), STAGES[0], env)


def test_machine_settings_and_their_errors():
    cpu = Device(cuda_count=0, cuda_major=0, bf16=False)
    machine = Machine.from_env({"REPORT_TO": "none", "DEEPSPEED": "none"}, cpu, deepspeed=None, num_workers=4)
    assert (machine.precision, machine.attention, machine.tf32, machine.deepspeed) == ("fp32", "sdpa", False, None)
    gpu = Device(cuda_count=8, cuda_major=8, bf16=True)
    machine = Machine.from_env({"REPORT_TO": "none", "COMPILE": "1"}, gpu, deepspeed=None, num_workers=4)
    assert (machine.precision, machine.attention, machine.tf32) == ("bf16", "flash_attention_2", True)
    assert machine.training_arguments()["torch_compile_backend"] == "inductor"
    for env, name in (({"NUM_WORKERS": "-1"}, "NUM_WORKERS"), ({"PRECISION": "fp8"}, "PRECISION"),
                      ({"DEEPSPEED": "/no/such.json"}, "DEEPSPEED"), ({"COMPILE": "yes"}, "COMPILE")):  # fmt: skip
        with pytest.raises(LaunchError, match=name):
            Machine.from_env({"REPORT_TO": "none", **env}, cpu, deepspeed=None, num_workers=4)


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
    assert recipe_docs.variant_table() in docs, "re-render with: python -m llava.tools.recipe_docs"
    assert recipe_docs.stage_table() in docs, "re-render with: python -m llava.tools.recipe_docs"


def test_clis_the_scripts_and_users_run(tmp_path):
    check_file = tmp_path / "check.py"
    check_file.write_text(
        "import runpy, sys\n"
        f"sys.argv = ['variants.py', 'variants']\n"
        "try:\n"
        f"    runpy.run_path({str(ROOT / 'llava' / 'variants.py')!r}, run_name='__main__')\n"
        "except SystemExit as exit_:\n"
        "    assert exit_.code == 0, exit_.code\n"
        "assert 'torch' not in sys.modules, 'the scripts read the table without importing torch'\n"
    )
    by_path = subprocess.run([sys.executable, str(check_file)], capture_output=True, text=True, cwd=tmp_path)
    assert by_path.returncode == 0, by_path.stderr
    assert [line.split()[0] for line in by_path.stdout.splitlines()] == [v.key for v in VARIANTS]
    show = [sys.executable, "-m", "llava.train.recipes", "show", "stage2", "--variant"]
    env = {**os.environ, "LR_STAGE2": "3e-5"}
    shown = subprocess.run([*show, "grid_manager"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout.split("\n", 1)[1])
    assert body["optimisation"]["learning_rate"] == 3e-5 and body["managers"]["inject"] == {
        "preset": "count", "n": 6, "layers": []}  # fmt: skip
    bad = subprocess.run([*show, "huge"], capture_output=True, text=True, cwd=ROOT)
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


def test_stage_script_runs_the_run_config_plus_paths_plus_user_args(tmp_path):
    _fake_stage1_5(tmp_path / "s15")
    (tmp_path / "mix.yaml").write_text("datasets: []\n")
    env = {"VARIANT": "grid_manager", "STAGE1_5_DIR": str(tmp_path / "s15"), "DATA_STAGE2": str(tmp_path / "mix.yaml")}
    env.update(STAGE2_DIR=str(tmp_path / "out"), GA_STAGE2="16")
    result = _dry_run("stage2.sh", env, "--max_steps", "3", "--learning_rate", "5e-6")
    assert result.returncode == 0, result.stderr
    shown, command = result.stdout.split("\n}\n")
    config = runconfig.from_dict(RunConfig, json.loads(shown + "}"))
    expected = with_overrides(
        run_config(stage("stage2"), variant("grid_manager")), stage("stage2"), {"GA_STAGE2": "16"}
    )
    assert config.batching.grad_accum == 16 and config.managers == expected.managers
    assert (config.machine.attention, config.machine.report_to, config.machine.precision) == ("sdpa", ("none",), "fp32")
    train = command.splitlines()
    train = train[train.index("llava.train.train") + 1 :]
    assert train[:2] == ["--run_config", str(tmp_path / "out" / "run_config.json")]
    assert train[train.index("--model_name_or_path") + 1] == str(tmp_path / "s15")
    assert train[train.index("--output_dir") + 1] == str(tmp_path / "out")
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
    assert "llava.train.train" not in result.stdout and "Traceback" not in result.stderr, "stage 1 did not start"


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
