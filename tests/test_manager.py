"""Managers: identity at init, causality, jitter, KV cache, gradient checkpointing, targets, presets, sizes, saving."""

import json

import pytest
import torch

from llava.mm_utils import process_images
from llava.model import LlavaQwenForCausalLM
from llava.model.builder import load_pretrained_model
from llava.model.config import ov_0p5b_config
from llava.model.image_layout import BASE, GRID, NEWLINE
from llava.model.manager import SAUM, weighted_sum
from llava.model.manager_config import ManagerConfig, expert_layer_preset, inject_layer_preset, paper_default
from llava.processing import SigLipImageProcessor
from llava.testing import tiny_model

PROC = SigLipImageProcessor()
SAUM_CFG = {"type": "saum", "expert_layers": [2, 3, 4], "inject_layers": [0, 2]}


def _pair(kind="saum", seed=1, **overrides):
    """Baseline and the same weights with managers (zero-initialised)."""
    base = tiny_model(seed=seed, vocab_size=256, **overrides)
    managed = tiny_model(seed=seed + 100, vocab_size=256, manager={**SAUM_CFG, "type": kind}, **overrides)
    managed.load_state_dict(base.state_dict(), strict=False)
    return base, managed


def _randomise_managers(model, scale=0.5):
    with torch.no_grad():
        for p in model.model.managers.parameters():
            p.normal_(0, scale)


def _batch(make_image, model):
    images = [make_image(640, 480, seed=1), make_image(300, 700, seed=2)]
    pixels = [process_images([im], PROC, model.config)[0] for im in images]
    ids = torch.tensor([[5, 6, -200, 7, 8, 9], [10, -200, 11, 0, 0, 0]])
    mask = torch.tensor([[1] * 6, [1, 1, 1, 0, 0, 0]])
    return {"input_ids": ids, "attention_mask": mask, "images": pixels, "image_sizes": [im.size for im in images]}


@pytest.mark.parametrize("kind", ["saum", "aaum"])
@pytest.mark.parametrize("aspect", ["anyres_max_9", "pad"])
def test_zero_init_is_bit_identical(make_image, kind, aspect):
    base, managed = _pair(kind, image_aspect_ratio=aspect)
    batch = _batch(make_image, base)
    with torch.no_grad():
        assert torch.equal(base(**batch).logits, managed(**batch).logits)


def test_nonzero_managers_are_causal(make_image):
    base, managed = _pair()
    _randomise_managers(managed)
    image = make_image(640, 480, seed=3)
    pixels = process_images([image], PROC, base.config)
    ids = torch.tensor([[5, 6, 7, -200, 8, 9]])
    with torch.no_grad():
        a = base(input_ids=ids, images=pixels, image_sizes=[image.size]).logits[0]
        b = managed(input_ids=ids, images=pixels, image_sizes=[image.size]).logits[0]
    assert torch.equal(a[:3], b[:3]), "positions before the first image token must not change"
    assert not torch.allclose(a[3:-2], b[3:-2]) and not torch.allclose(a[-2:], b[-2:])


def test_jitter_in_training_only():
    saum = SAUM(3, 8, jitter=0.02)
    torch.nn.init.normal_(saum.weight)
    experts, hidden = torch.randn(3, 50, 8), torch.randn(50, 8)
    saum.eval()
    clean = saum(experts, hidden)
    assert torch.equal(clean, saum(experts, hidden)), "eval is deterministic"
    saum.train()
    ratio = saum(experts, hidden) / clean
    assert ratio.min() >= 0.98 - 1e-5 and ratio.max() <= 1.02 + 1e-5 and ratio.std() > 0


@pytest.mark.parametrize("kind", ["saum", "aaum"])
def test_generation_with_kv_cache_matches_full_forward(make_image, kind):
    _, managed = _pair(kind)
    _randomise_managers(managed)
    image = make_image(500, 400, seed=4)
    pixels = process_images([image], PROC, managed.config)
    ids = torch.tensor([[11, -200, 12, 13]])
    out = managed.generate(
        ids, images=pixels, image_sizes=[image.size], max_new_tokens=5, do_sample=False, eos_token_id=None
    )
    generated = []
    for _ in range(5):
        current = torch.cat([ids, torch.tensor([generated], dtype=torch.long)], 1) if generated else ids
        with torch.no_grad():
            logits = managed(input_ids=current, images=pixels, image_sizes=[image.size], use_cache=False).logits
        generated.append(int(logits[0, -1].argmax()))
    assert out[0].tolist() == generated


