"""Prompt assembly for lmms-eval requests, identical to the stock ``llava_onevision`` wrapper.

Scores are only comparable with published LLaVA-OV numbers if the model sees the same prompt, so this follows the
stock wrapper step by step (``reference/lmms_eval_spec.md`` §6.3 steps 4-5):

* when the task context has no ``<image>`` marker, one marker per image is prepended, joined by spaces, then ``\\n``;
* a context that parses as JSON is a list of ``{"value": ...}`` turns alternating user/assistant;
* the conversation template (``qwen_1_5`` by default) renders it with an open assistant turn.
"""

from __future__ import annotations

import json

from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.conversation import Conversation, conv_templates


def with_image_markers(context: str, num_images: int) -> str:
    """Prepend ``<image>`` markers as the stock wrapper does (only when the context has none)."""
    if num_images == 0 or DEFAULT_IMAGE_TOKEN in context:
        return context
    return " ".join([DEFAULT_IMAGE_TOKEN] * num_images) + "\n" + context


def _json_turns(question: str) -> list | None:
    # The stock wrapper treats any string json.loads accepts as a list of turns.
    try:
        turns = json.loads(question)
    except json.JSONDecodeError:
        return None
    if not isinstance(turns, list):
        raise ValueError(f"a JSON task context must be a list of {{'value': ...}} turns, got {type(turns).__name__}")
    return turns


def conversation(context: str, num_images: int, template: str, answer: str | None = None) -> Conversation:
    """The conversation for one request; ``answer`` fills the assistant turn (for log-likelihoods)."""
    if template not in conv_templates:
        raise ValueError(f"conv_template {template!r} is unknown; choose one of {sorted(conv_templates)}")
    conv = conv_templates[template].copy()
    question = with_image_markers(context, num_images)
    turns = _json_turns(question)
    if turns is None:
        conv.append_message(conv.roles[0], question)
    else:
        if len(turns) % 2 != 1:
            raise ValueError(
                f"a JSON task context needs an odd number of turns (ending with the user), got {len(turns)}"
            )
        for index, turn in enumerate(turns):
            conv.append_message(conv.roles[index % 2], turn["value"])
    conv.append_message(conv.roles[1], answer)
    return conv


def build_prompt(context: str, num_images: int, template: str = "qwen_1_5") -> str:
    """The generation prompt: the conversation with an open assistant turn."""
    return conversation(context, num_images, template).get_prompt()
