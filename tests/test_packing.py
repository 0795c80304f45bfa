"""Packed rows (``--packing``): the same loss, gradients and per-sample logits as the samples padded in a batch or
run one at a time, for Baseline (``pad`` images) and +Grid+Manager (anyres_max_9 with managers), with images of
several aspect ratios and a text-only sample; and the segment-wise attention against transformers' block-diagonal
mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import (
    and_masks,
    causal_mask_function,
    find_packed_sequence_indices,
    packed_sequence_mask_function,
    sdpa_mask,
)

from llava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from llava.data.collator import DataCollatorForSupervisedDataset
from llava.data.packing import PackedCollator
from llava.mm_utils import process_images
from llava.model.segments import SEGMENT_ATTENTION, packed_kwargs, positions_in_segments, segment_implementation
from llava.processing import SigLipImageProcessor
from llava.testing import tiny_model

PROC = SigLipImageProcessor()
VARIANTS = {
    "baseline": {"image_aspect_ratio": "pad"},
    "grid_manager": {"manager": {"type": "saum", "expert_layers": [2, 3, 4], "inject_layers": [0, 2]}},
}


def _items(model, make_image) -> list[dict]:
    """Two images of different aspect ratios and one text-only sample, as the dataset yields them."""
    items = []
    samples = (((500, 300), [5, IMAGE_TOKEN_INDEX, 6, 7, 8, 9]), ((300, 700), [10, 11, IMAGE_TOKEN_INDEX, 12]),
               (None, [13, 14, 15, 16, 17]))  # fmt: skip
    for seed, (size, text) in enumerate(samples):
        ids = torch.tensor(text)
        labels = torch.where(torch.arange(len(text)) >= len(text) // 2, ids, torch.full_like(ids, IGNORE_INDEX))
        if size is None:
            crop = model.mm_spec.crop_size
            images, sizes, modalities = [torch.zeros(1, 3, crop, crop)], [(crop, crop)], ["text"]
        else:
            image = make_image(*size, seed=seed)
            crops = process_images([image], PROC, model.config)[0]
            images, sizes, modalities = [crops if crops.dim() == 4 else crops[None]], [image.size], ["image"]
        items.append({"input_ids": ids, "labels": labels, "images": images, "image_sizes": sizes,
                      "modalities": modalities})  # fmt: skip
    return items


def _run(model, batch: dict, items: int) -> tuple[torch.Tensor, dict, torch.Tensor]:
    batch = {k: v for k, v in batch.items() if k != "data_report"}
    model.zero_grad()
    out = model(**batch, num_items_in_batch=items)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.loss.detach(), grads, out.logits.detach()


def _supervised(items: list[dict]) -> int:
    return sum(int((item["labels"][1:] != IGNORE_INDEX).sum()) for item in items)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_packed_row_equals_the_padded_batch_and_each_sample(variant, make_image):
    torch.manual_seed(0)
    model = tiny_model(seed=4, vocab_size=256, **VARIANTS[variant])
    model.set_attn_implementation(segment_implementation("sdpa"))
    items = _items(model, make_image)
    total = _supervised(items)
    padded = DataCollatorForSupervisedDataset(pad_token_id=model.config.pad_token_id)(items)
    packed = PackedCollator()(items)
    loss_pad, grads_pad, logits_pad = _run(model, padded, total)
    loss_pack, grads_pack, logits_pack = _run(model, packed, total)
    torch.testing.assert_close(loss_pack, loss_pad, rtol=1e-5, atol=1e-6)
    assert grads_pack.keys() == grads_pad.keys() and any("vision_tower" in n for n in grads_pad)
    if variant == "grid_manager":
        assert any("managers" in n for n in grads_pad)
    for name in grads_pad:
        torch.testing.assert_close(grads_pack[name], grads_pad[name], rtol=1e-4, atol=1e-6, msg=name)
    one_at_a_time, start = torch.zeros(()), 0
    for row, item in enumerate(items):
        loss, _, logits = _run(model, DataCollatorForSupervisedDataset(pad_token_id=0)([item]), total)
        one_at_a_time += loss
        length = logits.shape[1]
        # The sample's logits in the packed row equal its own forward's, and the padded batch's row.
        torch.testing.assert_close(logits_pack[0, start : start + length], logits[0], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(logits_pad[row, :length], logits[0], rtol=1e-4, atol=1e-5)
        start += length
    assert start == logits_pack.shape[1]  # no padding in the row
    torch.testing.assert_close(one_at_a_time, loss_pack, rtol=1e-5, atol=1e-6)


def test_packing_refuses_attention_that_would_cross_samples(make_image):
    model = tiny_model(seed=1, vocab_size=256, image_aspect_ratio="pad")  # plain sdpa
    packed = PackedCollator()(_items(model, make_image))
    packed.pop("data_report")
    with pytest.raises(ValueError, match="segment-wise attention"):
        model(**packed)
    with pytest.raises(ValueError, match="not 'flex_attention'"):
        segment_implementation("flex_attention")


@pytest.mark.parametrize("name", list(SEGMENT_ATTENTION))
def test_segment_attention_equals_the_block_diagonal_mask(name):
    """Checked directly against transformers' own packed-sequence mask (which spends L x L compute)."""
    torch.manual_seed(0)
    lengths = (5, 1, 9, 3)
    segment_ids = torch.cat([torch.full((n,), i + 1) for i, n in enumerate(lengths)])[None]  # (1, L)
    position_ids = positions_in_segments(segment_ids)
    assert position_ids[0].tolist() == [p for n in lengths for p in range(n)]
    heads, kv_heads, dim, total = 4, 2, 8, sum(lengths)
    module = type("Attn", (torch.nn.Module,), {})()
    module.num_key_value_groups, module.is_causal, module.training = heads // kv_heads, True, False
    query = torch.randn(1, heads, total, dim)
    key, value = torch.randn(1, kv_heads, total, dim), torch.randn(1, kv_heads, total, dim)
    packed = find_packed_sequence_indices(position_ids)
    assert packed is not None
    causal_within = and_masks(causal_mask_function, packed_sequence_mask_function(packed))
    mask = sdpa_mask(batch_size=1, q_length=total, kv_length=total, mask_function=causal_within,
                     allow_is_causal_skip=False)  # fmt: skip
    expected, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=dim**-0.5)
    from transformers import AttentionInterface

    got, _ = AttentionInterface()[name](module, query, key, value, None, scaling=dim**-0.5,
                                        **packed_kwargs(segment_ids))  # fmt: skip
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def _dataset(tmp_path, qwen_tokenizer, *, max_length=None, **config):
    from llava.data.dataset import DataConfig, LazySupervisedDataset
    from llava.data.mixture import load_mixture
    from llava.testing import tiny_config
    from llava.testing.synthetic import write_corpus

    path = write_corpus(tmp_path, count=6, template="qwen_1_5", text_only=2, multi_image=2)
    return LazySupervisedDataset(
        load_mixture(str(path), seed=0), tokenizer=qwen_tokenizer, image_processor=PROC.__class__(size=(56, 56)),
        model_config=tiny_config(image_size=56, **config),
        data=DataConfig(template="qwen_1_5", image_folder=str(tmp_path), max_length=max_length),
    )  # fmt: skip


