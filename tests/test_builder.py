"""load_pretrained_model: dtype/device/attention choices, overwrite_config, model_base overlay, quantization."""

import warnings

import pytest
import torch
from safetensors.torch import save_file

from llava.model.builder import load_pretrained_model, resolve_attn_implementation, resolve_device_map, resolve_dtype
from llava.testing import tiny_model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, qwen_tokenizer):
    path = tmp_path_factory.mktemp("builder")
    tiny_model(seed=6).save_pretrained(path)
    qwen_tokenizer.save_pretrained(path)
    return path


def test_returns_llava_next_tuple(checkpoint):
    tokenizer, model, processor, context_len = load_pretrained_model(
        str(checkpoint), None, "any-name-even-llama-yi", device_map="auto", multimodal=True
    )
    assert model.dtype == torch.float32 and not model.training
    assert processor.size == (384, 384) and processor.image_mean == (0.5, 0.5, 0.5)
    assert context_len == 32768 and len(tokenizer) == 151646
    assert model.get_model() is model.model


def test_overwrite_config_and_dtype(checkpoint):
    _, model, _, _ = load_pretrained_model(
        str(checkpoint),
        torch_dtype="bfloat16",
        overwrite_config={"image_aspect_ratio": "pad", "tokenizer_padding_side": "left"},
    )
    assert model.dtype == torch.bfloat16
    assert model.get_vision_tower().vision_tower.vision_model.embeddings.patch_embedding.weight.dtype == torch.bfloat16
    assert model.config.image_aspect_ratio == "pad" and model.mm_spec.padding_side == "left"
    with pytest.raises(ValueError, match="image_aspect_ratio='wide'"):
        load_pretrained_model(str(checkpoint), overwrite_config={"image_aspect_ratio": "wide"})


def test_resolvers():
    if torch.cuda.is_available():
        assert resolve_dtype(None) == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    else:
        assert resolve_dtype(None) == torch.float32
    with pytest.raises(ValueError, match="torch_dtype='half-ish'"):
        resolve_dtype("half-ish")
    with pytest.raises(ValueError, match="attn_implementation='flash'"):
        resolve_attn_implementation("flash")
    if not torch.cuda.is_available():
        assert resolve_device_map("auto") is None
        with pytest.raises(ValueError, match="needs CUDA"):
            resolve_device_map("cuda:0")


def test_flash_attention_falls_back_to_sdpa(checkpoint):
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        pass
    else:
        if torch.cuda.is_available():
            pytest.skip("flash-attn and CUDA are available here, so there is no fallback to test")
    with pytest.warns(UserWarning, match="using 'sdpa' instead"):
        _, model, _, _ = load_pretrained_model(str(checkpoint), attn_implementation="flash_attention_2")
    assert model.config._attn_implementation == "sdpa"


def test_model_base_overlay(tmp_path, checkpoint):
    """A partial checkpoint (e.g. a stage-1 projector) over a full base model; unknown keys are an error."""
    _, base, _, _ = load_pretrained_model(str(checkpoint))
    projector = {
        k: torch.full_like(v, 0.5) for k, v in base.state_dict().items() if k.startswith("model.mm_projector.")
    }
    save_file(projector, tmp_path / "adapter.safetensors")
    (tmp_path / "config.json").write_text((checkpoint / "config.json").read_text())
    _, model, _, _ = load_pretrained_model(str(tmp_path), str(checkpoint))
    assert torch.equal(model.model.mm_projector[0].weight, torch.full_like(model.model.mm_projector[0].weight, 0.5))
    assert torch.equal(model.model.layers[0].mlp.up_proj.weight, base.model.layers[0].mlp.up_proj.weight)
    save_file({"model.not_a_param": torch.zeros(1)}, tmp_path / "adapter.safetensors")
    with pytest.raises(ValueError, match="not in the model"):
        load_pretrained_model(str(tmp_path), str(checkpoint))


def test_not_a_llava_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama", "hidden_size": 8}')
    with pytest.raises(ValueError, match="model_type='llama'"):
        load_pretrained_model(str(tmp_path))


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_loading_keeps_vision_projector_lm_head(checkpoint, bits):
    pytest.importorskip("bitsandbytes", reason="bitsandbytes is in the dev/train extras")
    import bitsandbytes as bnb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, model, _, _ = load_pretrained_model(str(checkpoint), load_8bit=bits == 8, load_4bit=bits == 4)
    quantized = bnb.nn.Linear8bitLt if bits == 8 else bnb.nn.Linear4bit
    assert isinstance(model.model.layers[0].self_attn.q_proj, quantized)
    assert type(model.model.mm_projector[0]) is torch.nn.Linear
    assert type(model.lm_head) is torch.nn.Linear
    assert type(model.get_vision_tower().vision_tower.vision_model.encoder.layers[0].mlp.fc1) is torch.nn.Linear
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        out = model.generate(torch.tensor([[5, -200, 6]]), images=[torch.zeros(3, 384, 384)], max_new_tokens=2)
    assert out.shape == (1, 2)
