"""Backports for the oldest Python that ``pyproject.toml`` allows (3.10).

``enum.StrEnum`` arrived in Python 3.11. ``StrEnumBackport`` behaves the same way for what this package relies on:
members are ``str`` instances, compare equal to their value, and ``str()``/``format()`` give the value. It is
defined on every version so that the tests can check it against the standard library's.
"""

from __future__ import annotations

import enum
import sys


class StrEnumBackport(str, enum.Enum):
    """A ``str`` enum whose ``str()`` and ``format()`` are the member's value, as 3.11's ``enum.StrEnum``."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


StrEnum = enum.StrEnum if sys.version_info >= (3, 11) else StrEnumBackport

__all__ = ["StrEnum", "StrEnumBackport"]
