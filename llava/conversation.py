"""Conversation templates compatible with LLaVA-NeXT's ``llava.conversation``.

Only the templates this project trains and evaluates with are provided: ``qwen_1_5`` (alias ``qwen_2``),
ChatML, used for stages 1.5 and 2 and for evaluation, and ``plain`` (alias ``v0_plain``) for stage-1
alignment. Rendering follows LLaVA-NeXT exactly, e.g. for one image and one question::

    <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n
    <|im_start|>user\\n<image>\\nQ<|im_end|>\\n<|im_start|>assistant\\n

(one string; broken after the system turn here).
"""

from __future__ import annotations

import dataclasses
from enum import Enum, auto

from llava.constants import DEFAULT_IMAGE_TOKEN


class SeparatorStyle(Enum):
    """Separator styles; the names match LLaVA-NeXT (lmms-eval checks ``SeparatorStyle.TWO``)."""

    SINGLE = auto()
    TWO = auto()
    MPT = auto()
    PLAIN = auto()
    CHATML = auto()
    LLAMA_2 = auto()
    LLAMA_3 = auto()
    QWEN = auto()
    GEMMA = auto()


Message = list  # [role, text | (text, images, mode) | None]


@dataclasses.dataclass
class Conversation:
    """A multi-turn conversation that renders itself into a prompt string."""

    system: str
    roles: tuple[str, str]
    messages: list[Message]
    offset: int = 0
    sep_style: SeparatorStyle = SeparatorStyle.CHATML
    sep: str = "###"
    sep2: str | None = None
    version: str = "Unknown"
    stop_str: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    skip_next: bool = False

    def get_prompt(self) -> str:
        messages = self.messages
        if messages and isinstance(messages[0][1], tuple):
            # LLaVA-NeXT moves the first message's image marker to the front.
            messages = [list(m) for m in messages]
            text, images, mode = messages[0][1]
            text = text.replace(DEFAULT_IMAGE_TOKEN, "").strip()
            messages[0][1] = (DEFAULT_IMAGE_TOKEN + "\n" + text, images, mode)
        if self.sep_style == SeparatorStyle.CHATML:
            return self._render_chatml(messages)
        if self.sep_style == SeparatorStyle.PLAIN:
            return self._render_plain(messages)
        raise ValueError(f"conversation style {self.sep_style} is not supported by this package")

    def _render_chatml(self, messages: list[Message]) -> str:
        parts = [self.system + self.sep + "\n"] if self.system else []
        for role, message in messages:
            if message is None:
                parts.append(role + "\n")
                continue
            text = _message_text(message)
            parts.append(role + "\n" + text + self.sep + "\n")
        return "".join(parts)

    def _render_plain(self, messages: list[Message]) -> str:
        seps = [self.sep, self.sep2 if self.sep2 is not None else self.sep]
        parts = [self.system]
        for i, (_, message) in enumerate(messages):
            if message is None:
                continue
            parts.append(_message_text(message) + seps[i % 2])
        return "".join(parts)

    def append_message(self, role: str, message) -> None:
        self.messages.append([role, message])

    def copy(self) -> Conversation:
        # Like upstream, the copy gets fresh message lists.
        return dataclasses.replace(self, messages=[[role, msg] for role, msg in self.messages])

    def dict(self) -> dict:
        return {
            "system": self.system,
            "roles": self.roles,
            "messages": self.messages,
            "offset": self.offset,
            "sep": self.sep,
            "sep2": self.sep2,
        }


def _message_text(message) -> str:
    if isinstance(message, tuple):
        text, images = message[0], message[1]
        if DEFAULT_IMAGE_TOKEN not in text:
            count = len(images) if isinstance(images, (list, tuple)) else 1
            text = DEFAULT_IMAGE_TOKEN * count + text
        return text
    return message


conv_qwen = Conversation(
    system="<|im_start|>system\nYou are a helpful assistant.",
    roles=("<|im_start|>user", "<|im_start|>assistant"),
    version="qwen",
    messages=[],
    offset=0,
    sep_style=SeparatorStyle.CHATML,
    sep="<|im_end|>",
)

conv_llava_plain = Conversation(
    system="",
    roles=("", ""),
    messages=[],
    offset=0,
    sep_style=SeparatorStyle.PLAIN,
    sep="\n",
)

default_conversation = conv_qwen
conv_templates: dict[str, Conversation] = {
    "qwen_1_5": conv_qwen,
    "qwen_2": conv_qwen,
    "plain": conv_llava_plain,
    "v0_plain": conv_llava_plain,
}
