"""Data pipeline: mixtures and sampling strategies, items, truncation after image expansion, collator."""

import json
import math

import pytest
import torch

from llava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from llava.data.collator import DATA_REPORT_KEY, DataCollatorForSupervisedDataset
from llava.data.dataset import DataConfig, LazySupervisedDataset
from llava.data.mixture import load_mixture, parse_data_path, select
from llava.model.config import MultimodalSpec
from llava.model.image_layout import packed_length
from llava.model.images import ImageBatch, encode_images
from llava.processing import SigLipImageProcessor
from llava.testing import tiny_config, tiny_model
from llava.testing.synthetic import write_corpus


def _records(tmp_path, name, count):
    path = tmp_path / name
    path.write_text(json.dumps([{"id": f"{name}-{i}", "conversations": []} for i in range(count)]))
    return path


@pytest.mark.parametrize(
    "strategy,expected",
    [
        ("all", list(range(10))),
        ("first:3", [0, 1, 2]),
        ("end:3", [7, 8, 9]),
        ("first:25%", [0, 1, 2]),
        ("end:10%", [9]),
        ("first:50", list(range(10))),
    ],
)
def test_sampling_strategies(strategy, expected):
    import random

    assert select(10, strategy, random.Random(0)) == expected


def test_random_strategy_is_deterministic_and_a_subset():
    import random

    a = select(100, "random:7%", random.Random("1:x.json"))
    assert a == select(100, "random:7%", random.Random("1:x.json"))
    assert len(a) == math.ceil(7 * 100 / 100) and len(set(a)) == 7 and a != list(range(7))
    assert a != select(100, "random:7%", random.Random("2:x.json"))


@pytest.mark.parametrize("bad", ["some:3", "first:-1", "first:150%", "random"])
def test_bad_strategy_is_a_clear_error(bad):
    import random

    with pytest.raises(ValueError, match="sampling_strategy"):
        select(10, bad, random.Random(0))


def test_yaml_mixture_with_relative_paths_and_percentages(tmp_path):
    _records(tmp_path, "a.json", 10)
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps({"id": f"b-{i}"}) for i in range(4)) + "\n{broken\n")
    (tmp_path / "mix.yaml").write_text(
        "datasets:\n  - json_path: a.json\n    sampling_strategy: end:20%\n"
        "  - json_path: b.jsonl\n    sampling_strategy: random:2\n    image_folder: /imgs\n"
    )
    mixture = load_mixture(str(tmp_path / "mix.yaml"), seed=3)
    ids = [s["id"] for s in mixture.samples]
    assert ids[:2] == ["a.json-8", "a.json-9"] and len(ids) == 4 and all(i.startswith("b-") for i in ids[2:])
    assert ids == [s["id"] for s in load_mixture(str(tmp_path / "mix.yaml"), seed=3).samples]
    assert mixture.source_of(3).image_folder == "/imgs"
    assert len(mixture.issues) == 1 and mixture.issues[0].sample_id == "line 5"


def test_brace_list_and_errors(tmp_path):
    _records(tmp_path, "x.json", 2)
    _records(tmp_path, "y.json", 3)
    assert [e.path.name for e in parse_data_path(f"{tmp_path}/{{x,y}}.json")] == ["x.json", "y.json"]
    assert len(load_mixture(f"{tmp_path}/{{x,y}}.json", seed=0)) == 5
    (tmp_path / "bad.yaml").write_text("datasets:\n  - path: x.json\n")
    with pytest.raises(ValueError, match=r"datasets\[0\] needs a json_path"):
        load_mixture(str(tmp_path / "bad.yaml"), seed=0)
    with pytest.raises(ValueError, match="no such file"):
        load_mixture(str(tmp_path / "missing.json"), seed=0)


def _dataset(tmp_path, qwen_tokenizer, *, template="qwen_1_5", max_length=None, count=3, unmask=True, **config):
    path = write_corpus(tmp_path, count=count, template=template, text_only=1, multi_image=1)
    model_config = tiny_config(image_size=56, **config)
    return LazySupervisedDataset(
        load_mixture(str(path), seed=0),
        tokenizer=qwen_tokenizer,
        image_processor=SigLipImageProcessor(size=(56, 56)),
        model_config=model_config,
        data=DataConfig(
            template=template, image_folder=str(tmp_path), max_length=max_length, unmask_chat_tokens=unmask
        ),
    )


