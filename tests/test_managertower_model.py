"""The Two-Tower family: parity with transformers' BridgeTower, the identities the paper's definitions allow, and
the invariants (eval determinism, batch vs per-sample, gradients, real-size parameter counts, save/load)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import torch
from transformers import BridgeTowerConfig, BridgeTowerModel

from managertower import (
    Fusion,
    Generator,
    LinkType,
    ManagerKind,
    ManagerTowerConfig,
    ManagerTowerModel,
    Query,
    TwoTowerManagerConfig,
    WeightShape,
)
from managertower.convert import from_hf_bridgetower, hf_key_map
from managertower.inputs import BridgeInputs, ManagedInputs
from managertower.managers import AdaptiveManager, StaticManager
from managertower.testing import tiny_config


def _inputs(batch: int, length: int, *, seed: int, pad: tuple[int, ...] = ()) -> tuple[torch.Tensor, ...]:
    """Random ids with RoBERTa's pad id 1 after each sample's length (``pad``: real lengths, default full)."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 99, (batch, length), generator=generator)
    ids[:, 0] = 0  # <s>
    mask = torch.ones(batch, length, dtype=torch.long)
    for row, real in enumerate(pad):
        ids[row, real:], mask[row, real:] = 1, 0
    return ids, mask, torch.randn(batch, 3, 32, 32, generator=generator)


def _hf(seed: int, *, link: str, cross_layers: int, hidden: int = 32, eps: float = 1e-5) -> BridgeTowerModel:
    torch.manual_seed(seed)
    config = BridgeTowerConfig(
        hidden_size=hidden, num_attention_heads=2, num_hidden_layers=cross_layers, link_tower_type=link,
        text_config={"vocab_size": 99, "hidden_size": hidden, "num_hidden_layers": 4, "num_attention_heads": 2,
                         "intermediate_size": 37, "max_position_embeddings": 40, "layer_norm_eps": eps},
        vision_config={"hidden_size": 64, "num_hidden_layers": 4, "patch_size": 8, "image_size": 32},
    )  # fmt: skip
    model = BridgeTowerModel(config).eval()
    with torch.no_grad():  # non-trivial link parameters, so a wrong mapping of them shows
        for module in model.modules():
            for name in ("scaled_factor", "beta"):
                if hasattr(module, name):
                    getattr(module, name).uniform_(0.2, 0.8)
    return model


CASES = [  # (seed, link, cross layers, hidden, eps, batch, real lengths)
    (0, "add", 3, 32, 1e-5, 2, (7, 5)),
    (1, "scaled_add", 4, 32, 1e-12, 3, (9, 2, 6)),
    (2, "interpolate", 2, 64, 1e-5, 1, ()),
    (3, "add", 4, 64, 1e-5, 4, (3, 9, 9, 1)),
]


@pytest.mark.parametrize(("seed", "link", "layers", "hidden", "eps", "batch", "real"), CASES)
def test_bridgetower_mode_equals_transformers(seed, link, layers, hidden, eps, batch, real):
    hf = _hf(seed, link=link, cross_layers=layers, hidden=hidden, eps=eps)
    ours = from_hf_bridgetower(hf).eval()
    assert ours.config.fusion is Fusion.BRIDGETOWER and ours.config.link is LinkType(link)
    ids, mask, pixels = _inputs(batch, 9, seed=seed, pad=real)
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask, pixel_values=pixels)
        got = ours(ids, mask, pixels)
    torch.testing.assert_close(got.text_features, expected.text_features, rtol=0, atol=1e-6)
    torch.testing.assert_close(got.image_features, expected.image_features, rtol=0, atol=1e-6)
    torch.testing.assert_close(got.cls_feats, expected.pooler_output, rtol=0, atol=1e-6)


def test_conversion_refuses_what_it_cannot_represent_and_names_unknown_keys():
    hf = _hf(0, link="add", cross_layers=2)
    hf.config.share_link_tower_layers = True
    with pytest.raises(ValueError, match="share_link_tower_layers"):
        from_hf_bridgetower(hf)
    with pytest.raises(ValueError, match="cross_modal_extra.weight"):
        hf_key_map("cross_modal_extra.weight")
    assert hf_key_map("text_model.pooler.dense.weight") is None
    assert hf_key_map("cross_modal_image_link_tower.3.beta") == "image_inputs.links.3.beta"


