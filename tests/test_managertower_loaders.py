"""Loaders of the raw experts, checked against transformers' RoBERTa and CLIP on tiny checkpoints saved in each
original format (no download): transformers folders, OpenAI's JIT archive, a resized position table."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel, RobertaConfig, RobertaForMaskedLM

from managertower import ManagerTowerModel
from managertower.convert.encoders import load_clip, load_roberta
from managertower.testing import tiny_config


def _clip(seed: int = 0) -> CLIPVisionModel:
    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=64, intermediate_size=256, num_hidden_layers=4, num_attention_heads=1,
                              image_size=32, patch_size=8, hidden_act="quick_gelu")  # fmt: skip
    return CLIPVisionModel(config).eval()


def _model(**changes) -> ManagerTowerModel:
    return ManagerTowerModel(tiny_config(**changes)).eval()


def _reference_layers(clip: CLIPVisionModel, pixels: torch.Tensor, **kwargs) -> torch.Tensor:
    """transformers' CLIP hidden states 1..L, each through ``post_layernorm`` (what the Two-Tower models take)."""
    with torch.no_grad():
        hidden = clip(pixel_values=pixels, output_hidden_states=True, **kwargs).hidden_states[1:]
        return torch.stack([clip.post_layernorm(h) for h in hidden], dim=1)


def test_roberta_checkpoint_gives_transformers_hidden_states(tmp_path):
    torch.manual_seed(1)
    config = RobertaConfig(vocab_size=99, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                           intermediate_size=37, max_position_embeddings=40, type_vocab_size=1,
                           layer_norm_eps=1e-5)  # fmt: skip
    reference = RobertaForMaskedLM(config).eval()
    reference.save_pretrained(tmp_path / "roberta")
    model = _model()
    unused = load_roberta(model, tmp_path / "roberta")
    assert unused and all(k.startswith("lm_head.") for k in unused)
    ids = torch.randint(3, 99, (2, 7))
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    ids[1, 4:] = 1
    with torch.no_grad():
        expected = reference.roberta(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        got = model.text_model(ids, mask, (1, 2, 3, 4))
    for k in range(1, 5):
        torch.testing.assert_close(got[:, k - 1], expected[k], rtol=0, atol=1e-6)


def test_clip_in_transformers_layout(tmp_path):
    clip = _clip()
    clip.save_pretrained(tmp_path / "clip")
    model = _model()
    assert load_clip(model, tmp_path / "clip") == []
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        got = model.vision_model(pixels, (1, 2, 3, 4))
    torch.testing.assert_close(got, _reference_layers(clip, pixels), rtol=0, atol=1e-5)


class _Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, 1)
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict(c_fc=nn.Linear(width, 4 * width), c_proj=nn.Linear(4 * width, width)))


class _OpenAIVisual(nn.Module):
    """OpenAI CLIP's visual module names (the JIT archive's keys), filled from a transformers CLIP by hand."""

    def __init__(self, clip: CLIPVisionModel) -> None:
        super().__init__()
        vision, width = clip, clip.config.hidden_size
        self.conv1 = nn.Conv2d(3, width, 8, 8, bias=False)
        self.class_embedding = nn.Parameter(vision.embeddings.class_embedding.detach().clone())
        self.positional_embedding = nn.Parameter(vision.embeddings.position_embedding.weight.detach().clone())
        self.ln_pre, self.ln_post = nn.LayerNorm(width), nn.LayerNorm(width)
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList(_Block(width) for _ in vision.encoder.layers)
        self.proj = nn.Parameter(torch.randn(width, 16))
        with torch.no_grad():
            self.conv1.weight.copy_(vision.embeddings.patch_embedding.weight)
            self.ln_pre.load_state_dict(vision.pre_layrnorm.state_dict())
            self.ln_post.load_state_dict(vision.post_layernorm.state_dict())
            for block, layer in zip(self.transformer.resblocks, vision.encoder.layers, strict=True):
                attention = layer.self_attn
                block.attn.in_proj_weight.copy_(torch.cat([attention.q_proj.weight, attention.k_proj.weight,
                                                           attention.v_proj.weight]))  # fmt: skip
                block.attn.in_proj_bias.copy_(torch.cat([attention.q_proj.bias, attention.k_proj.bias,
                                                         attention.v_proj.bias]))  # fmt: skip
                block.attn.out_proj.load_state_dict(attention.out_proj.state_dict())
                block.ln_1.load_state_dict(layer.layer_norm1.state_dict())
                block.ln_2.load_state_dict(layer.layer_norm2.state_dict())
                block.mlp.c_fc.load_state_dict(layer.mlp.fc1.state_dict())
                block.mlp.c_proj.load_state_dict(layer.mlp.fc2.state_dict())

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.conv1(pixels)