def test_items_single_multi_and_text_only(tmp_path, qwen_tokenizer):
    dataset = _dataset(tmp_path, qwen_tokenizer)  # anyres_max_9
    single, multi, text = dataset[0], dataset[3], dataset[4]
    assert single["modalities"] == ["image"] and single["images"][0].shape[0] > 1  # base + grid crops
    assert multi["modalities"] == ["image", "image"] and [c.shape[0] for c in multi["images"]] == [1, 1]  # pad each
    assert text["modalities"] == ["text"] and text["images"][0].abs().sum() == 0
    assert (single["input_ids"] == IMAGE_TOKEN_INDEX).sum() == 1 and (
        multi["input_ids"] == IMAGE_TOKEN_INDEX
    ).sum() == 2
    assert dataset.modality_lengths[0] > 0 and dataset.modality_lengths[4] < 0


def test_dataset_labels_follow_the_golden_masking(tmp_path, qwen_tokenizer):
    """The marker after the question moves to the front (preprocess_multimodal) and labels supervise the answers."""
    (tmp_path / "one.json").write_text(
        json.dumps(
            [{"id": "g", "conversations": [{"from": "human", "value": "Hi there"}, {"from": "gpt", "value": "Hello."}]}]
        )
    )
    dataset = LazySupervisedDataset(
        load_mixture(str(tmp_path / "one.json"), seed=0),
        tokenizer=qwen_tokenizer,
        image_processor=SigLipImageProcessor(size=(56, 56)),
        model_config=tiny_config(image_size=56),
        data=DataConfig(unmask_chat_tokens=False),
    )
    item = dataset[0]
    expected_ids = qwen_tokenizer(
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "Hi there<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n"
    ).input_ids
    assert item["input_ids"].tolist() == expected_ids
    supervised = qwen_tokenizer.decode([t for t, l in zip(expected_ids, item["labels"].tolist()) if l != IGNORE_INDEX])
    assert supervised == "<|im_start|>assistant\nHello.<|im_end|>\n"


def test_packed_length_matches_the_model(make_image):
    model = tiny_model(image_size=56)
    spec = MultimodalSpec.from_config(model.config)
    from llava.mm_utils import process_images

    processor = SigLipImageProcessor(size=(56, 56))
    for size in [(56, 56), (300, 80), (90, 400), (1000, 900)]:
        crops = process_images([make_image(*size)], processor, model.config)[0]
        with torch.no_grad():
            encoded = encode_images(model.model, ImageBatch.from_inputs([crops], [size]), spec)
        assert encoded.lengths == [packed_length(spec, crops.shape[0], size)], size


def _one_image_a_turn(dataset):
    """Record 3 (two images) with one image and one answer per turn, so a cut between them keeps an answer."""
    record = dataset.mixture.samples[3]
    record["conversations"] = [
        {"from": "human", "value": "<image>\nFirst colour?"},
        {"from": "gpt", "value": "Red."},
        {"from": "human", "value": "<image>\nSecond colour?"},
        {"from": "gpt", "value": "Blue."},
    ]
    return dataset


def test_truncation_after_expansion_never_cuts_an_image(tmp_path, qwen_tokenizer):
    full = _one_image_a_turn(_dataset(tmp_path / "a", qwen_tokenizer, image_aspect_ratio="pad"))[3]  # 17 tokens each
    ids = full["input_ids"].tolist()
    _first, second = [i for i, t in enumerate(ids) if t == IMAGE_TOKEN_INDEX]
    second_start = second + 16  # expanded position of the second image: the first one adds 16 tokens
    # The limit falls inside the second image: it is dropped whole, with everything after it.
    cut = _one_image_a_turn(
        _dataset(tmp_path / "b", qwen_tokenizer, image_aspect_ratio="pad", max_length=second_start + 5)
    )[3]
    assert cut["truncated"] and cut["modalities"] == ["image"] and len(cut["images"]) == 1
    assert cut["input_ids"].tolist() == ids[:second]
    assert len(cut["input_ids"]) - 1 + 17 <= second_start + 5


