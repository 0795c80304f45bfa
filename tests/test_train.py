"""The real train entry, single process: frozen vs trainable parts, stage hand-off, exact resume."""

import json

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import FULL_PARTS, losses, rewind_to, stage1_args, stage2_args

from llava.model.builder import load_pretrained_model
from llava.train.model_init import build_model
from llava.train.train import parse_args, train
from llava.train.trainer import ADAPTER_FILE
from vlcommon.checkpoints import COMPLETE_MARKER
from vlcommon.entry import resolve_resume

MM_FIELDS = (
    "mm_projector_type",
    "mm_patch_merge_type",
    "mm_vision_select_layer",
    "image_aspect_ratio",
    "tokenizer_model_max_length",
    "vision_config",
    "manager",
    "mm_hidden_size",
)


def _initial_state(argv):
    from transformers import set_seed

    model_args, data_args, training_args = parse_args(argv)
    set_seed(training_args.seed)
    model, _ = build_model(model_args, data_args, training_args)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _check_parts(before, model, trainable_prefixes):
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    unused = {k for k in before if "post_layernorm" in k}  # SigLIP's last norm never runs (pre-norm features)
    expected = {k for k in before if k.startswith(trainable_prefixes) and k not in unused}
    assert changed == expected, (sorted(changed - expected)[:5], sorted(expected - changed)[:5])


def test_stage1_trains_only_projector_and_managers(assets, tmp_path):
    argv = stage1_args(assets, tmp_path, steps=1)
    before = _initial_state(argv)
    trainer = train(argv)
    _check_parts(before, trainer.model, ("model.mm_projector.", "model.managers."))


@pytest.mark.parametrize(
    "parts,prefixes",
    [
        (FULL_PARTS, ("model.", "lm_head.")),
        ("mm_language_model", ("model.embed_tokens.", "model.layers.", "model.norm.", "lm_head.")),
        ("mm_vision_tower,mm_manager", ("model.vision_tower.", "model.managers.")),
    ],
)
def test_later_stages_train_exactly_their_parts(assets, stage1, tmp_path, parts, prefixes):
    argv = stage2_args(
        assets,
        assets["llm"],
        tmp_path,
        steps=1,
        extra=[
            "--vision_tower",
            str(assets["vision"]),
            "--pretrain_mm_mlp_adapter",
            str(stage1 / ADAPTER_FILE),
            "--image_aspect_ratio",
            "pad",
            "--mm_patch_merge_type",
            "spatial_unpad",
            "--save_strategy",
            "no",
        ],
    )
    argv[argv.index("--mm_tunable_parts") + 1] = parts
    before = _initial_state(argv)
    trainer = train(argv)
    _check_parts(before, trainer.model, prefixes)


