"""Bad samples: each kind is skipped with a warning naming id, file and reason, counted, and limited."""

import logging

import pytest

from llava.data.bad_samples import BadSample, BadSampleLedger, SkipLimitExceeded
from llava.data.dataset import DataConfig, LazySupervisedDataset
from llava.data.mixture import load_mixture
from llava.processing import SigLipImageProcessor
from llava.testing import tiny_config
from llava.testing.synthetic import write_broken_corpus


@pytest.fixture
def broken(tmp_path, qwen_tokenizer):
    path, expected = write_broken_corpus(tmp_path, good=4)
    dataset = LazySupervisedDataset(
        load_mixture(str(path), seed=0), tokenizer=qwen_tokenizer, image_processor=SigLipImageProcessor(size=(56, 56)),
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
        for index in range(len(dataset)):  # one epoch in order; a bad record is replaced by the next good one
            item = dataset[index]
            assert item["id"].startswith("s0-"), "only good samples reach the batch"
            ledger.record(seen=1 + len(item["skipped"]), events=item["skipped"])
    # Counts are per attempt: a run of bad records is met again when the record before it is replaced.
    assert set(ledger.by_kind) == set(expected.values())
    assert {e["sample_id"] for examples in ledger.examples.values() for e in examples} <= set(expected)
    assert ledger.by_source == {str(path): ledger.skipped} and ledger.skipped >= len(expected)
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


def test_ledger_roundtrip_and_merge():
    a = BadSampleLedger()
    a.record(seen=3, events=[{"sample_id": "1", "source": "a", "kind": "k", "reason": "r"}], truncated=1)
    b = BadSampleLedger.from_dict(a.to_dict(), max_share=0.01, min_seen=200)
    b.merge(a)
    assert (b.seen, b.skipped, b.truncated, dict(b.by_kind)) == (6, 2, 2, {"k": 2})


def test_all_bad_is_an_error(tmp_path, qwen_tokenizer):
    (tmp_path / "d.json").write_text('[{"id": "a", "conversations": []}]')
    dataset = LazySupervisedDataset(
        load_mixture(str(tmp_path / "d.json"), seed=0), tokenizer=qwen_tokenizer,
        image_processor=SigLipImageProcessor(size=(56, 56)), model_config=tiny_config(image_size=56), data=DataConfig())
    with pytest.raises(RuntimeError, match="every one of the 1 samples is bad"):
        dataset[0]
