"""Bad samples: each kind is skipped with a warning naming id, file and reason, counted, and limited."""

import logging
from collections import Counter

import pytest

from llava.data.dataset import DataConfig, LazySupervisedDataset
from llava.data.mixture import load_mixture
from llava.processing import SigLipImageProcessor
from llava.testing import tiny_config
from llava.testing.synthetic import write_broken_corpus
from vlcommon.ledger import BadSample, BadSampleLedger, SkipLimitExceeded


@pytest.fixture
def broken(tmp_path, qwen_tokenizer):
    path, expected = write_broken_corpus(tmp_path, good=4)
    dataset = LazySupervisedDataset(
        load_mixture(str(path), seed=0),
        tokenizer=qwen_tokenizer,
        image_processor=SigLipImageProcessor(size=(56, 56)),
        model_config=tiny_config(image_size=56, image_aspect_ratio="pad"),
        data=DataConfig(image_folder=str(tmp_path)),
    )
    return path, expected, dataset


def test_each_broken_record_raises_its_kind(broken):
    _, expected, dataset = broken
    for index in range(4, len(dataset)):
        with pytest.raises(BadSample) as caught:
            dataset.build(index)
        sample = dataset.mixture.samples[index]
        sample_id = sample["id"] if isinstance(sample, dict) else f"#{index}"
        assert caught.value.kind == expected[sample_id], (sample_id, str(caught.value))


def test_an_epoch_skips_counts_and_names_every_bad_record(broken, caplog):
    path, expected, dataset = broken
    ledger = BadSampleLedger(max_share=1.0, min_seen=1)
    with caplog.at_level(logging.WARNING, logger="llava.data.dataset"):
        for index in range(len(dataset)):  # one epoch in order; a bad record is replaced by a good one
            item = dataset[index]
            assert item["id"].startswith("s0-"), "only good samples reach the batch"
            ledger.record(seen=1, events=item["skipped"])
    # Every bad record counted exactly once, the block of them in a row notwithstanding.
    assert ledger.by_kind == Counter(expected.values()) and ledger.skipped == len(expected)
    assert ledger.seen == len(dataset)
    assert {e["sample_id"] for examples in ledger.examples.values() for e in examples} <= set(expected)
    assert ledger.by_source == {str(path): ledger.skipped}
    text = caplog.text
    assert f"skipping sample 'missing_image' from {path}: image: file not found" in text
    assert "skipping sample 'unknown_role'" in text and "conversations[0].from: unknown role 'robot'" in text
    assert "image: the sample has 1 image(s) but its text has 2 <image> marker(s)" in text
    assert "skipping sample 'corrupt_image'" in text and "cannot decode" in text
    assert "skipping sample 'empty_file'" in text


def test_skip_share_limit_stops_the_run():
    ledger = BadSampleLedger(max_share=0.1, min_seen=10)
    event = {"sample_id": "x", "source": "f.json", "kind": "missing_image", "reason": "image: file not found"}
    ledger.record(seen=5, events=[event, event])  # 40%, but too few seen to judge
    ledger.check()
    ledger.record(seen=10, events=[])
    with pytest.raises(SkipLimitExceeded, match=r"2 of 15 records were skipped.*missing_image.*f.json"):
        ledger.check()


def test_one_bad_sample_threshold_for_the_ledger_and_both_train_entries():
    from llava.train.arguments import DataArguments as LlavaData
    from managertower.train.arguments import DataArguments as TowerData
    from vlcommon.callbacks import BadSampleCallback

    ledger, callback = BadSampleLedger(), BadSampleCallback()
    assert (callback.min_seen, callback.max_share) == (ledger.min_seen, ledger.max_share)
    llava = LlavaData(data_path="x.json")
    tower = TowerData(data_root="x", task="vqa")
    assert ledger.min_seen == llava.bad_sample_min_seen == tower.bad_sample_min_seen == 200
    assert ledger.max_share == llava.max_bad_sample_share == tower.max_bad_sample_share


def test_ledger_roundtrip_and_merge():
    a = BadSampleLedger()
    a.record(seen=3, events=[{"sample_id": "1", "source": "a", "kind": "k", "reason": "r"}], truncated=1)
    b = BadSampleLedger.from_dict(a.to_dict(), max_share=0.01, min_seen=200)
    b.merge(a)
    assert (b.seen, b.skipped, b.truncated, dict(b.by_kind)) == (6, 2, 2, {"k": 2})


def test_all_bad_is_an_error(tmp_path, qwen_tokenizer):
    (tmp_path / "d.json").write_text('[{"id": "a", "conversations": []}]')
    dataset = LazySupervisedDataset(
        load_mixture(str(tmp_path / "d.json"), seed=0),
        tokenizer=qwen_tokenizer,
        image_processor=SigLipImageProcessor(size=(56, 56)),
        model_config=tiny_config(image_size=56),
        data=DataConfig(),
    )
    with pytest.raises(RuntimeError, match="every one of the 1 samples is bad"):
        dataset[0]