def _grads(model, batch):
    model.zero_grad()
    torch.manual_seed(0)  # same jitter draws in both runs
    loss = model(**batch, labels=batch["input_ids"].clamp_min(0)).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gradient_checkpointing_and_gradient_flow(make_image):
    _, managed = _pair()
    _randomise_managers(managed, 0.1)
    managed.train()
    batch = _batch(make_image, managed)
    loss_a, grads_a = _grads(managed, batch)
    managed.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    loss_b, grads_b = _grads(managed, batch)
    torch.testing.assert_close(loss_a, loss_b)
    for prefix in (
        "model.managers.layers.0.weight",
        "model.mm_projector.0.weight",
        "model.vision_tower.vision_tower.vision_model.encoder.layers.1.mlp.fc1.weight",
    ):
        assert grads_a[prefix].abs().sum() > 0, prefix
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("targets,kinds", [("all", {BASE, GRID}), ("base", {BASE}), ("grid", {GRID})])
def test_targets_touch_only_their_tokens(make_image, targets, kinds):
    _, managed = _pair()
    managed.config.manager = {**SAUM_CFG, "targets": targets}
    image = make_image(640, 480, seed=5)
    spliced = managed.prepare_multimodal_inputs(
        torch.tensor([[5, -200, 6]]), None, None, process_images([image], PROC, managed.config), [image.size]
    )
    injection = spliced.visual_injection
    assert set(spliced.token_kinds[injection.positions].unique().tolist()) == kinds
    assert not bool((spliced.token_kinds[injection.positions] == NEWLINE).any())
    _randomise_managers(managed)
    hidden = torch.randn(1, spliced.inputs_embeds.shape[1], managed.config.hidden_size)
    changed = (managed.model.managers.inject(0, hidden, injection) != hidden).any(-1)
    assert torch.equal(changed, injection.positions)


def test_presets():
    assert expert_layer_preset("top_half", 26) == tuple(range(14, 27))
    assert expert_layer_preset("bottom_half", 26) == tuple(range(1, 14))
    assert expert_layer_preset("all", 26) == tuple(range(1, 27))
    assert expert_layer_preset("last_k", 26, k=6) == tuple(range(21, 27))
    assert inject_layer_preset(24, count=6) == (0, 4, 8, 12, 16, 20)  # paper: layers 1, 5, ..., 21 (1-based)
    counts = {c: inject_layer_preset(24, count=c) for c in (1, 2, 3, 4, 6, 8, 12, 24)}
    assert (
        counts[1] == (0,)
        and counts[2] == (0, 12)
        and counts[8] == tuple(range(0, 24, 3))
        and counts[24] == tuple(range(24))
    )
    assert inject_layer_preset(24, interval=4) == (0, 4, 8, 12, 16, 20)
    assert paper_default().expert_layers == tuple(range(14, 27)) and paper_default().inject_layers == (
        0,
        4,
        8,
        12,
        16,
        20,
    )


def test_out_of_range_indices_name_index_and_range():
    with pytest.raises(ValueError, match=r"expert layer 5 is out of range: valid are 1\.\.4"):
        tiny_model(vocab_size=64, manager={**SAUM_CFG, "expert_layers": [3, 5]})
    with pytest.raises(ValueError, match=r"inject layer 4 is out of range: valid are 0\.\.3"):
        tiny_model(vocab_size=64, manager={**SAUM_CFG, "inject_layers": [0, 4]})
    with pytest.raises(ValueError, match="strictly increasing"):
        ManagerConfig(type="saum", expert_layers=(3, 2), inject_layers=(0,))


def test_real_size_parameter_counts_on_meta():
    with torch.device("meta"):
        baseline = sum(p.numel() for p in LlavaQwenForCausalLM(ov_0p5b_config()).parameters())
        managed = sum(
            p.numel() for p in LlavaQwenForCausalLM(ov_0p5b_config(manager=paper_default().to_dict())).parameters()
        )
    assert baseline == 893_618_208
    assert managed - baseline == 6 * 13 * 896 == 69_888


def test_save_load_and_warm_start(tmp_path, qwen_tokenizer, make_image):
    base, managed = _pair()
    _randomise_managers(managed)
    managed.save_pretrained(tmp_path / "managed")
    reloaded = LlavaQwenForCausalLM.from_pretrained(tmp_path / "managed")
    assert reloaded.config.manager.expert_layers == (2, 3, 4)
    for key, value in managed.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key
    base.save_pretrained(tmp_path / "base")
    qwen_tokenizer.save_pretrained(tmp_path / "base")
    with pytest.warns(UserWarning, match="manager parameters start at zero"):
        _, warm, _, _ = load_pretrained_model(str(tmp_path / "base"), overwrite_config={"manager": SAUM_CFG})
    assert all(torch.equal(p, torch.zeros_like(p)) for p in warm.model.managers.parameters())
    batch = _batch(make_image, base)
    with torch.no_grad():  # the loader grew the tiny vocabulary to the tokenizer's; compare the original columns
        assert torch.equal(warm(**batch).logits[..., :256], base(**batch).logits)


