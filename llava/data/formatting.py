"""Turn a LLaVA conversation into ``input_ids`` (with ``IMAGE_TOKEN_INDEX`` placeholders) and ``labels``.

Two templates, as LLaVA-NeXT trains OneVision:

* ``qwen_1_5`` (stages 1.5 and 2): ChatML with the system prompt "You are a helpful assistant."; every turn is
  tokenised on its own as ``<|im_start|>{role}\\n{content}<|im_end|>\\n``, so ids equal the inference prompt's.
  Labels supervise the assistant turns whole (header, content, ``<|im_end|>``, trailing ``\\n``). LLaVA-NeXT then
  also unmasks *every* ``\\n`` (198), ``<|im_start|>`` and ``<|im_end|>`` of the sequence, including those of the
  system and user turns (its issue #212; upstream calls it intentional). ``unmask_chat_tokens=True`` (default) keeps
  that quirk so released checkpoints and the paper's recipe are reproduced; ``False`` supervises only assistant
  turns.
* ``plain`` (stage 1): exactly one human turn with ``<image>`` and one caption; the input is ``<image>`` + caption +
  ``\\n`` and the caption plus newline are supervised.

Malformed conversations raise ``ValueError`` naming the field; the dataset turns that into a counted skip.
"""

from __future__ import annotations

from llava.constants import DEFAULT_IMAGE_TOKEN, IGNORE_INDEX, IMAGE_TOKEN_INDEX
from llava.mm_utils import tokenizer_image_token

SYSTEM_PROMPT = "You are a helpful assistant."
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
NEWLINE_ID = 198  # "\n" in Qwen2's vocabulary


def _turns(conversations) -> list[tuple[str, str]]:
    if not isinstance(conversations, list) or not conversations:
        raise ValueError("conversations: expected a non-empty list of turns")
    turns = []
    for index, turn in enumerate(conversations):
        if not isinstance(turn, dict):
            raise ValueError(f"conversations[{index}]: expected an object with 'from' and 'value'")
        role = turn.get("from", turn.get("role"))
        value = turn.get("value", turn.get("content"))
        if role not in _ROLES:
            raise ValueError(f"conversations[{index}].from: unknown role {role!r}")
        if not isinstance(value, str):
            raise ValueError(f"conversations[{index}].value: expected a string, got {type(value).__name__}")
        turns.append((_ROLES[role], value))
    # LLaVA-NeXT drops a leading turn that is not from the user.
    if turns[0][0] != "user":
        turns = turns[1:]
    if not any(role == "assistant" for role, _ in turns):
        raise ValueError("conversations: no assistant ('gpt') turn to learn from")
    return turns


def format_qwen(conversations, tokenizer, *, unmask_chat_tokens: bool = True) -> tuple[list[int], list[int]]:
    """ChatML ids and labels (see module docstring)."""
    turns = [("system", SYSTEM_PROMPT)] + _turns(conversations)
    special = {tokenizer.convert_tokens_to_ids("<|im_start|>"), tokenizer.convert_tokens_to_ids("<|im_end|>"), NEWLINE_ID}
    input_ids: list[int] = []
    labels: list[int] = []
    for role, content in turns:
        ids = tokenizer_image_token(f"<|im_start|>{role}\n{content}<|im_end|>\n", tokenizer)
        input_ids += ids
        labels += [t if role == "assistant" and t != IMAGE_TOKEN_INDEX else IGNORE_INDEX for t in ids]
    if unmask_chat_tokens:
        labels = [t if t in special else label for t, label in zip(input_ids, labels)]
    return input_ids, labels


def format_plain(conversations, tokenizer) -> tuple[list[int], list[int]]:
    """Stage-1 captioning: ``<image>`` + caption + newline, the caption and newline supervised."""
    turns = _turns(conversations)
    if len(turns) != 2 or DEFAULT_IMAGE_TOKEN not in turns[0][1]:
        raise ValueError("conversations: the plain template needs exactly one human turn with <image> and one caption")
    input_ids = tokenizer_image_token(DEFAULT_IMAGE_TOKEN + turns[1][1] + "\n", tokenizer)
    labels = [IGNORE_INDEX] + input_ids[1:]
    return input_ids, labels