class _OpenAICLIP(nn.Module):
    def __init__(self, clip: CLIPVisionModel) -> None:
        super().__init__()
        self.visual = _OpenAIVisual(clip)
        self.token_embedding = nn.Embedding(10, 16)  # a text-tower leftover the loader must leave unused
        self.logit_scale = nn.Parameter(torch.ones([]))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.visual(pixels)


def test_clip_in_openais_jit_archive(tmp_path):
    clip = _clip(2)
    torch.jit.save(torch.jit.script(_OpenAICLIP(clip)), str(tmp_path / "ViT-tiny.pt"))
    model = _model()
    unused = load_clip(model, tmp_path / "ViT-tiny.pt")
    assert set(unused) == {"visual.proj", "token_embedding.weight", "logit_scale"}
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        got = model.vision_model(pixels, (1, 2, 3, 4))
    torch.testing.assert_close(got, _reference_layers(clip, pixels), rtol=0, atol=1e-5)


def test_a_checkpoint_of_another_resolution_is_resized_once_as_transformers_interpolates(tmp_path):
    clip = _clip(3)
    clip.save_pretrained(tmp_path / "clip")
    model = ManagerTowerModel(tiny_config(vision=tiny_config().vision.__class__(
        hidden_size=64, layers=4, patch_size=8, image_size=48))).eval()  # fmt: skip
    load_clip(model, tmp_path / "clip")
    pixels = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        got = model.vision_model(pixels, (4,))
    expected = _reference_layers(clip, pixels, interpolate_pos_encoding=True)[:, 3:]
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_loaders_name_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="not a CLIP checkpoint"):
        load_clip(_model(), {"weight": torch.zeros(1)})
    clip = _clip()
    state = {k: v for k, v in clip.state_dict().items() if "layers.3." not in k}
    with pytest.raises(ValueError, match=r"lacks \['transformer.resblocks.3"):
        load_clip(_model(), state)
    with pytest.raises(ValueError, match="neither model.safetensors"):
        load_roberta(_model(), tmp_path)


def _original_names(model: ManagerTowerModel) -> dict[str, torch.Tensor]:
    """Our tiny AAUM model's weights under the original ManagerTower's names (its Lightning state_dict), written
    from the spec's description of that code: CLIP as ``vit_model.visual`` in OpenAI's names, RoBERTa as
    ``text_transformer``, managers with ``layer_scores`` [1, K, 1, D] and K LayerNorms, plus the keys it keeps that
    have no counterpart here."""
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith("text_model.model."):
            out["text_transformer." + key.removeprefix("text_model.model.")] = value
        elif key.startswith("vision_model.model.visual."):
            rest = key.removeprefix("vision_model.model.visual.")
            openai = {
                "embeddings.patch_embedding.weight": "conv1.weight",
                "embeddings.class_embedding": "class_embedding",
                "embeddings.position_embedding.weight": "positional_embedding",
            }
            rest = openai.get(rest, rest)
            if not rest.endswith("position_ids"):
                out["vit_model.visual." + rest] = value
        elif ".layer." in key and key.startswith("cross_modal_"):
            out[key.replace(".layer.", ".", 1)] = value
        elif "_inputs.layer_embeddings." in key:
            modality = key.split("_", 1)[0]
            out[f"layer_embeddings_{modality}.weight"] = value
        elif "_inputs.managers." in key:
            modality, rest = key.split("_inputs.managers.")
            index, name = rest.split(".", 1)
            prefix = f"cross_modal_{modality}_manager_tower.{index}."
            renamed = {"scores": "layer_scores", "temperature.value": "softmax_temperature",
                       "cross_weight": "layer_scores_cross", "previous_norm.weight": "LayerNorm.3.weight",
                       "previous_norm.bias": "LayerNorm.3.bias", "other_norm.weight": "extra_query_LayerNorm.weight",
                       "other_norm.bias": "extra_query_LayerNorm.bias"}  # fmt: skip
            if name == "scores":
                value = value[None, :, None, :]
            elif name == "cross_weight":
                value = value[None, None]
            name = renamed.get(name, name.replace("norms.", "LayerNorm.").replace("controller.", "linear_controller."))
            out[prefix + name] = value
            out[prefix + "softmax_temperature_cross"] = torch.ones(1)
        else:
            out[key] = value
    out["vit_model.visual.proj"] = torch.zeros(64, 8)
    out["text_transformer.pooler.dense.weight"] = torch.zeros(32, 32)
    out["itm_score.fc.weight"] = torch.zeros(2, 64)
    return out


