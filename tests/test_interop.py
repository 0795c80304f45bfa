"""Interop with the tools users already have: transformers' LlavaOnevision configs through the converter,
transformers' SigLIP processor through ``process_images``, LLaVA-NeXT's flag defaults and stage-1 file."""

import json
import warnings

import pytest
import torch
from train_helpers import stage1_args
from transformers import LlavaOnevisionForConditionalGeneration
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil
from transformers.utils import is_torchvision_available

from llava.mm_utils import process_images
from llava.model.convert import from_hf_model, to_hf_config
from llava.model.weights import ADAPTER_FILE, LLAVA_NEXT_ADAPTER_FILE
from llava.processing import SigLipImageProcessor
from llava.testing import tiny_model
from llava.train.model_init import build_config, build_model
from llava.train.train import parse_args, train

IMAGE_ID, VIDEO_ID = 1000, 1001
TEXT_BEFORE, TEXT_AFTER = [5, 6, 7], [8, 9]


# -- transformers -> ours: every setting converted exactly, or refused by name --------------------------------------


def _hf_model(seed: int = 3, **settings) -> LlavaOnevisionForConditionalGeneration:
    """A random transformers LlavaOnevision on the tiny architecture (6 vision layers) with ``settings`` changed."""
    config = to_hf_config(
        tiny_model(vocab_size=1024, vision_layers=6, image_size=56).config,
        image_token_index=IMAGE_ID,
        video_token_index=VIDEO_ID,
    )
    for name, value in settings.items():
        setattr(config, name, value)
    torch.manual_seed(seed)
    return LlavaOnevisionForConditionalGeneration(config).eval()


def _logits_both(hf, ours, make_image):
    image = make_image(150, 100, seed=4)
    pixels = process_images([image], SigLipImageProcessor(size=(56, 56)), ours.config)
    with torch.no_grad():
        mine = ours(
            input_ids=torch.tensor([TEXT_BEFORE + [-200] + TEXT_AFTER]), images=pixels, image_sizes=[image.size]
        ).logits
        count = mine.shape[1] - len(TEXT_BEFORE) - len(TEXT_AFTER)
        ids = torch.tensor([TEXT_BEFORE + [IMAGE_ID] * count + TEXT_AFTER])
        theirs = hf(input_ids=ids, pixel_values=pixels, image_sizes=torch.tensor([image.size[::-1]])).logits
    return mine, theirs


@pytest.mark.parametrize("layer,depth", [(-2, 5), ([-3], 4), (3, 3), (-1, 6)])
def test_vision_feature_layer_is_converted(make_image, layer, depth):
    hf = _hf_model(vision_feature_layer=layer)
    ours = from_hf_model(hf)
    assert ours.config.vision_config.num_hidden_layers == depth
    mine, theirs = _logits_both(hf, ours, make_image)
    torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)
    if layer != -1:  # the check has teeth: the last layer's features give other logits
        last, _ = _logits_both(hf, from_hf_model(_hf_model(vision_feature_layer=-1)), make_image)
        assert (last - theirs).abs().max() > 1e-3


def test_projector_without_bias_is_converted_with_zero_biases(make_image):
    hf = _hf_model(multimodal_projector_bias=False)
    assert hf.model.multi_modal_projector.linear_1.bias is None
    with pytest.warns(UserWarning, match="multimodal_projector_bias=False"):
        ours = from_hf_model(hf)
    assert not ours.model.mm_projector[0].bias.any()
    mine, theirs = _logits_both(hf, ours, make_image)
    torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "setting,value",
    [
        ("projector_hidden_act", "gelu_pytorch_tanh"),
        ("vision_feature_layer", [-2, -1]),
        ("vision_feature_layer", 0),
        ("vision_feature_select_strategy", "default"),
    ],
)
def test_unrepresentable_settings_are_refused_by_name(setting, value):
    with pytest.raises(ValueError, match=setting):
        from_hf_model(_hf_model(**{setting: value}))


# -- process_images with transformers' own SigLIP processor ----------------------------------------------------------


