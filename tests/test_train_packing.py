"""Packing through the train entry, in the configurations docs/training.md recommends: a row longer than
--model_max_length trains as the same samples padded, and a record that fails only at decode keeps its row within
--packing_max_tokens, counted once."""

from __future__ import annotations

import json

import pytest
import torch
from train_helpers import losses, stage2_args

from llava.model.splice import splice
from llava.train.train import train


def _one_sgd_step(assets, out, *, batch: int = 2, extra: list[str] = ()):
    """One SGD step of stage 2 (anyres_max_9, text-only and multi-image records) through the train entry."""
    argv = stage2_args(assets, assets["llm"], out, steps=1, extra=[
        "--vision_tower", str(assets["vision"]), "--image_aspect_ratio", "anyres_max_9",
        "--image_grid_pinpoints", "(1x1),...,(3x3)", "--mm_patch_merge_type", "spatial_unpad",
        "--save_strategy", "no", "--optim", "sgd", "--max_grad_norm", "0", *extra,
    ])  # fmt: skip
    argv[argv.index("--learning_rate") + 1] = "0.5"
    argv[argv.index("--per_device_train_batch_size") + 1] = str(batch)
    trainer = train(argv)
    trained = {k: v.detach().clone() for k, v in trainer.model.named_parameters() if v.requires_grad}
    return losses(out)[1], trained, trainer.train_dataset


def test_a_packed_row_longer_than_model_max_length_trains_as_the_padded_batch(assets, tmp_path):
    """The docs allow --packing_max_tokens above --model_max_length: the row holding the whole epoch (longer than
    the limit) must give the loss and the update of the same samples padded in one batch, no sample cut."""
    records = len(json.loads((assets["data"] / "stage2.json").read_text()))
    padded_loss, padded, dataset = _one_sgd_step(assets, tmp_path / "padded", batch=records)
    lengths, _, issues = dataset.packing_lengths()
    limit, row = max(lengths), sum(lengths)
    assert not issues and len(lengths) == records and limit < 1024  # no sample cut by the padded run's limit
    assert row > 2 * limit  # the row is far over the per-sample limit
    packed_loss, packed, _ = _one_sgd_step(assets, tmp_path / "packed", extra=[
        "--packing", "True", "--packing_max_tokens", str(row), "--model_max_length", str(limit),
    ])  # fmt: skip
    assert packed_loss == pytest.approx(padded_loss, rel=1e-4)
    for name, value in padded.items():
        torch.testing.assert_close(packed[name], value, rtol=1e-4, atol=1e-6, msg=name)


def _corpus_with_a_pixel_failure(folder, *, short_image: bool):
    """The stage-2 corpus plus one record whose image header reads but whose pixels do not decode, shorter than every
    other record (``short_image``: and one image record shorter still, the only one that fits its slot)."""
    from PIL import Image

    from llava.testing.synthetic import write_corpus

    path = write_corpus(folder, count=5, template="qwen_1_5", seed=4)
    records = json.loads(path.read_text())
    Image.new("RGB", (300, 200), (200, 30, 30)).save(folder / "images" / "cut.png")
    data = (folder / "images" / "cut.png").read_bytes()
    (folder / "images" / "cut.png").write_bytes(data[: len(data) // 2])
    qa = [{"from": "human", "value": "<image>\nWhat colour, please?"}, {"from": "gpt", "value": "It is red."}]
    records.append({"id": "pixels_cut", "image": "images/cut.png", "conversations": qa})
    # A text-only record, shorter than the slot but of the other modality: never the stand-in.
    records.append({"id": "text", "conversations": [{"from": "human", "value": "A"}, {"from": "gpt", "value": "B"}]})
    if short_image:
        short = [{"from": "human", "value": "<image>\nA"}, {"from": "gpt", "value": "B"}]
        records.append({"id": "short_image", "image": records[0]["image"], "conversations": short})
    path.write_text(json.dumps(records))
    return path


@pytest.mark.parametrize("short_image", [False, True], ids=["blank", "fitting_stand_in"])
def test_a_record_failing_at_decode_keeps_its_packed_row_within_budget(assets, tmp_path, monkeypatch, short_image):
    """The planner reads image headers; a record whose pixels fail later is replaced by a record that fits its
    planned slot (or by a blank item): every spliced row stays within --packing_max_tokens, and the skip counts once."""
    from llava.model import llava_qwen

    path = _corpus_with_a_pixel_failure(tmp_path / "data", short_image=short_image)
    rows: list[int] = []

    def recording_splice(**kwargs):
        result = splice(**kwargs)
        rows.append(result.inputs_embeds.shape[1])
        return result

    monkeypatch.setattr(llava_qwen, "splice", recording_splice)
    budget = 320
    argv = stage2_args(assets, assets["llm"], tmp_path / "out", steps=1, extra=[
        "--vision_tower", str(assets["vision"]), "--image_aspect_ratio", "pad", "--save_strategy", "no",
        "--packing", "True", "--packing_max_tokens", str(budget), "--num_train_epochs", "1",
    ])  # fmt: skip
    argv[argv.index("--data_path") + 1] = str(path)
    argv[argv.index("--image_folder") + 1] = str(path.parent)
    argv[argv.index("--max_steps") + 1] = "-1"
    argv[argv.index("--model_max_length") + 1] = str(budget)
    trainer = train(argv)
    lengths, _, _ = trainer.train_dataset.packing_lengths()
    assert sum(lengths) > budget  # several rows, the bad record sharing one
    assert rows and max(rows) <= budget, rows
    # The bad record's slot went to the one image record that fits it, or to a one-token blank.
    stand_in = lengths[7] if short_image else 1
    assert lengths[5] < min(lengths[:5]) and (not short_image or lengths[7] < lengths[5] > lengths[6])
    assert sum(rows) == sum(lengths) - lengths[5] + stand_in, (rows, lengths)
    report = json.loads((tmp_path / "out" / "bad_samples.json").read_text())
    assert (report["skipped"], report["by_reason"]) == (1, {"corrupt_image": 1}), report