@pytest.mark.parametrize("config", [{}, {"image_aspect_ratio": "pad"}], ids=["anyres_max_9", "pad"])
@pytest.mark.parametrize("max_length", [None, 300])
def test_expanded_lengths_are_what_the_model_splices(tmp_path, qwen_tokenizer, config, max_length):
    """The planner's length, from the image headers alone, equals the spliced length of the built item (or bounds
    it, when truncation dropped an image whole)."""
    from llava.model.image_layout import packed_length

    dataset = _dataset(tmp_path, qwen_tokenizer, max_length=max_length, **config)
    lengths, text_only, issues = dataset.packing_lengths()
    assert not issues and sum(text_only) == 2
    for index in range(len(dataset)):
        item = dataset[index]
        placed = [c for c, m in zip(item["images"], item["modalities"], strict=True) if m == "image"]
        sizes = item["image_sizes"][: len(placed)]
        expected = len(item["input_ids"]) - len(placed)
        expected += sum(packed_length(dataset.spec, c.shape[0], s) for c, s in zip(placed, sizes, strict=True))
        if item["truncated"]:
            assert expected <= lengths[index] == max_length
        else:
            assert lengths[index] == expected, index


@pytest.mark.parametrize("strategy", ["greedy", "first_fit"])
def test_the_row_planner_respects_the_budget_and_draws_every_sample_once(strategy):
    from llava.data.packing import PackedBatchSampler

    lengths = [700, 30, 7300, 150, 2900, 0, 800, 1200, 60, 5000]  # #5 was found bad while planning
    text_only = [False, True, False, True, False, False, False, False, True, False]
    for grouped in (False, True):
        options = {"max_tokens": 8192, "seed": 3, "grouped": grouped, "text_only": text_only, "strategy": strategy}
        sampler = PackedBatchSampler(lengths, **options)
        rows = list(sampler)
        assert sorted(i for row in rows for i in row) == [i for i, n in enumerate(lengths) if n]
        assert all(sum(lengths[i] for i in row) <= 8192 for row in rows)
        if grouped:  # a row is all-image or all-text
            assert all(len({text_only[i] for i in row}) == 1 for row in rows)
        assert rows == list(PackedBatchSampler(lengths, **options))
        sampler.set_epoch(1)
        assert list(sampler) != rows  # a new order each epoch
    with pytest.raises(ValueError, match="packing_max_tokens=4096 is shorter than 2 samples"):
        PackedBatchSampler(lengths, max_tokens=4096, seed=0)
    with pytest.raises(ValueError, match="packing strategy 'best'"):
        PackedBatchSampler(lengths, max_tokens=8192, seed=0, strategy="best")


