"""Reading raw annotations record by record, for the table builders (``managertower.data.build``), trusting no field.

A bad record is skipped, named (its file is the ledger's source; its line or id is the record's name; the field
opens the reason) and counted once in ``<table>.skipped.json``. Only a file that cannot be used at all (missing,
not JSON, not the expected layout) stops a conversion, with a ``ValueError`` that names it.

* JSON-lines and TSV files are read line by line: a line that is not UTF-8, not JSON or not an object is one
  counted skip named by its line number (``bad_encoding``, ``bad_json``).
* Whole JSON documents (Karpathy, VG, VQAv2) decode bytes that are not UTF-8 to lone surrogates: the record whose
  text holds them is skipped as ``bad_encoding`` by :func:`text_field`, instead of the whole file being lost.
* Fields: a missing (or null) one is ``missing_field``, one of the wrong type ``bad_field``, a text that is empty
  or blank ``empty_text``.
* Ids are checked for repeats with :func:`repeated`; every copy of a repeated id is skipped (``duplicate_id``):
  with two records under one id, nothing says which answers or annotations belong to which.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from managertower.data.arrow import TableKind, write_table
from vlcommon.images import decode_image
from vlcommon.ledger import BadSample, BadSampleLedger, write_json_atomic

logger = logging.getLogger(__name__)


@dataclass
class Skips:
    """The records one output table left out, counted once each."""

    source: str
    ledger: BadSampleLedger = field(default_factory=lambda: BadSampleLedger(max_share=1.0, min_seen=0))

    def seen(self, count: int = 1) -> None:
        self.ledger.record(seen=count, events=[])

    def skip(self, record: str, kind: str, reason: str, count: int = 1, *, source: str | None = None) -> None:
        """``count`` records (e.g. the captions of one image) left out for one reason; ``source`` when the record
        comes from another file than the table's main one (VQAv2's annotations)."""
        source = source or self.source
        logger.warning("skipping %s from %s: %s", record, source, reason)
        events = [{"sample_id": record, "source": source, "kind": kind, "reason": reason}] * count
        self.ledger.record(seen=0, events=events)

    def bad(self, record: str, bad: BadSample, count: int = 1) -> None:
        self.skip(record, bad.kind, str(bad), count)


# -- files -------------------------------------------------------------------------------------------------------


def read_json(path: Path, key: str | None = None) -> list:
    """The list at ``key`` of a whole JSON document (the document itself when ``key`` is None)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ValueError(f"{path}: cannot read the annotations ({error.strerror or error})") from None
    try:
        # surrogateescape: a stray byte stays in its record's text, where text_field() names it (module docstring).
        document = json.loads(raw.decode("utf-8-sig", errors="surrogateescape"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: line {error.lineno}, column {error.colno}: not valid JSON ({error.msg})") from None
    found = document.get(key) if key is not None and isinstance(document, dict) else document
    if not isinstance(found, list):
        expected = f'an object with a list under "{key}"' if key is not None else "a list"
        seen = f"an object with keys {sorted(document)[:8]}" if isinstance(document, dict) else type(document).__name__
        raise ValueError(f"{path}: expected {expected} at the top, found {seen}")
    return found


def text_lines(path: Path, skips: Skips) -> Iterator[tuple[int, str]]:
    """(line number, text) per non-blank line. A line that is not UTF-8 is counted as seen and skipped here; the
    caller counts the lines it is given."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as error:
        raise ValueError(f"{path}: cannot read the annotations ({error.strerror or error})") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                skips.seen()
                skips.skip(f"line {number}", "bad_encoding", f"line: byte {error.start + 1} is not UTF-8")
                continue
            yield number, line.rstrip("\r\n")


def json_object(line: str) -> dict:
    """One JSON-lines record; :class:`BadSample` when the line is not a JSON object."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise BadSample("bad_json", f"line: not JSON ({error.msg}, column {error.colno})") from None
    if not isinstance(record, dict):
        raise BadSample("bad_json", f"line: expected a JSON object, found {type(record).__name__}")
    return record


def json_lines(path: Path, skips: Skips) -> Iterator[tuple[int, dict]]:
    """(line number, record) per JSON-lines record; a bad line is counted as seen and skipped here."""
    for number, line in text_lines(path, skips):
        try:
            yield number, json_object(line)
        except BadSample as bad:
            skips.seen()
            skips.bad(f"line {number}", bad)


# -- fields ------------------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _present(record: Any, key: str, label: str | None = None) -> Any:
    if not isinstance(record, dict):
        raise BadSample("bad_field", f"{label or key}: the record is a {type(record).__name__}, not an object")
    value = record.get(key)
    if value is None:
        raise BadSample("missing_field", f"{label or key}: missing")
    return value


def _utf8(value: str, key: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise BadSample("bad_encoding", f"{key}: not valid UTF-8 (character {error.start + 1})") from None
    return value


def string_field(record: Any, key: str, *, label: str | None = None) -> str:
    """``record[key]`` as it is: any UTF-8 string, empty included (an annotator's answer)."""
    name = label or key
    value = _present(record, key, label)
    if not isinstance(value, str):
        raise BadSample("bad_field", f"{name}: expected text, got {type(value).__name__} {value!r}")
    return _utf8(value, name)


def text_field(record: Any, key: str, *, label: str | None = None) -> str:
    """``record[key]`` stripped: a non-empty UTF-8 string, or :class:`BadSample` named ``label`` (``key``)."""
    value = string_field(record, key, label=label).strip()
    if not value:
        raise BadSample("empty_text", f"{label or key}: empty text")
    return value


def int_field(record: Any, key: str) -> int:
    """``record[key]``, an integer (not a bool, not a string of digits: ids are compared as numbers)."""
    value = _present(record, key)
    if not _is_int(value):
        raise BadSample("bad_field", f"{key}: expected an integer, got {value!r}")
    return value


def number_field(record: Any, key: str) -> int:
    """``record[key]``, a number, truncated to an int as the original writers do (VG's boxes)."""
    value = _present(record, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadSample("bad_field", f"{key}: expected a number, got {value!r}")
    return int(value)


def name_field(record: Any, key: str) -> str:
    """``record[key]`` as a name (an identifier, a file name): a non-empty UTF-8 string, or an integer."""
    value = _present(record, key)
    if _is_int(value):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise BadSample("bad_field", f"{key}: expected a name, got {value!r}")
    return _utf8(value, key)


def peek(record: Any, key: str) -> Any:
    """``record[key]`` when it can serve as a key for :func:`repeated` (an int or a string), else None."""
    value = record.get(key) if isinstance(record, dict) else None
    return value if _is_int(value) or isinstance(value, str) else None


def repeated(ids: Iterable[Hashable | None]) -> Counter:
    """The ids seen more than once (None ignored), with their counts."""
    counts = Counter(i for i in ids if i is not None)
    return Counter({i: n for i, n in counts.items() if n > 1})


def check_unique(value: Hashable, key: str, repeats: Counter, where: str) -> None:
    if value in repeats:
        raise BadSample(
            "duplicate_id", f"{key}: {value!r} appears {repeats[value]} times in {where}; every copy is left out"
        )


# -- images and tables -------------------------------------------------------------------------------------------


def image_bytes(path: Path) -> bytes:
    """The file's bytes, decoded in full to check them; :class:`BadSample` names a missing or corrupt image."""
    if not path.is_file():
        raise BadSample("missing_image", f"image: file not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise BadSample("missing_image", f"image: cannot read {path}: {error.strerror or error}") from None
    decode_image(data, field="image", source=str(path))
    return data


def image_or_skip(path: Path, record: str, skips: Skips, count: int) -> bytes | None:
    try:
        return image_bytes(path)
    except BadSample as bad:
        skips.bad(record, bad, count)
        return None


def finish_table(out: Path, name: str, kind: TableKind, rows: dict[str, list], skips: Skips) -> Path:
    path = write_table(Path(out) / f"{name}.arrow", kind, rows)
    write_json_atomic(Path(out) / f"{name}.skipped.json", skips.ledger.to_dict())
    logger.info("%s: %d rows; %s", path, len(next(iter(rows.values()))), skips.ledger.summary())
    return path