def _model(config: ManagerTowerConfig, seed: int = 0) -> ManagerTowerModel:
    torch.manual_seed(seed)
    return ManagerTowerModel(config)


VARIANTS = [
    {"fusion": "meter"},
    {"fusion": "bridgetower"},
    {"manager": {"type": "sam"}},
    {"manager": {"type": "sam", "sam_average_init": True, "weights": "n1"}},
    {"manager": {"type": "saum"}},
    {"manager": {"type": "aaum", "query": "own"}},
    {"manager": {"type": "aaum"}},
    {"manager": {"type": "aaum", "generator": "cross_attention"}},
    {"manager": {"type": "aaum", "generator": "concat_attention", "weights": "n1"}},
]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: str(v))
def test_batch_equals_per_sample_with_padding(variant):
    model = _model(tiny_config(**variant)).eval()
    ids, mask, pixels = _inputs(3, 8, seed=4, pad=(8, 3, 6))
    with torch.no_grad():
        batch = model(ids, mask, pixels)
        for row in range(3):
            real = int(mask[row].sum())
            alone = model(ids[row : row + 1, :real], mask[row : row + 1, :real], pixels[row : row + 1])
            torch.testing.assert_close(batch.text_features[row, :real], alone.text_features[0], rtol=0, atol=1e-5)
            torch.testing.assert_close(batch.image_features[row], alone.image_features[0], rtol=0, atol=1e-5)
            torch.testing.assert_close(batch.cls_feats[row], alone.cls_feats[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS[2:], ids=lambda v: str(v))
def test_noise_only_in_training_and_every_manager_parameter_gets_a_gradient(variant):
    manager = dict(variant["manager"], static_noise=True)
    model = _model(tiny_config(manager=manager))
    ids, mask, pixels = _inputs(2, 6, seed=5, pad=(6, 4))
    model.eval()
    with torch.no_grad():
        first, second = model(ids, mask, pixels), model(ids, mask, pixels)
    assert torch.equal(first.cls_feats, second.cls_feats)
    model.train()
    noisy = model(ids, mask, pixels)
    assert not torch.allclose(noisy.cls_feats, first.cls_feats)
    managed = [m for m in model.modules() if isinstance(m, ManagedInputs)]
    with torch.no_grad():  # off the symmetric initial point, where some gradients (a temperature's) are exactly 0
        for inputs in managed:
            for parameter in inputs.parameters():
                parameter.add_(torch.randn_like(parameter) * 0.05)
    model(ids, mask, pixels).cls_feats.square().sum().backward()
    assert len(managed) == 2
    for inputs in managed:
        for name, parameter in inputs.named_parameters():
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_managers_report_their_weights_and_parts():
    model = _model(tiny_config(manager={"type": "aaum"})).eval()
    ids, mask, pixels = _inputs(2, 6, seed=6, pad=(6, 4))
    with torch.no_grad():
        out = model(ids, mask, pixels, output_managers=True)
    assert len(out.managers) == 3
    first_text, _first_image = out.managers[0]
    assert first_text.cross is None and first_text.weights.shape == (1, 3, 1, 32)  # SAUM: N x D
    torch.testing.assert_close(first_text.weights.sum(dim=1), torch.ones(1, 1, 32))
    _later_text, later_image = out.managers[2]
    assert later_image.weights.shape == (2, 3, 17, 1)  # AAUM: per token and expert
    torch.testing.assert_close(later_image.hidden, later_image.unimodal + later_image.cross)
    assert model(ids, mask, pixels).managers is None


def test_saum_layer_one_with_one_hot_weights_is_bridgetowers_first_input():
    # BridgeTower's layer-1 input is LN(U_{depth-L_C+1}); a one-hot SAUM gives LN_1(U_1) of its own experts. With
    # N = L_C the experts are the same layers, so the two agree once the LayerNorms agree.
    config = tiny_config(manager={"type": "saum"})
    stack = torch.randn(2, 3, 5, 32)
    manager = StaticManager(config.manager, layer=1, hidden=32, eps=1e-5)
    bridge = BridgeInputs(replace(config, fusion=Fusion.BRIDGETOWER))
    with torch.no_grad():
        manager.scores.copy_(torch.tensor([1e4, 0.0, 0.0])[:, None].expand(3, 32))
        manager.norms[0].weight.uniform_(0.5, 1.5)
        bridge.first_norm.load_state_dict(manager.norms[0].state_dict())
    torch.testing.assert_close(manager(stack, []).hidden, bridge(1, stack, [])[0], rtol=0, atol=0)


def test_one_hot_saum_after_layer_one_adds_two_layernorms_where_bridgetower_normalises_the_sum():
    # Layer l > 1: BridgeTower's add link is LN(U + C); SAUM's one-hot aggregate is LN_i(U_i) + W_C * LN(C). The
    # definitions differ (docs/managertower.md): pin what SAUM computes, and that it is not BridgeTower's.
    config = tiny_config(manager={"type": "saum"})
    stack, previous = torch.randn(2, 3, 5, 32), torch.randn(2, 5, 32)
    manager = StaticManager(config.manager, layer=2, hidden=32, eps=1e-5)
    with torch.no_grad():
        manager.scores.copy_(torch.tensor([0.0, 1e4, 0.0])[:, None].expand(3, 32))
    out = manager(stack, [previous]).hidden
    norm = torch.nn.functional.layer_norm
    torch.testing.assert_close(out, norm(stack[:, 1], (32,)) + norm(previous, (32,)))
    assert not torch.allclose(out, norm(stack[:, 1] + previous, (32,)), atol=1e-3)


def test_one_expert_without_a_previous_slot_is_meters_input_through_a_layernorm():
    # METER feeds Linear(U_top) + type straight into layer 1; a manager with N=1 in layer 1 feeds LN(that).
    meter = _model(tiny_config(fusion="meter")).eval()
    managed = _model(tiny_config(experts=1, manager={"type": "saum"})).eval()
    managed.load_state_dict(meter.state_dict(), strict=False)
    with torch.no_grad():
        managed.text_inputs.layer_embeddings.weight.zero_()
        managed.image_inputs.layer_embeddings.weight.zero_()
        ids, mask, pixels = _inputs(2, 6, seed=7, pad=(6, 3))
        text_meter, image_meter, _, _ = meter.unimodal_stacks(ids, mask, pixels, 1)
        text_managed, image_managed, _, _ = managed.unimodal_stacks(ids, mask, pixels, 1)
        got = managed.text_inputs(1, text_managed, [])[0]
    torch.testing.assert_close(got, torch.nn.functional.layer_norm(meter.text_inputs(1, text_meter, [])[0], (32,)))
    assert image_managed.shape == image_meter.shape


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_real_size_parameter_counts():
    # The original's figures at D=768, N=6 (AAUM with the fused query): 13,825 for a layer-1 SAUM, 1,203,463 for an
    # AAUM, 12.06 M for the 12 managers (the original also keeps one unused temperature per manager).
    with torch.device("meta"):
        model = ManagerTowerModel(ManagerTowerConfig())
    managers = [m for m in model.modules() if isinstance(m, (StaticManager, AdaptiveManager))]
    assert len(managers) == 12
    assert {_count(m) for m in managers if isinstance(m, StaticManager)} == {13_825}
    assert {_count(m) for m in managers if isinstance(m, AdaptiveManager)} == {1_203_463}
    assert sum(map(_count, managers)) == 12_062_280
    layer_tables = model.text_inputs.layer_embeddings.weight.numel() * 2
    assert layer_tables == 18_432  # the spec's 18.4 k for the two layer-embedding tables
    with torch.device("meta"):
        bridge = ManagerTowerModel(ManagerTowerConfig(fusion="bridgetower"))
    links = sum(map(_count, (bridge.text_inputs, bridge.image_inputs)))
    assert links == 2 * 6 * 2 * 768  # 5 link towers (the spec's ~15 k) and the layer-1 LayerNorm, per modality


def test_save_and_load_round_trip(tmp_path):
    model = _model(tiny_config(manager={"type": "aaum", "generator": "cross_attention", "weights": "n1"})).eval()
    path = model.save_pretrained(tmp_path / "mt")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    again = ManagerTowerModel.from_pretrained(path).eval()
    assert again.config == model.config
    ids, mask, pixels = _inputs(2, 6, seed=8, pad=(6, 2))
    with torch.no_grad():
        assert torch.equal(again(ids, mask, pixels).cls_feats, model(ids, mask, pixels).cls_feats)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"manager": {"type": "sum"}}, "manager type='sum'"),
        ({"experts": 5}, "top 5 layers of the text encoder"),
        ({"fusion": "late"}, "fusion='late'"),
        ({"token_types": 1}, "token_types=1"),
        ({"manager": {"temperature": 0.0}}, "temperature=0.0"),
    ],
)
def test_bad_configs_fail_before_any_weight(changes, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**changes)


