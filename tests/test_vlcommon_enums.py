"""``vlcommon.enums``: the Python 3.10 ``StrEnum`` backport behaves as the standard library's where the packages rely
on it, and ``member`` names the field, the bad value and the allowed values."""

from __future__ import annotations

import enum
import json
import sys

import pytest

from vlcommon.enums import StrEnum, StrEnumBackport, member


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


class _Kind(StrEnum):
    SAUM = "saum"
    AAUM = "aaum"


def test_member_coerces_values_and_passes_members_through():
    assert member(_Kind, "aaum", "manager type") is _Kind.AAUM
    assert member(_Kind, _Kind.SAUM, "manager type") is _Kind.SAUM


@pytest.mark.parametrize("value", ["sam", None, 3])
def test_member_names_the_field_the_value_and_the_choices(value):
    with pytest.raises(ValueError) as error:
        member(_Kind, value, "manager type")
    assert str(error.value) == f"manager type={value!r} is not one of ('saum', 'aaum')"
    assert error.value.__cause__ is None and error.value.__suppress_context__