def test_stage_handoff_carries_weights_and_a_complete_config(assets, stage1, tmp_path):
    assert (stage1 / COMPLETE_MARKER).is_file()
    config1 = json.loads((stage1 / "config.json").read_text())
    assert all(field in config1 for field in MM_FIELDS)
    assert config1["manager"]["type"] == "saum" and config1["image_aspect_ratio"] == "square"
    adapter = load_file(stage1 / ADAPTER_FILE)
    assert {k.split(".")[1] for k in adapter} == {"mm_projector", "managers"}
    assert all(v.abs().sum() > 0 for k, v in adapter.items() if "managers" in k), "stage 1 trained the managers"

    # Stage 1.5: plain LLM + SigLIP + the stage-1 adapter, no manager flag: the adapter's config brings the managers.
    out15 = tmp_path / "stage1_5"
    argv15 = stage2_args(
        assets,
        assets["llm"],
        out15,
        steps=1,
        extra=[
            "--vision_tower",
            str(assets["vision"]),
            "--pretrain_mm_mlp_adapter",
            str(stage1 / ADAPTER_FILE),
            "--image_aspect_ratio",
            "pad",
            "--mm_patch_merge_type",
            "spatial_unpad",
            "--save_strategy",
            "no",
        ],
    )
    start15 = _initial_state(argv15)
    for key, value in adapter.items():
        assert torch.equal(start15[key], value), key
    train(argv15)
    config15 = json.loads((out15 / "config.json").read_text())
    assert config15["manager"] == config1["manager"] and config15["mm_patch_merge_type"] == "spatial_unpad"

    # Stage 2 from the stage-1.5 checkpoint, switching to the grid; unspecified fields stay as stage 1.5 wrote them.
    out2 = tmp_path / "stage2"
    argv2 = stage2_args(
        assets,
        out15,
        out2,
        steps=1,
        extra=[
            "--image_aspect_ratio",
            "anyres_max_9",
            "--image_grid_pinpoints",
            "(1x1),...,(6x6)",
            "--save_strategy",
            "no",
        ],
    )
    start2 = _initial_state(argv2)
    saved15 = load_file(out15 / "model.safetensors")
    assert all(torch.equal(start2[k], v) for k, v in saved15.items())
    train(argv2)
    config2 = json.loads((out2 / "config.json").read_text())
    assert config2["image_aspect_ratio"] == "anyres_max_9" and len(config2["image_grid_pinpoints"]) == 36
    for field in ("manager", "mm_patch_merge_type", "mm_projector_type", "vision_config", "mm_vision_select_layer"):
        assert config2[field] == config15[field], field
    tokenizer, model, _, _ = load_pretrained_model(str(out2), device_map="cpu")
    assert model.get_model().managers is not None and tokenizer.pad_token_id is not None


def test_single_process_resume_is_exact(assets, tmp_path):
    argv = stage2_args(
        assets,
        assets["llm"],
        tmp_path,
        steps=4,
        extra=[
            "--vision_tower",
            str(assets["vision"]),
            "--image_aspect_ratio",
            "pad",
            "--mm_patch_merge_type",
            "spatial_unpad",
            "--manager_type",
            "saum",
            "--manager_inject_layers",
            "count:2",
            "--save_strategy",
            "steps",
            "--save_steps",
            "2",
            "--group_by_modality_length",
            "True",
        ],
    )
    train(argv)
    uninterrupted = losses(tmp_path)
    assert (tmp_path / "checkpoint-2" / COMPLETE_MARKER).is_file()
    assert json.loads((tmp_path / "checkpoint-2" / "bad_samples.json").read_text())["skipped"] == 0
    rewind_to(tmp_path, 2)
    (tmp_path / "checkpoint-3").mkdir()  # a save that died half-way: no COMPLETE marker
    with pytest.warns(UserWarning, match="ignoring incomplete checkpoint"):
        assert resolve_resume(parse_args(argv)[2]).endswith("checkpoint-2")
    train(argv)
    resumed = losses(tmp_path)
    assert [resumed[s] for s in (3, 4)] == [uninterrupted[s] for s in (3, 4)]
    assert uninterrupted[3] != uninterrupted[1]


