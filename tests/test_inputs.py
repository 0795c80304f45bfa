"""Splicing, truncation, padding side, text-only samples, and clear errors on bad input."""

import re

import pytest
import torch

from llava.constants import IGNORE_INDEX
from llava.mm_utils import process_images
from llava.model.anyres import AspectRatioMode, parse_grid_pinpoints
from llava.processing import SigLipImageProcessor
from llava.testing import tiny_model

PROC = SigLipImageProcessor()


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=4, vocab_size=512, image_aspect_ratio="pad")


def _pad_pixels(model, images):
    return list(process_images(images, PROC, model.config))


def test_labels_and_positions(model, make_image):
    pixels = _pad_pixels(model, [make_image(300, 200, seed=1)])
    ids = torch.tensor([[7, -200, 8, 9]])
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 8, 9]])
    out = model.prepare_multimodal_inputs(ids, None, labels, pixels)
    assert out.inputs_embeds.shape[1] == 3 + 730
    assert out.labels[0, 1:731].eq(IGNORE_INDEX).all() and out.labels[0, -2:].tolist() == [8, 9]
    assert out.position_ids[0].tolist() == list(range(733))
    assert int((out.token_kinds == 2).sum()) == 1, "one image_newline after a single crop"


def test_truncation_never_cuts_an_image(make_image):
    # A model of its own: the limit ends inside the second image.
    model = tiny_model(seed=4, vocab_size=512, image_aspect_ratio="pad", tokenizer_model_max_length=1 + 730 + 1 + 100)
    pixels = _pad_pixels(model, [make_image(64, 64, seed=s) for s in (1, 2)])
    ids = torch.tensor([[5, -200, 6, -200, 7]])
    out = model.prepare_multimodal_inputs(ids, None, ids.clone(), pixels)
    assert out.inputs_embeds.shape[1] == 1 + 730 + 1, "the second image is dropped whole"
    assert out.num_truncated == 1
    assert int((out.image_token_index >= 0).sum()) == 730


def test_padding_side_from_config(model, make_image):
    pixels = _pad_pixels(model, [make_image(64, 64)])
    ids = torch.tensor([[5, -200, 6], [7, 8, 9]])
    right = model.prepare_multimodal_inputs(ids, None, None, pixels)
    assert right.attention_mask[1].tolist()[:3] == [1, 1, 1] and right.attention_mask[1, -1] == 0
    left = model.prepare_multimodal_inputs(ids, None, None, pixels, padding_side="left")
    assert left.attention_mask[1, 0] == 0 and left.attention_mask[1, -1] == 1
    assert left.position_ids[1, -3:].tolist() == [0, 1, 2]


def test_text_only_sample_with_dummy_image_keeps_vision_in_graph(make_image):
    """Training batches give text-only samples a dummy image (modality "text"); the tower still gets gradients."""
    model = tiny_model(seed=4, vocab_size=512, image_aspect_ratio="pad").train()
    pixels = _pad_pixels(model, [make_image(64, 64, seed=1)]) + [torch.zeros(3, 384, 384)]
    ids = torch.tensor([[5, -200, 6, 7], [8, 9, 10, 11]])
    out = model(input_ids=ids, labels=ids.clamp_min(0), images=pixels, modalities=["image", "text"])
    assert out.logits.shape[1] == 4 + 729  # the dummy adds no token
    out.loss.backward()
    assert model.model.vision_tower.vision_tower.vision_model.embeddings.patch_embedding.weight.grad is not None


def test_placeholder_image_mismatch_names_counts(model, make_image):
    pixels = _pad_pixels(model, [make_image(64, 64)])
    with pytest.raises(ValueError, match=r"2 <image> placeholders \(per sample: \[2\]\) but 1 images"):
        model(input_ids=torch.tensor([[5, -200, -200]]), images=pixels)
    with pytest.raises(ValueError, match="no images were given"):
        model(input_ids=torch.tensor([[5, -200]]))
    with pytest.raises(ValueError, match="1 <image> placeholders .* but 2 images"):
        model(input_ids=torch.tensor([[5, -200]]), images=pixels * 2)


def test_bad_image_arguments(model, make_image):
    pixels = _pad_pixels(model, [make_image(64, 64)])
    with pytest.raises(ValueError, match="2 modalities for 1 images"):
        model(input_ids=torch.tensor([[-200]]), images=pixels, modalities=["image", "image"])
    with pytest.raises(ValueError, match="video inputs are not supported"):
        model(input_ids=torch.tensor([[-200]]), images=pixels, modalities=["video"])
    with pytest.raises(ValueError, match="2 image_sizes for 1 images"):
        model(input_ids=torch.tensor([[-200]]), images=pixels, image_sizes=[(1, 1), (2, 2)])
    with pytest.raises(ValueError, match=r"images\[0\] must be"):
        model(input_ids=torch.tensor([[-200]]), images=[torch.zeros(384, 384)])


