"""The probe on tiny models: known answers from hand-set weights, and parity with statistics recomputed from the
full attention maps that transformers returns (``output_attentions=True``)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from llava.analysis.probes import Probe, TokenLayout
from llava.analysis.samples import AnalysisSample
from llava.constants import IMAGE_TOKEN_INDEX
from llava.mm_utils import process_images
from llava.model.manager_config import ManagerConfig
from llava.processing.image_processor import SigLipImageProcessor
from llava.testing.tiny import tiny_model

SIDE = 4  # 56-px crops, patch 14
MANAGER = ManagerConfig(type="saum", expert_layers=(2, 3, 4), inject_layers=(0, 2))


def _model(*, aspect: str = "pad", manager: ManagerConfig | None = None, seed: int = 0):
    extra = {"manager": manager.to_dict()} if manager else {}
    return tiny_model(seed=seed, image_size=14 * SIDE, vocab_size=4096, image_aspect_ratio=aspect, **extra)


def _sample(model, size=(56, 56), before: int = 5, after: int = 7, seed: int = 0) -> AnalysisSample:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    crops = process_images([image], SigLipImageProcessor(size=(14 * SIDE, 14 * SIDE)), model.config)[0]
    crops = crops[None] if crops.dim() == 3 else crops
    ids = torch.cat([torch.arange(10, 10 + before), torch.tensor([IMAGE_TOKEN_INDEX]), torch.arange(30, 30 + after)])
    return AnalysisSample(sample_id="s", input_ids=ids, images=[crops], image_sizes=[image.size], modalities=["image"])


def _layout(model, sample) -> tuple[TokenLayout, object]:
    spliced = model.prepare_multimodal_inputs(
        sample.input_ids[None], None, None, sample.images, sample.image_sizes, sample.modalities
    )
    return TokenLayout.from_kinds(spliced.token_kinds, spliced.attention_mask), spliced


def _zero_llm_queries_and_keys(model) -> None:
    for layer in model.model.layers:
        for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj):
            torch.nn.init.zeros_(proj.weight)
            torch.nn.init.zeros_(proj.bias)


@torch.no_grad()
def test_uniform_llm_attention_gives_log_of_the_visible_keys_and_zero_head_kl():
    model = _model()
    _zero_llm_queries_and_keys(model)  # every score 0: attention is uniform over the causally visible keys
    sample = _sample(model)
    layout, _ = _layout(model, sample)
    visual, text = layout.visual, layout.text
    after = text[text > visual[0]]
    with Probe(model, ("attention_entropy", "head_kl")) as probe:
        probe.observe(sample)
    vis_expected = sum(math.log(j + 1) for j in range(len(visual))) / len(visual)  # j-th image token sees j + 1
    mass_expected = sum(len(visual) / (int(p) + 1) for p in after) / len(after)
    for layer in range(1, 5):
        assert probe.entropy.mean((layer, "visual_self")) == pytest.approx(vis_expected, abs=1e-5)
        assert probe.entropy.mean((layer, "text_to_visual")) == pytest.approx(math.log(len(visual)), abs=1e-5)
        assert probe.max_entropy.mean((layer, "visual_self")) == pytest.approx(vis_expected, abs=1e-9)
        assert probe.mass.mean((layer, "text_to_visual")) == pytest.approx(mass_expected, abs=1e-5)
        assert probe.mass.mean((layer, "visual_self")) < 1
        for block in ("visual_self", "text_to_visual"):
            assert abs(probe.kl.mean((layer, block))) < 1e-6
    assert probe.entropy.count((1, "text_to_visual")) == 4 * len(after)  # heads x queries


def _reference_block_stats(attn: torch.Tensor, queries, keys) -> tuple[float, float, float]:
    """Entropy, pairwise head KL and block mass from one layer's full map (H, L, L), one query at a time."""
    heads = attn.shape[0]
    ent, kl, mass = [], [], []
    for q in queries.tolist():
        rows = attn[:, q, keys].double()  # (H, K)
        mass.extend(rows.sum(-1).tolist())
        p = rows / rows.sum(-1, keepdim=True)
        ent.extend((-(p * p.clamp_min(1e-300).log()).sum(-1)).tolist())
        support = p[0] > 0
        pairs = [
            F.kl_div(p[g, support].log(), p[h, support], reduction="sum")
            for h, g in itertools.permutations(range(heads), 2)
        ]
        kl.append(float(sum(pairs)) / len(pairs))
    return sum(ent) / len(ent), sum(kl) / len(kl), sum(mass) / len(mass)


