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

Both return the ids, the labels and ``answer``: which positions are the answers' own tokens (assistant content and
its ``<|im_end|>``; the caption and its newline), the ones a truncated sample must keep to be worth training on.

Malformed conversations raise ``ValueError`` naming the field, an empty answer :class:`EmptyAnswer` (unless
``keep_empty_answers``: it would teach an immediate ``<|im_end|>``); the dataset turns both into counted skips.
"""

from __future__ import annotations

from typing import NamedTuple

from llava.constants import DEFAULT_IMAGE_TOKEN, IGNORE_INDEX, IMAGE_TOKEN_INDEX
from llava.mm_utils import tokenizer_image_token


class EmptyAnswer(ValueError):
    pass


class Formatted(NamedTuple):
    input_ids: list[int]
    labels: list[int]
    answer: list[bool]


SYSTEM_PROMPT = "You are a helpful assistant."
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
NEWLINE_ID = 198  # "\n" in Qwen2's vocabulary


def _check_answers(turns: list[tuple[str, str]], indices: list[int], keep_empty_answers: bool) -> None:
    if keep_empty_answers:
        return
    for (role, value), index in zip(turns, indices):
        if role == "assistant" and not value.strip():
            raise EmptyAnswer(
                f"conversations[{index}].value: empty assistant answer (pass --keep_empty_answers True to train on it)"
            )


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


def _indices(conversations, turns) -> list[int]:
    """Index in ``conversations`` of each kept turn (a dropped leading turn shifts them by one)."""
    offset = len(conversations) - len(turns)
    return list(range(offset, len(conversations)))


def format_qwen(
    conversations, tokenizer, *, unmask_chat_tokens: bool = True, keep_empty_answers: bool = False
) -> Formatted:
    """ChatML ids, labels and answer positions (see module docstring)."""
    user_turns = _turns(conversations)
    _check_answers(user_turns, _indices(conversations, user_turns), keep_empty_answers)
    turns = [("system", SYSTEM_PROMPT)] + user_turns
    special = {
        tokenizer.convert_tokens_to_ids("<|im_start|>"),
        tokenizer.convert_tokens_to_ids("<|im_end|>"),
        NEWLINE_ID,
    }
    header_length = len(tokenizer("<|im_start|>assistant\n").input_ids)
    input_ids: list[int] = []
    labels: list[int] = []
    answer: list[bool] = []
    for role, content in turns:
        ids = tokenizer_image_token(f"<|im_start|>{role}\n{content}<|im_end|>\n", tokenizer)
        input_ids += ids
        labels += [t if role == "assistant" and t != IMAGE_TOKEN_INDEX else IGNORE_INDEX for t in ids]
        # The answer: after the header, up to and including <|im_end|> (the trailing newline is the template's).
        answer += [role == "assistant" and header_length <= k < len(ids) - 1 for k in range(len(ids))]
    if unmask_chat_tokens:
        labels = [t if t in special else label for t, label in zip(input_ids, labels)]
    return Formatted(input_ids, labels, answer)


def format_plain(conversations, tokenizer, *, keep_empty_answers: bool = False) -> Formatted:
    """Stage-1 captioning: ``<image>`` + caption + newline, the caption and newline supervised."""
    turns = _turns(conversations)
    if len(turns) != 2 or DEFAULT_IMAGE_TOKEN not in turns[0][1]:
        raise ValueError("conversations: the plain template needs exactly one human turn with <image> and one caption")
    _check_answers(turns, _indices(conversations, turns), keep_empty_answers)
    input_ids = tokenizer_image_token(DEFAULT_IMAGE_TOKEN + turns[1][1] + "\n", tokenizer)
    labels = [IGNORE_INDEX] + input_ids[1:]
    return Formatted(input_ids, labels, [False] + [True] * (len(input_ids) - 1))
