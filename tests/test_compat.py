"""The Python 3.10 ``StrEnum`` backport behaves as the standard library's where the package relies on it."""

from __future__ import annotations

import enum
import json
import sys

import pytest

from llava.compat import StrEnumBackport


def _pair():
    class Ours(StrEnumBackport):
        SAUM = "saum"
        AAUM = "aaum"

    if sys.version_info < (3, 11):
        pytest.skip("enum.StrEnum (the reference) needs Python 3.11")

    class Std(enum.StrEnum):
        SAUM = "saum"
        AAUM = "aaum"

    return Ours, Std


def test_backport_matches_stdlib_strenum():
    ours, std = _pair()
    for a, b in zip(ours, std, strict=True):
        assert isinstance(a, str) and isinstance(b, str)
        assert a == b.value and a.value == b.value
        assert str(a) == str(b)
        assert f"{a}" == f"{b}" and f"{a:>6}" == f"{b:>6}"
        assert json.dumps(a) == json.dumps(b)
        assert hash(a) == hash(b.value)
    assert ours("aaum") is ours.AAUM
    with pytest.raises(ValueError):
        ours("sam")
