"""Checkpoint formats: our save/load, LLaVA-NeXT-format files, transformers format both ways (module and CLI)."""

import json

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM, LlavaOnevisionForConditionalGeneration

import llava  # noqa: F401  (registers the auto classes)
from llava.model import LlavaQwenConfig, LlavaQwenForCausalLM
from llava.model.builder import load_pretrained_model
from llava.model.convert import main as convert_main
from llava.testing import tiny_model


def _logits(model, make_image):
    from llava.mm_utils import process_images
    from llava.processing import SigLipImageProcessor

    image = make_image(500, 380, seed=9)
    pixels = process_images([image], SigLipImageProcessor(), model.config)
    with torch.no_grad():
        return model(input_ids=torch.tensor([[3, -200, 4, 5]]), images=pixels, image_sizes=[image.size]).logits


@pytest.fixture(scope="module")
def saved(tmp_path_factory, qwen_tokenizer):
    path = tmp_path_factory.mktemp("ckpt")
    model = tiny_model(seed=5)
    model.save_pretrained(path)
    qwen_tokenizer.save_pretrained(path)
    return path, model


def test_save_load_round_trip(saved, make_image):
    path, model = saved
    assert (path / "model.safetensors").exists()
    loaded = LlavaQwenForCausalLM.from_pretrained(path).eval()
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr(), "tied weights"
    torch.testing.assert_close(_logits(loaded, make_image), _logits(model, make_image), rtol=0, atol=0)


def test_auto_classes_registered(saved):
    path, _ = saved
    assert isinstance(AutoConfig.from_pretrained(path), LlavaQwenConfig)
    assert isinstance(AutoModelForCausalLM.from_pretrained(path), LlavaQwenForCausalLM)


@pytest.mark.parametrize("model_type", ["llava", "qwen2"])
def test_llava_next_format_loads(tmp_path, saved, qwen_tokenizer, make_image, model_type):
    """Files as LLaVA-NeXT writes them: upstream key names, no lm_head (tied 0.5B), model_type llava or qwen2."""
    _, model = saved
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    assert any(k.startswith("model.vision_tower.vision_tower.vision_model.encoder.layers.") for k in state)
    assert {"model.mm_projector.0.weight", "model.mm_projector.2.weight", "model.image_newline"} <= set(state)
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    config = model.config.to_dict()
    config.update(model_type=model_type, architectures=["LlavaQwenForCausalLM"], mm_vision_select_layer=-2)
    (tmp_path / "config.json").write_text(json.dumps(config))
    qwen_tokenizer.save_pretrained(tmp_path)
    _tokenizer, loaded, _processor, context_len = load_pretrained_model(str(tmp_path), None, "llava_qwen")
    assert loaded.dtype == torch.float32 and context_len == 32768
    assert 151645 in loaded.generation_config.eos_token_id
    torch.testing.assert_close(_logits(loaded, make_image), _logits(model, make_image), rtol=0, atol=0)


def test_transformers_format_round_trip_cli(tmp_path, saved, make_image):
    path, model = saved
    hf_dir, back_dir = tmp_path / "hf", tmp_path / "back"
    convert_main(["to-hf", str(path), str(hf_dir)])
    hf = LlavaOnevisionForConditionalGeneration.from_pretrained(hf_dir).eval()
    assert hf.config.image_token_index == 151646 and hf.config.vision_config.num_hidden_layers == 4
    convert_main(["from-hf", str(hf_dir), str(back_dir)])
    _, back, _, _ = load_pretrained_model(str(back_dir))
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    torch.testing.assert_close(_logits(back, make_image), _logits(model, make_image), rtol=0, atol=0)


def test_transformers_format_is_refused_with_hint(tmp_path, saved):
    path, _ = saved
    convert_main(["to-hf", str(path), str(tmp_path / "hf")])
    with pytest.raises(ValueError, match="convert it first"):
        load_pretrained_model(str(tmp_path / "hf"))