def _two_image_sample(model) -> AnalysisSample:
    """Text, image, text, image, text: the image tokens are two separate runs of positions."""
    first, second = _sample(model, seed=1), _sample(model, seed=2)
    image = torch.tensor([IMAGE_TOKEN_INDEX])
    ids = torch.cat([torch.arange(10, 13), image, torch.arange(40, 44), image, torch.arange(50, 56)])
    return AnalysisSample(
        sample_id="two",
        input_ids=ids,
        images=first.images + second.images,
        image_sizes=first.image_sizes + second.image_sizes,
        modalities=["image", "image"],
    )


@pytest.mark.parametrize("aspect, images", [("pad", 1), ("anyres_max_9", 1), ("pad", 2)])
@torch.no_grad()
def test_streamed_attention_statistics_equal_the_full_maps_for_any_query_chunk(aspect, images):
    model = _model(aspect=aspect, manager=MANAGER)
    for manager in model.model.managers.layers.values():
        torch.nn.init.normal_(manager.weight, std=0.2)
    sample = _sample(model, size=(120, 70)) if images == 1 else _two_image_sample(model)
    layout, spliced = _layout(model, sample)
    model.set_attn_implementation("eager")
    full = model.model(
        inputs_embeds=spliced.inputs_embeds,
        attention_mask=spliced.attention_mask,
        position_ids=spliced.position_ids,
        visual_injection=spliced.visual_injection,
        use_cache=False,
        output_attentions=True,
    ).attentions
    model.set_attn_implementation("sdpa")
    assert len(full) == 4
    for chunk in (1, 7, 512):
        with Probe(model, ("attention_entropy", "head_kl"), query_chunk=chunk) as probe:
            probe.observe(sample)
        for layer, block in itertools.product(range(1, 5), ("visual_self", "text_to_visual")):
            queries, keys = layout.blocks()[block]
            ent, kl, mass = _reference_block_stats(full[layer - 1][0], queries, keys)
            assert probe.entropy.mean((layer, block)) == pytest.approx(ent, rel=1e-4)
            assert probe.kl.mean((layer, block)) == pytest.approx(kl, rel=1e-3, abs=1e-6)
            assert probe.mass.mean((layer, block)) == pytest.approx(mass, rel=1e-4)


@torch.no_grad()
def test_identity_layers_have_similarity_one_except_where_managers_inject():
    model = _model(manager=MANAGER)
    for layer in model.model.layers:  # the residual stream passes through unchanged
        torch.nn.init.zeros_(layer.self_attn.o_proj.weight)
        torch.nn.init.zeros_(layer.mlp.down_proj.weight)
    sample = _sample(model)
    with Probe(model, ("layer_similarity",)) as probe:
        probe.observe(sample)
    for layer in range(1, 5):  # zero-initialised managers add nothing
        assert probe.similarity.mean((layer, "visual")) == pytest.approx(1.0, abs=1e-6)
        assert probe.similarity.mean((layer, "text")) == pytest.approx(1.0, abs=1e-6)
    for manager in model.model.managers.layers.values():
        torch.nn.init.normal_(manager.weight, std=0.5)
    with Probe(model, ("layer_similarity",)) as probe:
        probe.observe(sample)
    injected = {i + 1 for i in MANAGER.inject_layers}  # 1-based: the layer whose input got the manager's output
    for layer in range(1, 5):
        assert probe.similarity.mean((layer, "text")) == pytest.approx(1.0, abs=1e-6)
        visual = probe.similarity.mean((layer, "visual"))
        assert (visual < 0.999) if layer in injected else (visual == pytest.approx(1.0, abs=1e-6)), (layer, visual)