def test_transformers_export_keeps_managers_in_a_side_file(tmp_path, qwen_tokenizer):
    from llava.model.convert import main as convert_main

    model = tiny_model(seed=3, manager=SAUM_CFG)
    _randomise_managers(model)
    model.save_pretrained(tmp_path / "ours")
    qwen_tokenizer.save_pretrained(tmp_path / "ours")
    convert_main(["to-hf", str(tmp_path / "ours"), str(tmp_path / "hf")])
    assert (tmp_path / "hf" / "managers.safetensors").exists()
    convert_main(["from-hf", str(tmp_path / "hf"), str(tmp_path / "back")])
    back = LlavaQwenForCausalLM.from_pretrained(tmp_path / "back")
    assert back.config.manager.inject_layers == (0, 2)
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


def test_introspection_records_aggregation_weights(make_image):
    _, managed = _pair("aaum")
    _randomise_managers(managed)
    managed.model.managers.record = True
    with torch.no_grad():
        managed(**_batch(make_image, managed), output_attentions=False)
    weights = managed.model.managers.recorded
    assert sorted(weights) == [0, 2] and weights[0].shape[1] == 3
    torch.testing.assert_close(weights[0].sum(-1), torch.ones(weights[0].shape[0]))
    _, saum = _pair("saum")
    assert {k: v.shape for k, v in saum.model.managers.aggregation_weights().items()} == {0: (3, 64), 2: (3, 64)}


def test_attention_maps_can_be_captured():
    model = tiny_model(seed=1, vocab_size=128, image_aspect_ratio="pad", attn_implementation="eager", manager=SAUM_CFG)
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor([[5, -200, 6]]),
            images=[torch.zeros(3, 384, 384)],
            output_attentions=True,
            output_hidden_states=True,
        )
    assert len(out.attentions) == 4 and out.attentions[0].shape == (1, 4, 732, 732)
    assert len(out.hidden_states) == 5


@pytest.mark.parametrize("per_token", [False, True], ids=["saum-weights", "aaum-weights"])
def test_weighted_sum_gradients_match_autograd(per_token):
    torch.manual_seed(0)
    experts = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)  # (E, N, D)
    shape = (3, 5, 1) if per_token else (3, 4)
    weights = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(weighted_sum, (experts, weights))
    reference = (experts * (weights if per_token else weights[:, None, :])).sum(0)
    torch.testing.assert_close(weighted_sum(experts, weights), reference)
    only_experts = torch.autograd.grad(weighted_sum(experts, weights.detach()).sum(), experts)[0]
    torch.testing.assert_close(only_experts, torch.autograd.grad(reference.sum(), experts)[0])


def test_config_holds_the_manager_typed_and_writes_it_as_json(tmp_path):
    config = ov_0p5b_config(manager=SAUM_CFG)
    assert isinstance(config.manager, ManagerConfig) and config.manager.inject_layers == (0, 2)
    assert json.loads(config.to_json_string())["manager"]["expert_layers"] == [2, 3, 4]
    baseline = ov_0p5b_config()
    assert baseline.manager == ManagerConfig() and not baseline.manager.enabled
    assert json.loads(baseline.to_json_string())["manager"] is None, "the baseline's config.json keeps null"
    config.manager = None  # as overwrite_config or a user edit would
    assert config.manager == ManagerConfig()
    with pytest.raises(ValueError, match="unknown manager config fields.*'layers'"):
        config.manager = {"type": "saum", "layers": [1]}
    with pytest.raises(ValueError, match="manager type='sam'"):
        config.manager = {"type": "sam"}
    config.manager = SAUM_CFG
    config.save_pretrained(tmp_path)
    assert type(config).from_pretrained(tmp_path).manager == config.manager


def test_mm_spec_follows_every_field_it_reads():
    _, managed = _pair()
    assert managed.mm_spec.manager.inject_layers == (0, 2)
    managed.config.manager = {**SAUM_CFG, "inject_layers": [1]}
    assert managed.mm_spec.manager.inject_layers == (1,)
    managed.config.num_hidden_layers = 1
    with pytest.raises(ValueError, match="inject layer 1 is out of range"):
        managed.mm_spec  # noqa: B018 (the property validates)