def test_original_lightning_checkpoint(tmp_path):
    from managertower.convert.original import load_original

    torch.manual_seed(4)
    source = _model(manager={"type": "aaum"})
    with torch.no_grad():
        for parameter in source.parameters():  # non-default values everywhere, so a misplaced tensor shows
            parameter.add_(torch.randn_like(parameter) * 0.01)
    torch.save({"state_dict": _original_names(source), "epoch": 3}, tmp_path / "ManagerTower_tiny.ckpt")
    target = _model(manager={"type": "aaum"})
    unused = load_original(target, tmp_path / "ManagerTower_tiny.ckpt")
    assert {k for k in unused if "softmax_temperature_cross" not in k} == {
        "vit_model.visual.proj", "text_transformer.pooler.dense.weight", "itm_score.fc.weight"}  # fmt: skip
    assert sum("softmax_temperature_cross" in k for k in unused) == 2 * 3
    ids, mask = torch.randint(3, 99, (2, 6)), torch.tensor([[1] * 6, [1] * 3 + [0] * 3])
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(target.eval()(ids, mask, pixels).cls_feats, source.eval()(ids, mask, pixels).cls_feats)


def test_original_saue_checkpoint_with_scalar_scores_in_the_specs_literal_names():
    # manager_type SAUE with the scalar weight type: every manager holds layer_scores [1, K, 1, 1] (K = N in layer 1,
    # N + 1 after: the last slot weighs the previous output) and K LayerNorms; transformers 4.17 also saved the
    # position-id buffer. Written by hand from the spec (3.2), not from our own map.
    from managertower.convert.original import load_original

    target = _model(manager={"type": "saum", "weights": "n1"})
    names = _original_names(_model(manager={"type": "saum", "weights": "n1"}))
    names = {k: v for k, v in names.items() if "_manager_tower." not in k}
    generator = torch.Generator().manual_seed(5)
    literal = {}
    for modality in ("text", "image"):
        for index in range(3):
            k = 3 if index == 0 else 4
            prefix = f"cross_modal_{modality}_manager_tower.{index}."
            literal[prefix + "layer_scores"] = torch.randn(1, k, 1, 1, generator=generator)
            for i in range(k):
                literal[prefix + f"LayerNorm.{i}.weight"] = torch.rand(32, generator=generator) + 0.5
                literal[prefix + f"LayerNorm.{i}.bias"] = torch.randn(32, generator=generator)
            literal[prefix + "softmax_temperature"] = torch.tensor([0.7])
            literal[prefix + "softmax_temperature_cross"] = torch.tensor([1.0])
    names.update(literal)
    names["text_transformer.embeddings.position_ids"] = torch.arange(40)[None]
    unused = load_original(target, names)
    assert "text_model.model.embeddings.position_ids" in unused or "text_transformer.embeddings.position_ids" in unused
    second = target.image_inputs.managers[2]
    scores = literal["cross_modal_image_manager_tower.2.layer_scores"][0, :, 0, :]
    assert torch.equal(second.scores, scores[:3]) and torch.equal(second.cross_scores, scores[3:])
    assert torch.equal(second.norms[3].weight, literal["cross_modal_image_manager_tower.2.LayerNorm.3.weight"])
    assert second.temperature.value.item() == pytest.approx(0.7)
    first = target.text_inputs.managers[0]
    assert torch.equal(first.scores, literal["cross_modal_text_manager_tower.0.layer_scores"][0, :, 0, :])
    with pytest.raises(ValueError, match="generator='linear'"):
        load_original(_model(manager={"type": "aaum", "generator": "cross_attention"}), names)


def test_original_config_is_the_released_codes_behaviour():
    from managertower.convert.original import original_config

    config = original_config(image_size=384)
    assert config.vision.image_size == 384 and config.cross.layer_norm_eps == 1e-12
    assert config.cross.input_norm_eps == 1e-5
    manager = config.manager
    assert manager.static_noise and manager.noise_per_channel and not manager.mask_fused_query
