"""The budget tool: the paper's parameter and manager multiply-add numbers, and meta counts equal real forwards."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from llava.constants import IMAGE_TOKEN_INDEX
from llava.mm_utils import process_images
from llava.model import LlavaQwenForCausalLM
from llava.model.config import ov_0p5b_config
from llava.processing import SigLipImageProcessor
from llava.testing.tiny import BENCH_SIZES, tiny_config
from llava.tools.budget import budget, main, variant_config
from llava.tools.flops import count_forward
from llava.variants import VARIANTS
from vlcommon.flops import flop_counter

# One projector pass over a 729-token crop of so400m features: 729 x (1152 x 896 + 896 x 896) multiply-adds.
SO400M_PROJECTOR_PASS = 729 * (1152 * 896 + 896 * 896)


@pytest.fixture(scope="module")
def real_size():
    return {row.variant: row for row in budget(ov_0p5b_config(), image_size=(384, 384), text_tokens=32)}


def test_real_size_reproduces_the_papers_parameters_and_manager_macs(real_size):
    assert real_size["Baseline"].params["total"] == 893_618_208  # Table IV: 893.62M
    assert real_size["+Manager"].params["total"] - 893_618_208 == 6 * 13 * 896
    assert real_size["+Manager"].params["managers"] == 69_888
    managed, base = real_size["+Manager"], real_size["Baseline"]
    # Table IV: +17.39 GFLOPs (fvcore multiply-adds) = the 13 experts through the projector.
    assert managed.expert_projection == 13 * SO400M_PROJECTOR_PASS == 17_390_370_816
    assert base.macs.projector == SO400M_PROJECTOR_PASS
    # Executed: V_26 is both an expert and the main features, so 12 extra passes; the rest of the model is unchanged.
    assert managed.macs.total - base.macs.total == 12 * SO400M_PROJECTOR_PASS
    assert (managed.macs.tower, managed.macs.llm) == (base.macs.tower, base.macs.llm)
    assert managed.macs.manager_rows == 729  # the newline gets nothing
    assert managed.aggregation == 6 * 13 * 729 * 896  # elementwise, reported apart
    assert base.macs.crops == 1 and base.macs.visual_tokens == 730 and base.macs.sequence == 32 + 730


def test_real_size_grid_counts_follow_the_crops(real_size):
    grid, base = real_size["+Grid"], real_size["Baseline"]
    assert grid.macs.crops == 2 and grid.macs.tower == 2 * base.macs.tower  # a 384 x 384 image: base + one crop
    assert grid.macs.visual_tokens == 729 + 27 * 28  # base crop, then 27 rows of 27 tokens + newline
    assert real_size["+Grid+Manager"].expert_projection == 2 * 13 * SO400M_PROJECTOR_PASS
    assert grid.params == base.params


def _real_counts(model, image_size, text_tokens: int) -> tuple[int, int]:
    """(forward, forward + backward) multiply-adds of the model's own forward on real CPU tensors."""
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (*image_size[::-1], 3), dtype=np.uint8))
    pixels = process_images([image], SigLipImageProcessor(), model.config)
    pixels = pixels if isinstance(pixels, list) else list(pixels if pixels.dim() == 5 else pixels[:, None])
    ids = torch.tensor([list(range(10, 10 + text_tokens)) + [IMAGE_TOKEN_INDEX]])
    with flop_counter() as counter:
        logits = model(input_ids=ids, images=pixels, image_sizes=[image.size]).logits
        forward = counter.get_total_flops()
        logits.sum().backward()
    return forward // 2, counter.get_total_flops() // 2


@pytest.mark.parametrize("variant", [v.label for v in VARIANTS])
def test_meta_count_equals_the_real_forward(variant):
    config = variant_config(tiny_config(**BENCH_SIZES["tiny"]), variant)
    torch.manual_seed(0)
    real = LlavaQwenForCausalLM(config)
    with torch.device("meta"):
        meta = LlavaQwenForCausalLM(config)
    counted = count_forward(meta, (500, 300), text_tokens=12)
    forward, train = _real_counts(real, (500, 300), text_tokens=12)
    assert counted.total == forward  # meta runs the attention math, the real CPU forward SDPA's fused kernel
    # The fused kernel also recomputes Q K^T in backward: one more (L x L x width) product per attention layer.
    vision, crop_tokens = config.vision_config, 27 * 27
    recompute = (
        vision.num_hidden_layers * counted.crops * crop_tokens**2 * vision.hidden_size
        + config.num_hidden_layers * counted.sequence**2 * config.hidden_size
    )
    assert train - counted.train == recompute


def test_cpu_attention_would_count_zero_without_our_mapping():
    from torch.utils.flop_counter import FlopCounterMode

    query = torch.randn(1, 2, 16, 8)
    with FlopCounterMode(display=False) as plain, torch.no_grad():
        torch.nn.functional.scaled_dot_product_attention(query, query, query)
    with flop_counter() as ours, torch.no_grad():
        torch.nn.functional.scaled_dot_product_attention(query, query, query)
    assert plain.get_total_flops() == 0
    assert ours.get_total_flops() == 2 * 2 * (2 * 16 * 16 * 8)  # Q K^T and P V, 2 FLOPs per multiply-add


def test_cli_on_a_checkpoint_uses_its_own_managers_and_times_every_variant(tmp_path, capsys):
    manager = {"type": "saum", "expert_layers": [2, 4], "inject_layers": [1]}
    tiny_config(manager=manager, **BENCH_SIZES["tiny"]).save_pretrained(tmp_path)
    rows = main(
        [
            "--config",
            str(tmp_path),
            "--image",
            "200x150",
            "--text-tokens",
            "8",
            "--time",
            "--reps",
            "1",
            "--new-tokens",
            "2",
            "--json",
            str(tmp_path / "budget.json"),
        ]
    )
    out = capsys.readouterr().out
    assert "| Baseline |" in out and "| +Grid+Manager |" in out and "+Manager vs Baseline: +128 parameters" in out
    assert [row.variant for row in rows] == [v.label for v in VARIANTS]
    assert all(row.train_ms > 0 and row.infer_ms > 0 for row in rows)
    assert rows[1].params["managers"] == 1 * 2 * 64
    saved = json.loads((tmp_path / "budget.json").read_text())
    assert saved[3]["macs"]["crops"] == rows[3].macs.crops


def test_bad_config_and_image_are_rejected(capsys):
    with pytest.raises(ValueError, match="neither a preset"):
        main(["--config", "no/such/dir"])
    with pytest.raises(SystemExit):
        main(["--config", "tiny", "--image", "640by480"])
    assert "expected WIDTHxHEIGHT" in capsys.readouterr().err
