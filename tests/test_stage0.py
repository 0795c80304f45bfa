"""Stage 0 of the playground: the experts' pre-training is deterministic, complete-or-absent, and loads as LLaVA's."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig

from playground.stage0 import finished, staging
from playground.stage0.llm import LLMConfig, pretrain_llm
from playground.stage0.probes import linear_probe, retrieval_accuracy, token_place
from playground.stage0.tower import TowerConfig, Vocabulary, pretrain_tower, words

TOWER = TowerConfig(steps=3, train_pairs=48, held_out=32, batch=16, warmup=1, probe_steps=10)
LLM = LLMConfig(steps=2, train_docs=12, held_out=6, batch=4, warmup=1)


def _same_weights(a, b) -> None:
    left, right = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert left.keys() == right.keys()
    for key in left:
        assert torch.equal(left[key], right[key]), key


@pytest.mark.parametrize("train,cfg", [(pretrain_tower, TOWER), (pretrain_llm, LLM)], ids=["tower", "llm"])
def test_same_seed_same_weights_and_a_finished_expert_is_reused(tmp_path, train, cfg):
    first, second = train(tmp_path / "a", cfg), train(tmp_path / "b", cfg)
    _same_weights(tmp_path / "a", tmp_path / "b")
    assert first["losses"] == second["losses"] and len(first["losses"]) == cfg.steps
    assert finished(tmp_path / "a") and not (tmp_path / "a.partial").exists()
    stamp = (tmp_path / "a" / "model.safetensors").stat().st_mtime_ns
    assert train(tmp_path / "a", cfg) == first, "a complete folder is read back, not retrained"
    assert (tmp_path / "a" / "model.safetensors").stat().st_mtime_ns == stamp


def test_the_tower_is_a_siglip_vision_model_and_reports_its_probes(tmp_path):
    report = pretrain_tower(tmp_path / "tower", TOWER)
    config = AutoConfig.from_pretrained(tmp_path / "tower")
    assert config.model_type == "siglip_vision_model" and config.image_size == TOWER.image_size
    assert set(report["after"]["probe"]) == {"background", "colour", "shape", "count", "position"}
    assert all(len(per_layer) == TOWER.layers for per_layer in report["after"]["probe"].values())
    assert set(report["after"]["pooled"]) == {"colour", "position"}
    assert all(len(per_layer) == TOWER.layers for per_layer in report["after"]["pooled"].values())
    assert len(report["after"]["place"]) == TOWER.layers and all(0 <= a <= 1 for a in report["after"]["place"])
    assert 0 <= report["after"]["retrieval"]["accuracy"] <= 1
    other = pretrain_tower(tmp_path / "other", dataclasses.replace(TOWER, seed=1))
    assert other["losses"] != report["losses"], "the seed matters"


def test_the_llm_saves_its_tokenizer_and_perplexity(tmp_path):
    report = pretrain_llm(tmp_path / "llm", LLM)
    assert (tmp_path / "llm" / "tokenizer_config.json").is_file()
    assert report["before"]["perplexity"] > 1000, "a random 151,936-way model is near uniform"
    assert AutoConfig.from_pretrained(tmp_path / "llm").model_type == "qwen2"


def test_an_interrupted_run_leaves_no_finished_folder(tmp_path):
    partial = staging(tmp_path / "tower")
    (partial / "model.safetensors").write_bytes(b"half")
    assert not finished(tmp_path / "tower")
    assert staging(tmp_path / "tower") == partial and not any(partial.iterdir()), "a leftover is cleared"


def test_words_spell_out_quoted_text_and_the_vocabulary_pads_with_zero():
    assert words('A red circle and the text "AB7".') == ["a", "red", "circle", "and", "the", "text", '"', "a", "b",
                                                         "7", '"', "."]  # fmt: skip
    vocab = Vocabulary(["a red circle."])
    ids = vocab.encode(["a blue circle."], 6)
    assert ids.tolist()[0][1] == 1 and ids.tolist()[0][-2:] == [0, 0], "unknown word -> 1, padding -> 0"


def test_probes_on_separable_and_on_random_data():
    features = torch.cat([torch.randn(40, 4) + 4, torch.randn(40, 4) - 4])
    labels = ["a"] * 40 + ["b"] * 40
    assert linear_probe(features, labels, features, labels) == 1.0
    embeds = torch.eye(8)
    result = retrieval_accuracy(embeds, embeds, [str(i) for i in range(8)], gallery=8)
    assert result == {"accuracy": 1.0, "chance": 1 / 8, "gallery": 8}


def test_token_place_reads_an_index_written_into_the_features_and_not_a_shuffled_one():
    generator = torch.Generator().manual_seed(0)
    tokens, width = 8, 6
    place = torch.randn(tokens, width, generator=generator)  # a position embedding the features keep
    written = torch.randn(60, tokens, width, generator=generator) * 0.1 + place
    assert token_place(written[:40], written[40:], steps=100) == 1.0
    # The same features with each image's tokens shuffled: an index no longer follows from a token's features.
    shuffled = torch.stack([row[torch.randperm(tokens, generator=generator)] for row in written])
    assert token_place(shuffled[:40], shuffled[40:], steps=100) < 0.5
