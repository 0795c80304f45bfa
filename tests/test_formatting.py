"""Label masking of LLaVA-NeXT's preprocess_qwen / preprocess_plain (llava_next_spec.md sections 4.4-4.5)."""

import pytest

from llava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from llava.conversation import conv_templates
from llava.data.formatting import format_plain, format_qwen
from llava.mm_utils import tokenizer_image_token

CONV = [
    {"from": "human", "value": "<image>\nWhat colour is the circle?"},
    {"from": "gpt", "value": "Red."},
    {"from": "human", "value": "And the square?"},
    {"from": "gpt", "value": "Blue."},
]


def _rendered(conv):
    template = conv_templates["qwen_1_5"].copy()
    for turn in conv:
        template.append_message(template.roles[0 if turn["from"] == "human" else 1], turn["value"])
    return template.get_prompt()


def test_qwen_ids_equal_the_inference_prompt(qwen_tokenizer):
    ids, labels, _ = format_qwen(CONV, qwen_tokenizer)
    assert ids == tokenizer_image_token(_rendered(CONV), qwen_tokenizer)
    assert len(labels) == len(ids) and ids.count(IMAGE_TOKEN_INDEX) == 1


def test_qwen_labels_with_upstream_quirk(qwen_tokenizer):
    ids, labels, _ = format_qwen(CONV, qwen_tokenizer)
    specials = {151644, 151645, 198}
    text = qwen_tokenizer.decode([t for t, l in zip(ids, labels) if l != IGNORE_INDEX])
    # Assistant turns whole, plus every ChatML token and "\n" elsewhere (system and user turns included).
    assert text == (
        "<|im_start|>\n<|im_end|>\n"  # system: "system", the prompt text masked
        "<|im_start|>\n\n<|im_end|>\n"  # user: "user", <image>, the question masked
        "<|im_start|>assistant\nRed.<|im_end|>\n"
        "<|im_start|>\n<|im_end|>\n"
        "<|im_start|>assistant\nBlue.<|im_end|>\n"
    )
    assert all(l == t for t, l in zip(ids, labels) if t in specials)
    assert labels[ids.index(IMAGE_TOKEN_INDEX)] == IGNORE_INDEX


def test_qwen_labels_without_quirk(qwen_tokenizer):
    ids, labels, _ = format_qwen(CONV, qwen_tokenizer, unmask_chat_tokens=False)
    text = qwen_tokenizer.decode([t for t, l in zip(ids, labels) if l != IGNORE_INDEX])
    assert text == "<|im_start|>assistant\nRed.<|im_end|>\n<|im_start|>assistant\nBlue.<|im_end|>\n"


def test_leading_assistant_turn_is_dropped(qwen_tokenizer):
    ids, _, _ = format_qwen([{"from": "gpt", "value": "hi"}] + CONV[:2], qwen_tokenizer)
    assert ids == format_qwen(CONV[:2], qwen_tokenizer)[0]


def test_plain(qwen_tokenizer):
    ids, labels, _ = format_plain(
        [{"from": "human", "value": "Describe.\n<image>"}, {"from": "gpt", "value": "A red circle"}], qwen_tokenizer
    )
    caption = qwen_tokenizer("A red circle\n").input_ids
    assert ids == [IMAGE_TOKEN_INDEX] + caption
    assert labels == [IGNORE_INDEX] + caption


@pytest.mark.parametrize(
    "conv,match",
    [
        ([], "non-empty list"),
        ([{"from": "human", "value": "hi"}], "no assistant"),
        (
            [{"from": "robot", "value": "hi"}, {"from": "gpt", "value": "x"}],
            r"conversations\[0\].from: unknown role 'robot'",
        ),
        ([{"from": "human", "value": 3}, {"from": "gpt", "value": "x"}], r"conversations\[0\].value"),
        (["hello"], r"conversations\[0\]: expected an object"),
    ],
)
def test_malformed_conversations_name_the_field(qwen_tokenizer, conv, match):
    with pytest.raises(ValueError, match=match):
        format_qwen(conv, qwen_tokenizer)


def test_plain_needs_image_and_caption(qwen_tokenizer):
    with pytest.raises(ValueError, match="plain template"):
        format_plain(CONV, qwen_tokenizer)
