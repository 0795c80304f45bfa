"""ManagerTower data: VQA answer normalisation, the table builders and their skip counts, the Arrow readers, the
dataset's items and stand-ins, and MLM masking."""

from __future__ import annotations

import io
import json

import pytest
import torch
from PIL import Image

from managertower.data import synthetic
from managertower.data.answers import VQA_VOCABULARY_FILE, answer_vocabulary, normalize_word, soft_labels
from managertower.data.arrow import COLUMNS, TableKind, Task, read_table, write_table
from managertower.data.collate import TwoTowerCollator
from managertower.data.datasets import DataConfig, TwoTowerDataset
from managertower.testing import tiny_arrow, tiny_tokenizer


@pytest.fixture(scope="module")
def arrow(tmp_path_factory):
    """Every table builder run once on generated sources with one planted bad record of each kind."""
    return tiny_arrow(tmp_path_factory.mktemp("arrow"), bad=True)


def _skipped(out, name) -> dict:
    return json.loads((out / f"{name}.skipped.json").read_text())


def test_normalize_word_follows_the_vqa_evaluation():
    assert normalize_word("Two ") == "2"
    assert normalize_word("the dog.") == "dog"
    assert normalize_word("Yes!") == "yes"
    assert normalize_word("dont know") == "don't know"
    assert normalize_word("1,000") == "1000"  # a thousands comma goes, with every other mark in the answer
    assert normalize_word("2.5") == "2.5"  # a decimal point stays
    assert normalize_word("black/white") == "black white"  # a mark inside a word splits it
    assert normalize_word("an apple") == "apple"
    # Apostrophes and colons are not among the evaluation's marks: they stay.
    assert normalize_word("don't") == normalize_word("dont") == "don't"
    assert normalize_word("10:30") == "10:30" and normalize_word("men's") == "men's"
    # "(" follows a space in the input and is deleted; ")" touches no space and splits (a trailing space, dropped).
    assert normalize_word("yes (left)") == "yes left"


def test_answer_vocabulary_and_soft_labels():
    answers = ["Yes"] * 9 + ["yes."] * 3 + ["no"] * 9 + ["two"] * 8 + ["2"]
    assert answer_vocabulary(answers) == ["yes", "2", "no"]  # yes 12; "2" and "no" 9 each, ties alphabetical
    ids = {a: i for i, a in enumerate(answer_vocabulary(answers))}
    labels, scores = soft_labels(["yes"] * 7 + ["2", "two", "maybe"], ids)
    assert labels == [0, 1] and scores == pytest.approx([1.0, 0.6])


def test_caption_builder_tables_and_skips(arrow):
    train = read_table(arrow / "coco_caption_karpathy_train.arrow", TableKind.CAPTIONS)
    assert train.column_names == list(COLUMNS[TableKind.CAPTIONS])
    # 12 images in turn train/restval/val/test: train has images 0, 4, 8; image 0 is missing.
    assert train.column("image_id").to_pylist() == ["4", "8"]
    assert _skipped(arrow, "coco_caption_karpathy_train")["by_reason"] == {"missing_image": 4}  # its 4 captions
    assert _skipped(arrow, "coco_caption_karpathy_restval")["by_reason"] == {"corrupt_image": 4}
    val = _skipped(arrow, "coco_caption_karpathy_val")
    assert val["by_reason"] == {"empty_text": 1} and val["seen"] == 12  # image 2's blank caption, of 3 images x 4
    assert Image.open(io.BytesIO(train.column("image")[0].as_py())).size[1] == 48


def test_task_builders_skip_unknown_answers_and_labels(arrow):
    vocabulary = json.loads((arrow / VQA_VOCABULARY_FILE).read_text())
    assert set(vocabulary) <= set(synthetic.VOCABULARY) and "zebra" not in vocabulary
    assert _skipped(arrow, "vqav2_train")["by_reason"] == {"unknown_answer": 1}
    test = read_table(arrow / "vqav2_test.arrow", TableKind.VQA)
    assert test.column("answer_labels").to_pylist()[0] == [[], [], []]  # test questions carry no answers
    assert _skipped(arrow, "nlvr2_train")["by_reason"] == {"unknown_label": 1}
    assert _skipped(arrow, "snli_ve_train")["by_reason"] == {"unknown_label": 1}
    sbu = sorted(p.name for p in arrow.glob("sbu_*.arrow"))
    assert sbu == ["sbu_0.arrow", "sbu_1.arrow"]  # 8 images in shards of 5