def test_optimizer_groups_follow_the_parts(assets, stage1, tmp_path):
    argv = stage2_args(
        assets,
        assets["llm"],
        tmp_path,
        steps=1,
        extra=[
            "--vision_tower",
            str(assets["vision"]),
            "--pretrain_mm_mlp_adapter",
            str(stage1 / ADAPTER_FILE),
            "--image_aspect_ratio",
            "pad",
            "--mm_patch_merge_type",
            "spatial_unpad",
            "--save_strategy",
            "no",
            "--mm_projector_lr",
            "5e-3",
            "--mm_manager_lr",
            "7e-3",
            "--weight_decay",
            "0.1",
        ],
    )
    trainer = train(argv)
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert list(groups) == [
        f"{part}/{kind}"
        for part in ("mm_language_model", "mm_vision_tower", "mm_mlp_adapter")
        for kind in ("decay", "no_decay")
    ] + ["mm_manager/decay"]  # SAUM weights are 2-D
    # After one cosine step every group keeps its ratio to the base learning rate.
    base = groups["mm_language_model/decay"]["lr"]
    assert groups["mm_mlp_adapter/decay"]["lr"] == pytest.approx(base * 5e-3 / 1e-3)
    assert groups["mm_manager/decay"]["lr"] == pytest.approx(base * 7)
    assert groups["mm_vision_tower/no_decay"]["lr"] == pytest.approx(base * 2e-4 / 1e-3)
    no_decay = {names[id(p)] for kind, g in groups.items() if kind.endswith("no_decay") for p in g["params"]}
    decay = {names[id(p)] for kind, g in groups.items() if kind.endswith("/decay") for p in g["params"]}
    assert all(g["weight_decay"] == 0.1 for k, g in groups.items() if k.endswith("/decay"))
    assert all(g["weight_decay"] == 0.0 for k, g in groups.items() if k.endswith("no_decay"))
    assert "model.layers.0.self_attn.q_proj.bias" in no_decay and "model.norm.weight" in no_decay
    assert "model.layers.0.input_layernorm.weight" in no_decay and "model.image_newline" in no_decay
    assert "model.vision_tower.vision_tower.vision_model.encoder.layers.0.layer_norm1.weight" in no_decay
    assert "model.layers.0.self_attn.q_proj.weight" in decay and "model.mm_projector.0.weight" in decay
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert decay.isdisjoint(no_decay) and decay | no_decay == trainable
    assert {n for n in names.values() if n not in trainable} == {
        f"model.vision_tower.vision_tower.vision_model.post_layernorm.{p}" for p in ("weight", "bias")
    }, "never used"


def test_bad_sample_report_and_limit(assets, tmp_path):
    from llava.testing.synthetic import write_broken_corpus
    from vlcommon.ledger import SkipLimitExceeded

    data, expected = write_broken_corpus(tmp_path / "data", good=12)
    base = stage2_args(
        assets,
        assets["llm"],
        tmp_path / "ok",
        steps=3,
        extra=[
            "--vision_tower",
            str(assets["vision"]),
            "--image_aspect_ratio",
            "pad",
            "--save_strategy",
            "no",
            "--bad_sample_min_seen",
            "4",
        ],
    )
    base[base.index("--data_path") + 1] = str(data)
    base[base.index("--image_folder") + 1] = str(tmp_path / "data")
    train(base + ["--max_bad_sample_share", "1.0"])
    report = json.loads((tmp_path / "ok" / "bad_samples.json").read_text())
    assert report["seen"] == 6 and 0 < report["skipped"] < 6  # 3 steps x 2 records drawn, bad ones counted once
    assert set(report["by_reason"]) <= set(expected.values()) and report["by_source"] == {str(data): report["skipped"]}
    with pytest.raises(SkipLimitExceeded, match=r"records were skipped as bad .* max_bad_sample_share=5.0%"):
        train([*base, "--max_bad_sample_share", "0.05", "--output_dir", str(tmp_path / "strict")])