def test_sample_left_without_supervision_is_skipped_and_counted(tmp_path, qwen_tokenizer):
    # The image ends past the limit: what is left is the system prompt and the user header, all masked.
    dataset = _dataset(tmp_path, qwen_tokenizer, max_length=40, unmask=False)
    item = dataset[0]
    assert item["skipped"] and item["skipped"][0]["kind"] == "no_supervised_tokens"
    assert "no answer token left after truncation to 40 tokens" in item["skipped"][0]["reason"]


def test_collator_pads_and_reports(tmp_path, qwen_tokenizer):
    dataset = _dataset(tmp_path, qwen_tokenizer)
    items = [dataset[0], dataset[4]]
    batch = DataCollatorForSupervisedDataset(pad_token_id=qwen_tokenizer.pad_token_id)(items)
    lengths = [len(i["input_ids"]) for i in items]
    assert batch["input_ids"].shape == (2, max(lengths))
    assert batch["attention_mask"].sum(1).tolist() == lengths
    short = lengths.index(min(lengths))
    assert (batch["labels"][short, min(lengths) :] == IGNORE_INDEX).all()
    assert (batch["input_ids"][short, min(lengths) :] == qwen_tokenizer.pad_token_id).all()
    assert len(batch["images"]) == 2 and batch["modalities"] == ["image", "text"]
    assert batch[DATA_REPORT_KEY] == {"seen": 2, "skipped": [], "truncated": 0}
    model = tiny_model(image_size=56, vocab_size=151936).train()
    report = batch.pop(DATA_REPORT_KEY)
    assert report["seen"] == 2
    loss = model(**batch).loss
    assert torch.isfinite(loss)


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "mix.yaml"
    path.write_text("datasets:\n  - json_path: a.json\n    sampling_strategy: [all\n")
    with pytest.raises(ValueError, match=rf"{path}: line \d+, column \d+: malformed YAML") as caught:
        parse_data_path(str(path))
    assert caught.value.__cause__ is None and "<unicode string>" not in str(caught.value)


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_high_bit_depth_images_are_scaled_not_clipped(tmp_path, qwen_tokenizer, mode):
    """A 16-bit grey PNG (and 32-bit int / float images) came out 99.6% white after convert("RGB")."""
    import numpy as np
    from PIL import Image

    from llava.mm_utils import process_images

    levels = np.tile(np.linspace(0, 65535, 112), (56, 1))  # (H, W): a dark-to-bright ramp over the 16-bit range
    if mode == "F":
        image = Image.fromarray((levels / 65535).astype(np.float32), mode="F")
    else:
        image = Image.fromarray(levels.astype(np.uint16 if mode == "I;16" else np.int32))
        image = image if mode == "I" else Image.frombytes("I;16", image.size, levels.astype("<u2").tobytes())
    assert image.mode == mode
    reference = Image.fromarray(np.rint(levels / 257).astype(np.uint8), mode="L").convert("RGB")
    processor, config = SigLipImageProcessor(size=(56, 56)), tiny_config(image_size=56, image_aspect_ratio="pad")
    for aspect in ("pad", "anyres_max_9", "square"):
        config.image_aspect_ratio = aspect
        torch.testing.assert_close(
            process_images([image], processor, config),
            process_images([reference], processor, config),
            rtol=0,
            atol=2 / 255 * 2,
        )
    # Training reads files: a 16-bit PNG on disk gives the 8-bit reference's pixels.
    if mode == "I;16":
        path = write_corpus(tmp_path, count=1, template="qwen_1_5")
        record = json.loads(path.read_text())
        image.save(tmp_path / "images" / "deep.png")
        record[0]["image"] = "images/deep.png"
        path.write_text(json.dumps(record))
        dataset = LazySupervisedDataset(
            load_mixture(str(path), seed=0),
            tokenizer=qwen_tokenizer,
            image_processor=processor,
            model_config=config,
            data=DataConfig(image_folder=str(tmp_path)),
        )
        assert Image.open(tmp_path / "images" / "deep.png").mode == "I;16"
        torch.testing.assert_close(
            dataset[0]["images"][0], process_images([reference], processor, config), rtol=0, atol=2 / 255 * 2
        )