def test_datasets_index_one_sample_per_distinct_text(arrow):
    tok, config = tiny_tokenizer(), DataConfig(image_size=32, transform="albef", max_text_len=12)
    coco = TwoTowerDataset(arrow, Task.PRETRAIN, "train", tokenizer=tok, config=config)
    # train + restval captions (3 distinct of 4 per image; restval's images 1 (corrupt, dropped) 5, 9), VG's 2
    # distinct phrases of 3 for 6 images, SBU's 8 pairs.
    assert len(coco) == 2 * 3 + 2 * 3 + 6 * 2 + 8
    vqa = TwoTowerDataset(arrow, Task.VQA, "train", tokenizer=tok, config=DataConfig(image_size=32, transform="albef"))
    assert len(vqa) == 3 * 48 - 1 + 3 * 24  # train (one question skipped at conversion) + val
    item = vqa[0]
    assert item["pixel_values"].shape == (3, 32, 32) and item["input_ids"].shape == (50,)
    assert len(item["vqa_labels"]) == len(item["vqa_scores"]) > 0 and item["skipped"] == []
    nlvr2 = TwoTowerDataset(arrow, Task.NLVR2, "val", tokenizer=tok, config=config)
    assert {nlvr2[i]["label"] for i in range(len(nlvr2))} == {0, 1} and nlvr2[0]["pixel_values_1"].shape == (3, 32, 32)
    snli = TwoTowerDataset(arrow, Task.SNLI_VE, "test", tokenizer=tok, config=config)
    assert sorted({snli[i]["label"] for i in range(len(snli))}) == [0, 1, 2]
    text = tok.decode(snli[0]["input_ids"], skip_special_tokens=True)
    assert text.startswith("the shape is")  # the hypothesis alone: the premise is the image


def test_dataset_skips_bad_records_at_read_time(tmp_path):
    good = io.BytesIO()
    synthetic.Scene("red", "circle", "left").draw(32, __import__("numpy").random.default_rng(0)).save(good, "JPEG")
    write_table(tmp_path / "vqav2_train.arrow", TableKind.VQA, {
        "image": [good.getvalue(), b"not an image"], "questions": [["q a", "q b"], ["q c"]],
        "answers": [[["red"], ["x"]], [["red"]]], "answer_labels": [[[0], []], [[1]]],
        "answer_scores": [[[1.0], []], [[1.0]]], "image_id": [1, 2], "question_id": [[1, 2], [3]],
        "split": ["train", "train"],
    })  # fmt: skip
    write_table(tmp_path / "vqav2_val.arrow", TableKind.VQA, {k: [] for k in COLUMNS[TableKind.VQA]})
    config = DataConfig(image_size=16, transform="albef", answer_classes=2)
    data = TwoTowerDataset(tmp_path, Task.VQA, "train", tokenizer=tiny_tokenizer(), config=config)
    assert [(e.sample_id, e.kind) for e in data.issues] == [("vqav2_train.arrow:0:1", "unknown_answer")]
    assert len(data) == 2
    item = data[1]  # question c's image is corrupt: question a stands in, and the skip is reported once
    assert [e["kind"] for e in item["skipped"]] == ["corrupt_image"]
    assert item["question_id"] == 1


def test_augmentation_is_seeded_by_epoch_and_index(arrow):
    config = DataConfig(image_size=32, transform="albef_randaug_wc", draw_false_image=True, seed=3)
    data = TwoTowerDataset(arrow, Task.F30K, "train", tokenizer=tiny_tokenizer(), config=config)
    first = data[2]
    assert torch.equal(first["pixel_values"], data[2]["pixel_values"])
    data.set_epoch(1)
    assert not torch.equal(first["pixel_values"], data[2]["pixel_values"])
    assert first["false_pixel_values"].shape == (3, 32, 32)
    ids = data.image_ids
    assert ids[0] == ids[1] == ids[2] and ids[3] != ids[0]  # three captions of the first image


def test_mlm_masks_only_real_tokens(arrow):
    tok = tiny_tokenizer()
    data = TwoTowerDataset(arrow, Task.F30K, "train", tokenizer=tok, config=DataConfig(image_size=16, transform="clip"))
    torch.manual_seed(0)
    batch = TwoTowerCollator(tokenizer=tok, mlm_probability=0.15)([data[i] for i in range(len(data))])
    special = torch.stack([data[i]["special_tokens_mask"] for i in range(len(data))]).bool()
    masked = batch["mlm_labels"] != -100
    assert not (masked & special).any() and masked.any()
    assert torch.equal(batch["mlm_labels"][masked], batch["input_ids"][masked])  # labels are the original ids
    assert torch.equal(batch["mlm_input_ids"][~masked], batch["input_ids"][~masked])
    share = masked.sum() / (~special).sum()
    assert 0.05 < share < 0.3
    assert batch["data_report"]["seen"] == len(data)