def test_config_round_trips_through_plain_json_and_rejects_unknown_fields():
    config = tiny_config(manager={"type": "sam", "weights": WeightShape.SCALAR, "query": Query.OWN,
                                      "generator": Generator.CONCAT_ATTENTION})  # fmt: skip
    assert ManagerTowerConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown manager config fields"):
        ManagerTowerConfig.from_dict(dict(config.to_dict(), manager={"kinds": "sam"}))
    assert {m.value for m in ManagerKind} == {"sam", "saum", "aaum"}
    assert list(itertools.islice(config.expert_layers(4), 3)) == [2, 3, 4]


def test_a_config_written_with_the_old_manager_kind_loads_and_is_saved_with_type():
    written = tiny_config().to_dict()
    written["manager"] = {k if k != "type" else "kind": v for k, v in written["manager"].items()}  # before the rename
    written["manager"]["kind"] = "sam"
    config = ManagerTowerConfig.from_dict(written)
    assert config.manager.type is ManagerKind.SAM
    assert config.to_dict()["manager"]["type"] == "sam" and "kind" not in config.to_dict()["manager"]
    with pytest.raises(TypeError):  # in code the field has one name
        replace(config.manager, kind="saum")
    written["manager"]["kind"] = "sum"
    with pytest.raises(ValueError, match="manager kind='sum'"):  # named as the old file names it
        ManagerTowerConfig.from_dict(written)
    assert replace(config.manager, experts=2).type is ManagerKind.SAM


