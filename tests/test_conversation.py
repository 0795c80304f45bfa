"""Prompt strings and tokenisation exactly as LLaVA-NeXT (llava_next_spec.md sections 1.5-1.6)."""

import torch

from llava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from llava.conversation import SeparatorStyle, conv_templates
from llava.mm_utils import KeywordsStoppingCriteria, get_model_name_from_path, tokenizer_image_token

CANONICAL = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>\n"
    "What is shown in this image?<|im_end|>\n<|im_start|>assistant\n"
)


def _prompt(template: str, question: str) -> str:
    conv = conv_templates[template].copy()
    conv.append_message(conv.roles[0], question)
    conv.append_message(conv.roles[1], None)
    return conv.get_prompt()


def test_constants():
    assert (IGNORE_INDEX, IMAGE_TOKEN_INDEX) == (-100, -200)


def test_qwen_prompt_is_canonical():
    assert _prompt("qwen_1_5", "<image>\nWhat is shown in this image?") == CANONICAL
    assert _prompt("qwen_2", "<image>\nWhat is shown in this image?") == CANONICAL
    assert conv_templates["qwen_1_5"].sep_style is SeparatorStyle.CHATML


def test_tuple_first_message_moves_image_to_front():
    conv = conv_templates["qwen_1_5"].copy()
    conv.append_message(conv.roles[0], ("What is shown in this image? <image>", ["img"], "Default"))
    conv.append_message(conv.roles[1], None)
    assert conv.get_prompt() == CANONICAL


def test_multi_turn_and_copy_isolation():
    conv = conv_templates["qwen_1_5"].copy()
    conv.append_message(conv.roles[0], "Hi")
    conv.append_message(conv.roles[1], "Hello!")
    assert conv_templates["qwen_1_5"].messages == []
    assert conv.get_prompt().endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n")


def test_plain_template():
    conv = conv_templates["plain"].copy()
    conv.append_message(conv.roles[0], "<image>")
    conv.append_message(conv.roles[1], "a red circle")
    assert conv.get_prompt() == "<image>\na red circle\n"


def test_tokenizer_image_token_ids(qwen_tokenizer):
    ids = tokenizer_image_token(CANONICAL, qwen_tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt")
    head = [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198]
    assert ids[: len(head)].tolist() == head
    assert ids[len(head)].item() == IMAGE_TOKEN_INDEX
    assert (ids == IMAGE_TOKEN_INDEX).sum() == 1
    # Each chunk is tokenised on its own: the text after <image> starts with "\n" (198).
    assert ids[len(head) + 1].item() == 198
    assert ids[-3:].tolist() == [151644, 77091, 198]  # "<|im_start|>assistant\n"
    as_list = tokenizer_image_token(CANONICAL, qwen_tokenizer)
    assert as_list == ids.tolist()
    assert qwen_tokenizer.decode([t for t in as_list if t >= 0]) == CANONICAL.replace("<image>", "")


def test_tokenizer_image_token_multiple_images(qwen_tokenizer):
    ids = tokenizer_image_token("<image> <image>\nCompare.", qwen_tokenizer)
    assert ids[0] == IMAGE_TOKEN_INDEX and ids.count(IMAGE_TOKEN_INDEX) == 2
    try:
        tokenizer_image_token("x", qwen_tokenizer, return_tensors="np")
    except ValueError as err:
        assert "np" in str(err)
    else:
        raise AssertionError("return_tensors='np' must be rejected")


def test_model_name_from_path():
    assert get_model_name_from_path("/ckpt/llava-ov-manager/") == "llava-ov-manager"
    assert get_model_name_from_path("/ckpt/run/checkpoint-500") == "run_checkpoint-500"


def test_keywords_stopping_criteria(qwen_tokenizer):
    prompt = torch.tensor([[1, 2, 3]])
    criteria = KeywordsStoppingCriteria(["<|im_end|>"], qwen_tokenizer, prompt)
    running = torch.tensor([[1, 2, 3, 9707], [1, 2, 3, 151645]])
    assert criteria(running, None).tolist() == [False, True]