def test_rows_mix_modalities_unless_grouped():
    """Without grouping nothing asks for modality-pure rows: a text sample must not end an image row."""
    from llava.data.packing import PackedBatchSampler

    lengths, text_only = [100] * 40, [index % 2 == 1 for index in range(40)]
    for strategy in ("greedy", "first_fit"):
        mixed = PackedBatchSampler(lengths, max_tokens=1000, seed=0, text_only=text_only, strategy=strategy).plan()
        assert [len(row) for row in mixed] == [10] * 4, strategy
        pure = PackedBatchSampler(
            lengths, max_tokens=1000, seed=0, text_only=text_only, strategy=strategy, grouped=True
        ).plan()
        assert sorted(len(row) for row in pure) == [10] * 4, strategy  # 20 of each modality: two full rows each


def test_first_fit_fills_rows_better_than_greedy_on_the_stage_2_mix():
    """On a mix of LLaVA-OV-like lengths (anyres images of 730-7300 tokens, ~10% short text samples), first fit
    needs fewer rows than the greedy cut; both plan the same samples."""
    from llava.data.packing import PackedBatchSampler

    rng = np.random.default_rng(0)
    text_only = (rng.random(2000) < 0.1).tolist()
    lengths = [int(rng.integers(50, 900)) if text else int(rng.integers(730, 7300)) for text in text_only]
    plans = {
        strategy: PackedBatchSampler(lengths, max_tokens=16384, seed=1, text_only=text_only, strategy=strategy).plan()
        for strategy in ("greedy", "first_fit")
    }
    fill = {name: sum(lengths) / (16384 * len(plan)) for name, plan in plans.items()}
    assert sorted(i for row in plans["first_fit"] for i in row) == list(range(2000))
    assert fill["first_fit"] > 0.95 and fill["greedy"] < fill["first_fit"] - 0.05, fill


def test_packing_flags_are_checked_when_parsed():
    import transformers

    from llava.train.arguments import TrainingArguments

    parser = transformers.HfArgumentParser(TrainingArguments)
    (args,) = parser.parse_args_into_dataclasses(
        ["--output_dir", "unused", "--packing", "True", "--packing_strategy", "greedy", "--model_max_length", "64"]
    )
    assert args.packing_strategy == "greedy" and args.packing_max_tokens == 64
    with pytest.raises(SystemExit):  # argparse names the choices
        parser.parse_args_into_dataclasses(["--output_dir", "unused", "--packing_strategy", "best"])
    with pytest.warns(UserWarning, match="packing_strategy has no effect without --packing True"):
        parser.parse_args_into_dataclasses(["--output_dir", "unused", "--packing_strategy", "greedy"])