def _llava_ov_siglip_processors():
    """transformers' SigLIP processors configured as LLaVA-OV's (384 px squash, bicubic, mean = std = 0.5): the PIL
    backend always; the torchvision one only where torchvision imports (not in this CPU environment)."""
    options = {"size": {"height": 384, "width": 384}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    processors = [SiglipImageProcessorPil(**options)]
    if is_torchvision_available():
        from transformers.models.siglip.image_processing_siglip import SiglipImageProcessor

        processors.append(SiglipImageProcessor(**options))
    else:
        print("transformers' torchvision SiglipImageProcessor not checked: torchvision is not installed")
    return processors


@pytest.mark.parametrize("mode", ["anyres_max_9", "pad", "square"])
def test_process_images_accepts_transformers_siglip_processor(make_image, mode):
    config = tiny_model(vocab_size=64, image_aspect_ratio=mode).config
    images = [make_image(700, 400, seed=1), make_image(300, 500, seed=2)]
    ours = process_images(images, SigLipImageProcessor(), config)
    for processor in _llava_ov_siglip_processors():
        theirs = process_images(images, processor, config)
        assert type(theirs) is type(ours)
        for mine, other in zip(ours, theirs):
            torch.testing.assert_close(other, mine, rtol=0, atol=1e-6)


def test_non_square_processor_size_is_refused(make_image):
    processor = SiglipImageProcessorPil(size={"height": 384, "width": 256})
    with pytest.raises(ValueError, match="square"):
        process_images([make_image(300, 300)], processor, tiny_model(vocab_size=64).config)


# -- LLaVA-NeXT's flag defaults --------------------------------------------------------------------------------------


def _without(argv: list[str], *flags: str) -> list[str]:
    out = list(argv)
    for flag in flags:
        index = out.index(flag)
        del out[index : index + 2]
    return out


def test_plain_llm_without_image_flags_gets_llava_next_defaults_and_trains(assets, tmp_path):
    """LLaVA-NeXT's pretrain_siglip.sh gives neither --image_aspect_ratio nor --mm_patch_merge_type."""
    argv = _without(
        stage1_args(assets, tmp_path, steps=1, manager=False),
        "--image_aspect_ratio",
        "--mm_patch_merge_type",
        "--mm_projector_type",
    )
    config, origin = build_config(*parse_args(argv))
    assert (config.image_aspect_ratio, config.mm_patch_merge_type, config.mm_projector_type) == (
        "square",
        "flat",
        "linear",
    )
    assert origin["image_aspect_ratio"] == "LLaVA-NeXT default"
    train(argv)  # reaches and passes the first batch
    assert json.loads((tmp_path / "config.json").read_text())["image_aspect_ratio"] == "square"


def test_anyres_without_pinpoints_fails_before_the_model_is_built(assets, tmp_path):
    argv = stage1_args(assets, tmp_path, steps=1, manager=False)
    argv[argv.index("--image_aspect_ratio") + 1] = "anyres_max_9"
    with pytest.raises(ValueError, match="needs image_grid_pinpoints"):
        build_config(*parse_args(argv))


def test_the_default_config_is_valid_and_uses_transformers_default_grid():
    """``LlavaQwenConfig()`` is LLaVA-OneVision's anyres_max_9 over the grid transformers' LlavaOnevisionConfig
    defaults to; the range form also holds for a tiny tower's crop size."""
    from transformers import LlavaOnevisionConfig

    from llava.model.config import LlavaQwenConfig, MultimodalSpec

    spec = MultimodalSpec.from_config(LlavaQwenConfig())
    expected = {tuple(pair) for pair in LlavaOnevisionConfig().image_grid_pinpoints}  # (height, width) pairs
    assert spec.aspect_ratio.is_anyres and {(h, w) for w, h in spec.grid_pinpoints} == expected
    tiny = MultimodalSpec.from_config(LlavaQwenConfig(vision_config={"image_size": 56, "patch_size": 14}))
    assert tiny.grid_pinpoints[-1] == (6 * 56, 6 * 56) and len(tiny.grid_pinpoints) == 36


def test_checkpoint_settings_kept_with_a_warning(assets, tmp_path):
    model = tiny_model(vocab_size=151936, image_size=56, vision_layers=4)
    model.save_pretrained(tmp_path / "ckpt")
    argv = [
        "--model_name_or_path",
        str(tmp_path / "ckpt"),
        "--data_path",
        "x.json",
        "--output_dir",
        str(tmp_path),
        "--attn_implementation",
        "sdpa",
    ]
    with pytest.warns(UserWarning, match="keeping the checkpoint's 'anyres_max_9'"):
        config, _ = build_config(*parse_args(argv))
    assert config.image_aspect_ratio == "anyres_max_9"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_config(
            *parse_args(argv + ["--image_aspect_ratio", "anyres_max_9", "--mm_patch_merge_type", "spatial_unpad"])
        )


# -- stage 1's LLaVA-NeXT file ----------------------------------------------------------------------------------------


def test_stage1_writes_llava_next_mm_projector_bin(stage1):
    projector = torch.load(stage1 / LLAVA_NEXT_ADAPTER_FILE, weights_only=True)
    from safetensors.torch import load_file

    adapter = load_file(stage1 / ADAPTER_FILE)
    assert set(projector) == {f"model.mm_projector.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")}
    assert all(torch.equal(projector[k], adapter[k]) for k in projector)
    assert any(k.startswith("model.managers.") for k in adapter)


def test_upstream_flag_reads_our_full_adapter(assets, stage1, tmp_path):
    """--pretrain_mm_mlp_adapter .../mm_projector.bin (LLaVA-NeXT's mid-stage flag) on our stage-1 output brings
    the managers too: our mm_adapter.safetensors beside it is read."""
    from safetensors.torch import load_file

    argv = stage1_args(assets, tmp_path, steps=1) + ["--pretrain_mm_mlp_adapter", str(stage1 / LLAVA_NEXT_ADAPTER_FILE)]
    model, _ = build_model(*parse_args(argv))
    state = model.state_dict()
    for key, value in load_file(stage1 / ADAPTER_FILE).items():
        assert torch.equal(state[key], value), key


def test_lone_llava_next_projector_file_loads(assets, stage1, tmp_path):
    """A LLaVA-NeXT mm_projector.bin without our file beside it: bf16, keys under another prefix."""
    projector = torch.load(stage1 / LLAVA_NEXT_ADAPTER_FILE, weights_only=True)
    upstream = {k.replace("model.", "base_model.model.model.", 1): v.to(torch.bfloat16) for k, v in projector.items()}
    torch.save(upstream, tmp_path / LLAVA_NEXT_ADAPTER_FILE)
    argv = stage1_args(assets, tmp_path / "out", steps=1, manager=False)
    argv += ["--pretrain_mm_mlp_adapter", str(tmp_path / LLAVA_NEXT_ADAPTER_FILE)]
    model, _ = build_model(*parse_args(argv))
    for key, value in projector.items():
        assert torch.equal(model.state_dict()[key], value.to(torch.bfloat16).float()), key