@pytest.mark.parametrize("start", [0, 45, 90], ids=["epoch start", "middle", "epoch end"])
def test_a_block_of_bad_records_counts_once_each_and_spreads_its_stand_ins(tmp_path, qwen_tokenizer, start):
    """10 consecutive bad records among 100: 10 skips of 100 records (10%), and no good record trains much more
    than once (the next good neighbour used to stand in for the whole block: 11 times)."""
    import json

    from llava.data.collator import DATA_REPORT_KEY, DataCollatorForSupervisedDataset
    from llava.testing.synthetic import write_corpus

    path = write_corpus(tmp_path, count=100, template="qwen_1_5", seed=4, name="block.json")
    samples = json.loads(path.read_text())
    for index in range(start, start + 10):
        samples[index]["image"] = "images/nowhere.png"
    path.write_text(json.dumps(samples))
    dataset = LazySupervisedDataset(
        load_mixture(str(path), seed=0),
        tokenizer=qwen_tokenizer,
        image_processor=SigLipImageProcessor(size=(56, 56)),
        model_config=tiny_config(image_size=56, image_aspect_ratio="pad"),
        data=DataConfig(image_folder=str(tmp_path)),
    )
    collate = DataCollatorForSupervisedDataset(pad_token_id=0)
    ledger, trained = BadSampleLedger(max_share=1.0, min_seen=1), Counter()
    for first in range(0, 100, 4):  # batches of 4, as a DataLoader without shuffling draws them
        items = [dataset[index] for index in range(first, first + 4)]
        trained.update(item["id"] for item in items)
        report = collate(items)[DATA_REPORT_KEY]
        ledger.record(seen=report["seen"], events=report["skipped"])
    assert (ledger.skipped, ledger.seen) == (10, 100) and ledger.share == pytest.approx(0.1)
    assert max(trained.values()) <= 3, trained.most_common(3)
    # The stand-ins do not depend on what was drawn before (a resumed run draws the same ones).
    fresh = LazySupervisedDataset(
        dataset.mixture,
        tokenizer=qwen_tokenizer,
        image_processor=dataset.image_processor,
        model_config=dataset.model_config,
        data=dataset.data,
    )
    assert fresh[start + 9]["id"] == dataset[start + 9]["id"]


def _text_dataset(tmp_path, tokenizer, conversations, **data):
    import json

    path = tmp_path / "text.json"
    path.write_text(json.dumps([{"id": "long", "conversations": conversations}]))
    return LazySupervisedDataset(
        load_mixture(str(path), seed=0),
        tokenizer=tokenizer,
        image_processor=SigLipImageProcessor(size=(56, 56)),
        model_config=tiny_config(image_size=56, image_aspect_ratio="pad"),
        data=DataConfig(**data),
    )


def test_a_sample_cut_before_its_answer_is_skipped(tmp_path, qwen_tokenizer):
    """With LLaVA-NeXT's unmasked chat tokens (the default), the system and user turns' <|im_start|>, <|im_end|> and
    newlines are supervised: a cut before the answer left 7 of them, and the sample trained on no answer at all."""
    from llava.data.formatting import format_qwen

    conversations = [{"from": "human", "value": "word " * 60}, {"from": "gpt", "value": "Yes, a red circle."}]
    formatted = format_qwen(conversations, qwen_tokenizer)
    first_answer = formatted.answer.index(True)
    cut = _text_dataset(tmp_path, qwen_tokenizer, conversations, max_length=first_answer)
    with pytest.raises(BadSample, match="no answer token left after truncation") as caught:
        cut.build(0)
    assert caught.value.kind == "no_supervised_tokens"
    kept = _text_dataset(tmp_path, qwen_tokenizer, conversations, max_length=first_answer + 1).build(0)
    assert kept["truncated"] and kept["labels"][-1] == formatted.input_ids[first_answer]


def test_empty_answers_are_skipped_unless_kept(tmp_path, qwen_tokenizer):
    conversations = [{"from": "human", "value": "Anything?"}, {"from": "gpt", "value": ""}]
    with pytest.raises(BadSample, match=r"conversations\[1\].value: empty assistant answer") as caught:
        _text_dataset(tmp_path, qwen_tokenizer, conversations).build(0)
    assert caught.value.kind == "empty_answer"
    item = _text_dataset(tmp_path, qwen_tokenizer, conversations, keep_empty_answers=True).build(0)
    im_end = qwen_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert im_end in item["labels"].tolist()