def test_anyres_crop_count_checked(make_image):
    model = tiny_model(seed=4, vocab_size=512)
    image = make_image(640, 480)
    pixels = process_images([image], PROC, model.config)  # 5 crops for a 2x2 grid
    with pytest.raises(ValueError, match=r"size \(1000, 300\) has 5 crops"):
        model(input_ids=torch.tensor([[-200]]), images=pixels, image_sizes=[(1000, 300)])
    with pytest.raises(ValueError, match="need their original"):
        model(input_ids=torch.tensor([[-200]]), images=pixels)


@pytest.mark.parametrize("value", ["anyres_max_0", "highres", "crop_split", "anyres-max-9"])
def test_unknown_aspect_ratio_names_value(value):
    with pytest.raises(ValueError, match=f"image_aspect_ratio='{value}'"):
        AspectRatioMode.parse(value)
    with pytest.raises(ValueError, match=f"image_aspect_ratio='{value}'"):
        tiny_model(vocab_size=64, image_aspect_ratio=value)


@pytest.mark.parametrize("value", ["(0x1),...,(2x2)", "(2x2),...,(1x1)", "[[384, 100]]", "[[384]]", "nonsense", []])
def test_malformed_pinpoints_name_value(value):
    with pytest.raises(ValueError, match="image_grid_pinpoints=" + re.escape(repr(value))):
        parse_grid_pinpoints(value, 384)


def test_pinpoint_range_order():
    pinpoints = parse_grid_pinpoints("(1x1),...,(6x6)", 384)
    assert len(pinpoints) == 36 and pinpoints[:3] == ((384, 384), (384, 768), (384, 1152))
    assert pinpoints[6] == (768, 384) and pinpoints[-1] == (2304, 2304)


def test_config_validation_messages():
    with pytest.raises(ValueError, match="mm_projector_type='mlp2x_relu'"):
        tiny_model(vocab_size=64, mm_projector_type="mlp2x_relu")
    with pytest.raises(ValueError, match="mm_patch_merge_type='spatial'"):
        tiny_model(vocab_size=64, mm_patch_merge_type="spatial")
    with pytest.raises(ValueError, match="tokenizer_padding_side='middle'"):
        tiny_model(vocab_size=64, tokenizer_padding_side="middle")


def test_return_dict_false_gives_the_tuple(model):
    ids = torch.tensor([[7, 8, 9, 10]])
    with torch.no_grad():
        as_dict = model(input_ids=ids, labels=ids)
        as_tuple = model(input_ids=ids, labels=ids, return_dict=False)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], as_dict.loss)
    torch.testing.assert_close(as_tuple[1], as_dict.logits)


def test_process_images_takes_a_per_call_mode(model, make_image):
    """The pad handling of multi-image samples, asked for per call instead of through a stand-in config."""
    anyres = tiny_model(seed=4, vocab_size=512).config
    assert anyres.image_aspect_ratio.startswith("anyres")
    image = make_image(300, 200, seed=3)
    per_call = process_images([image], PROC, anyres, image_aspect_ratio="pad")
    torch.testing.assert_close(per_call, process_images([image], PROC, model.config))
    assert process_images([image], PROC, anyres).dim() == 5, "without it, the config's anyres crops"


def test_the_spec_is_built_once_per_config_state_and_a_call_can_override_the_mode(make_image):
    model = tiny_model(seed=4, vocab_size=512, image_aspect_ratio="pad")
    assert model.mm_spec is model.mm_spec, "not re-validated on every forward"
    model.config.image_aspect_ratio = "square"  # what lmms-eval's stock wrapper does between requests
    assert model.mm_spec.aspect_ratio.name == "square"
    model.config.image_aspect_ratio = "pad"
    image = make_image(200, 300, seed=5)
    pixels = process_images([image], PROC, model.config)
    ids = torch.tensor([[5, -200, 6]])
    with torch.no_grad():
        by_config = model(input_ids=ids, images=pixels, image_sizes=[image.size]).logits
        model.config.image_aspect_ratio = "anyres_max_9"
        model.config.image_grid_pinpoints = [[384, 384], [384, 768]]
        by_call = model(input_ids=ids, images=pixels, image_sizes=[image.size], image_aspect_ratio="pad").logits
    torch.testing.assert_close(by_call, by_config)