def test_wandb_logs_offline(assets, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is in the dev/train extras")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    argv = stage1_args(assets, tmp_path / "out", steps=2)
    argv[argv.index("--report_to") + 1] = "wandb"
    train(argv + ["--run_name", "tiny-stage1"])
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb")), "an offline wandb run with its log file"


@pytest.mark.parametrize("problem", ["missing file", "bad strategy", "missing image folder"])
def test_data_errors_surface_before_the_model_is_built(assets, tmp_path, monkeypatch, problem):
    import llava.train.train as entry

    argv = stage1_args(assets, tmp_path, steps=1)
    if problem == "missing file":
        argv[argv.index("--data_path") + 1] = str(tmp_path / "nowhere.json")
    elif problem == "bad strategy":
        mix = tmp_path / "mix.yaml"
        mix.write_text(f"datasets:\n  - json_path: {assets['data'] / 'stage1.json'}\n    sampling_strategy: most\n")
        argv[argv.index("--data_path") + 1] = str(mix)
    else:
        argv[argv.index("--image_folder") + 1] = str(tmp_path / "no_images")

    def build_model(*args, **kwargs):
        raise AssertionError("the model was built before the data was checked")

    monkeypatch.setattr(entry, "build_model", build_model)
    with pytest.raises(ValueError, match="nowhere.json: no such file|sampling_strategy='most'|no_images is not a dir"):
        train(argv)


def test_bad_sample_counts_survive_a_resume(assets, tmp_path):
    from llava.testing.synthetic import write_broken_corpus

    data, _ = write_broken_corpus(tmp_path / "data", good=12)
    argv = stage2_args(
        assets,
        assets["llm"],
        tmp_path / "run",
        steps=4,
        extra=[
            "--vision_tower",
            str(assets["vision"]),
            "--image_aspect_ratio",
            "pad",
            "--save_strategy",
            "steps",
            "--save_steps",
            "2",
            "--max_bad_sample_share",
            "1.0",
        ],
    )
    argv[argv.index("--data_path") + 1] = str(data)
    argv[argv.index("--image_folder") + 1] = str(tmp_path / "data")
    train(argv)
    uninterrupted = json.loads((tmp_path / "run" / "bad_samples.json").read_text())
    assert uninterrupted["seen"] == 8 and uninterrupted["skipped"] > 0
    rewind_to(tmp_path / "run", 2)
    train(argv)
    assert json.loads((tmp_path / "run" / "bad_samples.json").read_text()) == uninterrupted


def test_a_relaunched_finished_run_is_not_complete_while_it_rewrites(assets, tmp_path, monkeypatch):
    from llava.train.trainer import LLaVATrainer

    argv = stage2_args(
        assets,
        assets["llm"],
        tmp_path,
        steps=1,
        extra=["--vision_tower", str(assets["vision"]), "--image_aspect_ratio", "pad", "--save_strategy", "no"],
    )
    train(argv)
    assert (tmp_path / COMPLETE_MARKER).is_file()

    def dies_while_saving(self, *args, **kwargs):
        raise KeyboardInterrupt("killed while writing the final weights")

    monkeypatch.setattr(LLaVATrainer, "save_model", dies_while_saving)
    with pytest.raises(KeyboardInterrupt):
        train(argv)
    assert not (tmp_path / COMPLETE_MARKER).exists()


def test_a_relaunch_over_another_models_checkpoints_stops_before_the_model_is_built(assets, tmp_path, monkeypatch):
    """The same output folder, now with managers: --resume auto would load the baseline's checkpoint into the
    +Manager model; the run stops first, naming the folder, the parameters and the ways out."""
    import llava.train.train as entry

    argv = stage1_args(assets, tmp_path, steps=1, manager=False)
    argv[argv.index("--save_strategy") + 1] = "steps"
    train([*argv, "--save_steps", "1"])
    assert (tmp_path / "checkpoint-1" / COMPLETE_MARKER).is_file()

    def build_model(*args, **kwargs):
        raise AssertionError("the model was built before the checkpoint was checked")

    monkeypatch.setattr(entry, "build_model", build_model)
    managers = [*argv, "--manager_type", "saum", "--manager_inject_layers", "count:2"]
    managers[managers.index("--mm_tunable_parts") + 1] = "mm_mlp_adapter,mm_manager"
    expected = (
        rf"{tmp_path / 'checkpoint-1'} is a checkpoint of another model .*\(2 parameters missing from it: "
        r"model\.managers\.layers\.0\."
        r".*another --output_dir.*--resume PATH.*--resume never"
    )
    with pytest.raises(ValueError, match=expected):
        train(managers)
    monkeypatch.undo()
    train([*managers, "--resume", "never"])  # the explicit way out trains
