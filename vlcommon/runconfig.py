"""Typed run configs to and from JSON: how a launcher hands a recipe to the processes it starts.

A launcher resolves a recipe (its registry entry, the environment's overrides, this machine's settings) into one
frozen dataclass; :func:`write` stores it as JSON in the run's output folder and the train entry, started by
``torchrun`` in other processes, reads it back with :func:`read` into the same dataclass. Nothing in between parses
a setting out of a string: every value is checked against the field's annotation on the way in, and an error names
the field by its path (``model.manager.inject.count``) and the file.

:func:`replace_fields` is the typed override: ``replace_fields(recipe, learning_rate=2e-5)`` checks the name and
the type before ``dataclasses.replace``. The supported annotations are what run configs hold: ``bool``, ``int``,
``float``, ``str``, ``StrEnum`` members, ``X | None``, ``tuple[X, ...]`` and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from vlcommon.ledger import write_json_atomic

T = TypeVar("T")
SCALARS = (bool, int, float, str)


def to_dict(config) -> dict:
    """JSON values of a dataclass: enums as their values, tuples as lists, nested dataclasses as objects."""
    return {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _plain(value):
    if dataclasses.is_dataclass(value):
        return to_dict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def from_dict(cls: type[T], data: Any, *, where: str = "") -> T:
    """``cls`` built from JSON values, each checked against its field's annotation; a ``ValueError`` names the
    field (``where`` prefixes its path) for a missing, unknown or wrong-typed value."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or cls.__name__}: expected an object, found {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{_path(where, unknown[0])}: unknown field (expected one of {', '.join(fields)})")
    values = {}
    for name, f in fields.items():
        if name in data:
            values[name] = _typed(hints[name], data[name], _path(where, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{_path(where, name)}: missing")
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:  # the dataclass's own checks (__post_init__)
        raise ValueError(f"{where or cls.__name__}: {error}") from error


def _path(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _typed(annotation, value, where: str):
    """``value`` as ``annotation`` says, or a ``ValueError`` naming ``where``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        real = [a for a in args if a is not type(None)]
        assert len(real) == 1, f"{where}: run configs hold X | None, not {annotation}"
        return _typed(real[0], value, where)
    if origin is tuple:
        assert len(args) == 2 and args[1] is Ellipsis, f"{where}: run configs hold tuple[X, ...], not {annotation}"
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where}: expected a list, found {value!r}")
        return tuple(_typed(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(annotation):
        return value if isinstance(value, annotation) else from_dict(annotation, value, where=where)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        try:
            return annotation(value)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in annotation)
            raise ValueError(f"{where}: {value!r} is not one of {allowed}") from None
    assert annotation in SCALARS, f"{where}: unsupported annotation {annotation}"
    return _scalar(annotation, value, where)


def _scalar(kind: type, value, where: str):
    # bool is an int in Python, and JSON writes 2.0 as a float: accept exactly what the field means.
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise ValueError(f"{where}: expected {kind.__name__}, found {value!r}")


def replace_fields(config: T, *, where: str = "", **changes) -> T:
    """``dataclasses.replace`` with each new value checked against its field (a ``ValueError`` names it)."""
    hints = typing.get_type_hints(type(config))
    checked = {}
    for name, value in changes.items():
        if name not in hints:
            raise ValueError(f"{_path(where, name)}: unknown field (expected one of {', '.join(hints)})")
        # Through the JSON form: a nested dataclass given in code is checked field by field as well.
        checked[name] = _typed(hints[name], _plain(value), _path(where, name))
    try:
        return dataclasses.replace(config, **checked)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where or type(config).__name__}: {error}") from error


def write(path: str | Path, config) -> Path:
    """``config`` as JSON at ``path``, written atomically (a reader never sees half a file)."""
    write_json_atomic(path, to_dict(config))
    return Path(path)


def read(path: str | Path, cls: type[T]) -> T:
    """The ``cls`` stored at ``path`` by :func:`write`; errors name the file and the field."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"--run_config {path}: {error}") from error
    try:
        return from_dict(cls, data)
    except ValueError as error:
        raise ValueError(f"--run_config {path}: {error}") from error
