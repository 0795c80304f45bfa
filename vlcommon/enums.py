"""String enums for both systems: ``StrEnum`` on every Python ``pyproject.toml`` allows, and ``member``, the one
coercion of a config or flag value to a member whose error names the field, the value and the allowed values.

``enum.StrEnum`` arrived in Python 3.11. ``StrEnumBackport`` behaves the same way for what the packages rely on:
members are ``str`` instances, compare equal to their value, and ``str()``/``format()`` give the value. It is
defined on every version so that the tests can check it against the standard library's.
"""

from __future__ import annotations

import enum
import sys
from typing import TypeVar


class StrEnumBackport(str, enum.Enum):
    """A ``str`` enum whose ``str()`` and ``format()`` are the member's value, as 3.11's ``enum.StrEnum``."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


StrEnum = enum.StrEnum if sys.version_info >= (3, 11) else StrEnumBackport

E = TypeVar("E", bound=enum.Enum)


def member(enum_cls: type[E], value, what: str) -> E:
    """``enum_cls(value)`` (a member passes through); otherwise a ``ValueError`` such as
    ``manager type='sam' is not one of ('none', 'saum', 'aaum')``, where ``what`` names the field or flag."""
    try:
        return enum_cls(value)
    except ValueError:
        # ``from None``: enum's own "'sam' is not a valid ManagerType" would only repeat this with a class name.
        raise ValueError(f"{what}={value!r} is not one of {tuple(m.value for m in enum_cls)}") from None


__all__ = ["StrEnum", "StrEnumBackport", "member"]