def test_image_token_type_two_needs_a_third_row():
    model = _model(tiny_config(fusion="meter"))
    ids, mask, pixels = _inputs(1, 4, seed=9)
    with pytest.raises(ValueError, match="image_token_type=2"):
        model(ids, mask, pixels, image_token_type=2)
    three = _model(tiny_config(fusion="meter", token_types=3)).eval()
    with torch.no_grad():
        assert not torch.equal(
            three(ids, mask, pixels, image_token_type=2).cls_feats, three(ids, mask, pixels).cls_feats
        )


def test_manager_config_defaults_are_the_papers_best():
    assert TwoTowerManagerConfig().type is ManagerKind.AAUM and TwoTowerManagerConfig().query is Query.FUSED
    assert TwoTowerManagerConfig().experts == 6 and TwoTowerManagerConfig().generator is Generator.LINEAR


def test_every_preset_builds_and_runs_on_a_tiny_base():
    from managertower.presets import PRESETS, preset

    base = tiny_config(depth=8, cross_layers=3, experts=3)
    ids, mask, pixels = _inputs(1, 5, seed=10)
    for name in PRESETS:
        config = preset(name, base)
        assert config.cross.layers == (int(name[-1]) if name.startswith("table2/") else 3), name
        with torch.no_grad():
            assert _model(config).eval()(ids, mask, pixels).cls_feats.shape == (1, 64), name
    assert preset("table1/saum-n1").manager.weights is WeightShape.SCALAR
    assert preset("table2/bt-lc8").experts == 8 and preset("table2/mt-lc8").experts == 6
    with pytest.raises(ValueError, match="unknown preset 'table1/sae'"):
        preset("table1/sae")