def _reference_distance(attn: torch.Tensor, patch: int) -> torch.Tensor:
    """(N, H, T, T) -> (H,) mean attention distance in pixels, by looping over patch coordinates."""
    crops, heads, tokens, _ = attn.shape
    side = math.isqrt(tokens)
    coords = [divmod(t, side) for t in range(tokens)]
    dist = torch.tensor([[patch * math.dist(a, b) for b in coords] for a in coords], dtype=torch.float64)
    return torch.stack([(attn[:, h].double() * dist).sum() / (crops * tokens) for h in range(heads)])


@torch.no_grad()
def test_siglip_attention_distance_equals_the_full_maps_and_uniform_attention_the_mean_pairwise_distance():
    model = _model(aspect="anyres_max_9")
    sample = _sample(model, size=(150, 60))
    crops = sample.images[0]
    vision = model.model.vision_tower.vision_tower.vision_model
    model.set_attn_implementation("eager")
    maps = vision(crops, output_attentions=True).attentions
    model.set_attn_implementation("sdpa")
    with Probe(model, ("attention_distance",)) as probe:
        probe.observe(sample)
    heads = maps[0].shape[1]
    for depth, attn in enumerate(maps, start=1):
        reference = _reference_distance(attn, 14)
        for head in range(heads):
            assert probe.distance.mean((depth, head)) == pytest.approx(float(reference[head]), rel=1e-5)
            assert probe.distance.count((depth, head)) == crops.shape[0] * SIDE * SIDE
    for layer in vision.encoder.layers:  # uniform attention over the crop's patches
        for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj):
            torch.nn.init.zeros_(proj.weight)
            torch.nn.init.zeros_(proj.bias)
    with Probe(model, ("attention_distance",)) as probe:
        probe.observe(sample)
    uniform = _reference_distance(torch.full((1, 1, SIDE * SIDE, SIDE * SIDE), 1 / SIDE**2), 14)
    for depth, head in probe.distance.keys():
        assert probe.distance.mean((depth, head)) == pytest.approx(float(uniform[0]), rel=1e-5)


@torch.no_grad()
def test_manager_weights_saum_as_learned_and_aaum_per_token_distributions():
    saum = _model(manager=MANAGER)
    for manager in saum.model.managers.layers.values():
        torch.nn.init.normal_(manager.weight)
    with Probe(saum, ("manager_weights",)) as probe:
        pass  # SAUM weights need no sample
    learned = probe.saum_weights()
    assert sorted(learned) == [1, 3]
    assert torch.equal(learned[1], saum.model.managers.layers["0"].weight)
    aaum = _model(manager=ManagerConfig(type="aaum", expert_layers=(2, 3, 4), inject_layers=(0, 2)))
    sample = _sample(aaum)
    layout, _ = _layout(aaum, sample)
    with Probe(aaum, ("manager_weights",)) as probe:
        probe.observe(sample)
        probe.observe(sample)
    targets = len(layout.visual) - 1  # managers skip the image_newline row
    for layer in (1, 3):
        means = [probe.token_weights.mean((layer, e)) for e in range(3)]
        assert sum(means) == pytest.approx(1.0, abs=1e-6)
        assert probe.token_weights.count((layer, 0)) == 2 * targets


def test_probe_detaches_and_restores_the_attention_implementation():
    model = _model(manager=MANAGER)
    with Probe(model, ("attention_entropy", "attention_distance", "layer_similarity", "manager_weights")) as probe:
        assert model.config._attn_implementation == "eager"
        assert model.model.managers.record
        probe.observe(_sample(model))
    assert model.config._attn_implementation == "sdpa"
    assert model.model.vision_tower.vision_tower.vision_model.config._attn_implementation == "sdpa"
    assert not model.model.managers.record and not model.model.managers.recorded
    modules = [
        *model.model.layers,
        *(layer.self_attn for layer in model.model.layers),
        *(layer.self_attn for layer in model.model.vision_tower.vision_tower.vision_model.encoder.layers),
    ]
    assert all(not module._forward_hooks for module in modules)


def test_probe_rejects_unknown_metrics_and_chunks():
    model = _model()
    with pytest.raises(ValueError, match="choose from"):
        Probe(model, ("entropy",))
    with pytest.raises(ValueError, match="query_chunk"):
        Probe(model, ("head_kl",), query_chunk=0)