def test_sdpa_equals_eager_because_every_call_has_an_explicit_mask():
    # transformers builds the cross layer's self-attention with is_causal=True; without a mask SDPA would make the
    # image stream causal. With the explicit masks the two kernels agree.
    eager = _model(tiny_config(manager={"type": "aaum"})).eval()
    sdpa = _model(tiny_config(manager={"type": "aaum"}, attention="sdpa")).eval()
    sdpa.load_state_dict(eager.state_dict())
    ids, mask, pixels = _inputs(2, 7, seed=11, pad=(7, 4))
    with torch.no_grad():
        torch.testing.assert_close(sdpa(ids, mask, pixels).cls_feats, eager(ids, mask, pixels).cls_feats, atol=1e-5,
                                   rtol=0)  # fmt: skip


def test_exploration_noise_is_one_draw_per_token_and_expert_with_std_one_over_n():
    from managertower.managers.aggregate import exploration_noise

    torch.manual_seed(0)
    scores = torch.zeros(64, 3, 50, 32)
    noise = exploration_noise(scores, experts=3, per_channel=False, width=32)
    assert noise.shape == (64, 3, 50, 1)
    assert abs(noise.std().item() - 1 / 3) < 0.01
    assert exploration_noise(scores[..., :1], experts=3, per_channel=True, width=32).shape == (64, 3, 50, 32)


def test_the_papers_noise_is_in_aaums_only():
    ids, mask, pixels = _inputs(2, 6, seed=12, pad=(6, 4))
    for kind, noisy in (("saum", False), ("sam", False), ("aaum", True)):
        model = _model(tiny_config(manager={"type": kind}))
        with torch.no_grad():
            train, evaluation = model.train()(ids, mask, pixels).cls_feats, model.eval()(ids, mask, pixels).cls_feats
        assert torch.equal(train, evaluation) is not noisy, kind


def _reference_aaum(manager, stack, own, other, other_mask):
    """The fused-query AAUM written out from the paper (Eq. 6-7) and the original code (spec 3.3), step by step."""
    ln = torch.nn.functional.layer_norm
    h = [ln(stack[:, i], (32,), manager.norms[i].weight, manager.norms[i].bias) for i in range(stack.shape[1])]
    c = ln(own, (32,), manager.previous_norm.weight, manager.previous_norm.bias)
    e = ln(other, (32,), manager.other_norm.weight, manager.other_norm.bias)
    attention = manager.fusion_attention
    queries = c @ attention.q_proj.weight.T + attention.q_proj.bias
    keys = e @ attention.k_proj.weight.T + attention.k_proj.bias
    scores = queries @ keys.transpose(1, 2)
    scores = scores / 32**0.5 + torch.where(other_mask[:, None, :].bool(), 0.0, -1e30)
    query = torch.cat([torch.softmax(scores, dim=-1) @ e, c], dim=-1)  # (B, L, 2D): attended other, then own
    logits = query @ manager.controller.weight.T + manager.controller.bias  # (B, L, N)
    weights = torch.softmax(logits / manager.temperature.value, dim=-1)
    out = sum(weights[..., i : i + 1] * h[i] for i in range(len(h)))
    return out + manager.cross_weight * c, weights


def test_aaum_matches_the_equations_written_out():
    config = tiny_config(manager={"type": "aaum"})
    torch.manual_seed(13)
    manager = AdaptiveManager(config.manager, hidden=32, eps=1e-5).eval()
    with torch.no_grad():
        for parameter in manager.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)
    stack, own, other = torch.randn(2, 3, 5, 32), torch.randn(2, 5, 32), torch.randn(2, 4, 32)
    other_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    got = manager(stack, [own], other=other, other_mask=other_mask)
    expected, weights = _reference_aaum(manager, stack, own, other, other_mask)
    torch.testing.assert_close(got.hidden, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(got.weights[..., 0].transpose(1, 2), weights, rtol=0, atol=1e-6)
    torch.testing.assert_close(got.weights.sum(dim=1), torch.ones(2, 5, 1))
    # The original code does not mask padded keys: only the padded sample changes.
    unmasked = AdaptiveManager(replace(config.manager, mask_fused_query=False), hidden=32, eps=1e-5).eval()
    unmasked.load_state_dict(manager.state_dict())
    loose = unmasked(stack, [own], other=other, other_mask=other_mask).hidden
    torch.testing.assert_close(loose[0], got.hidden[0], rtol=0, atol=0)
    assert not torch.allclose(loose[1], got.hidden[1], atol=1e-4)
