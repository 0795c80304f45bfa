"""Read the ``--data_path`` of LLaVA-NeXT: one JSON/JSONL file, a brace list ``dir/{a,b}.json``, or a YAML mixture.

A YAML mixture lists datasets with an optional sampling strategy::

    datasets:
      - json_path: blip_558k_plain.json        # relative paths: next to the YAML first, then the working dir
        sampling_strategy: all                 # all | first:N | end:N | random:N ; N may be k% (ceil(k * len / 100))
        image_folder: /data/blip               # optional, overrides --image_folder for this file

Unlike LLaVA-NeXT (which shuffles ``random:N`` with an unseeded ``random`` on every rank), the selection is a
function of the seed and the file path only, so every rank and every restart sees the same mixture.

Records stay raw dicts: images are opened and text is tokenised lazily, by the dataset.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

_BRACES = re.compile(r"^(.*)\{(.*)\}\.(json|jsonl)$")
_STRATEGY = re.compile(r"^(first|end|random):(\d+)(%?)$")


@dataclass(frozen=True, kw_only=True, slots=True)
class DatasetEntry:
    path: Path
    sampling_strategy: str = "all"
    image_folder: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadIssue:
    """A record that could not even be read (malformed JSONL line); reported like a bad sample."""

    source: str
    sample_id: str
    reason: str


@dataclass(kw_only=True, slots=True)
class Mixture:
    samples: list[dict] = field(default_factory=list)
    source_index: list[int] = field(default_factory=list)  # per sample: index into entries
    entries: list[DatasetEntry] = field(default_factory=list)
    issues: list[LoadIssue] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def source_of(self, index: int) -> DatasetEntry:
        return self.entries[self.source_index[index]]


def select(count: int, strategy: str, rng: random.Random) -> list[int]:
    """Indices kept by ``strategy`` out of ``count`` records."""
    if strategy == "all":
        return list(range(count))
    match = _STRATEGY.match(strategy.strip())
    if not match:
        raise ValueError(f"sampling_strategy={strategy!r}: expected all, first:N, end:N or random:N (N may be k%)")
    kind, number, percent = match.group(1), int(match.group(2)), match.group(3)
    if percent:
        if number > 100:
            raise ValueError(f"sampling_strategy={strategy!r}: a percentage must be at most 100%")
        keep = math.ceil(number * count / 100)
    else:
        keep = min(number, count)
    if kind == "first":
        return list(range(keep))
    if kind == "end":
        return list(range(count - keep, count))
    indices = list(range(count))
    rng.shuffle(indices)
    return indices[:keep]


def parse_data_path(data_path: str) -> list[DatasetEntry]:
    """The dataset entries ``data_path`` names (no file is read except a YAML mixture)."""
    if data_path.endswith((".yaml", ".yml")):
        return _yaml_entries(Path(data_path))
    if match := _BRACES.match(data_path):
        prefix, names, ext = match.groups()
        return [DatasetEntry(path=Path(f"{prefix}{name.strip()}.{ext}")) for name in names.split(",")]
    return [DatasetEntry(path=Path(data_path))]


def _yaml_entries(path: Path) -> list[DatasetEntry]:
    if not path.is_file():
        raise ValueError(f"data_path {path}: no such file")
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ValueError(f"data_path {path}:{where}: malformed YAML ({problem})") from None
    if not isinstance(content, dict) or not isinstance(content.get("datasets"), list):
        raise ValueError(f"data_path {path}: expected a top-level 'datasets:' list")
    entries = []
    for i, item in enumerate(content["datasets"]):
        if not isinstance(item, dict) or "json_path" not in item:
            raise ValueError(f"data_path {path}: datasets[{i}] needs a json_path")
        unknown = set(item) - {"json_path", "sampling_strategy", "image_folder"}
        if unknown:
            raise ValueError(f"data_path {path}: datasets[{i}] has unknown keys {sorted(unknown)}")
        json_path = Path(item["json_path"])
        if not json_path.is_absolute() and (path.parent / json_path).exists():
            json_path = path.parent / json_path
        entries.append(
            DatasetEntry(
                path=json_path,
                sampling_strategy=str(item.get("sampling_strategy", "all")),
                image_folder=item.get("image_folder"),
            )
        )
    return entries


def _read_records(entry: DatasetEntry, issues: list[LoadIssue]) -> list[dict]:
    path = entry.path
    if not path.is_file():
        raise ValueError(f"dataset file {path}: no such file")
    if path.suffix == ".jsonl":
        records = []
        with path.open() as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    issues.append(
                        LoadIssue(source=str(path), sample_id=f"line {line_no}", reason=f"malformed JSON: {error}")
                    )
        return records
    try:
        records = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"dataset file {path}: malformed JSON ({error})") from error
    if not isinstance(records, list):
        raise ValueError(f"dataset file {path}: expected a JSON list of samples")
    return records


def load_mixture(data_path: str, *, seed: int) -> Mixture:
    """Read every entry of ``data_path`` and apply its sampling strategy (deterministic in ``seed``)."""
    mixture = Mixture(entries=parse_data_path(data_path))
    for source, entry in enumerate(mixture.entries):
        records = _read_records(entry, mixture.issues)
        rng = random.Random(f"{seed}:{entry.path}")
        kept = select(len(records), entry.sampling_strategy, rng)
        mixture.samples.extend(records[i] for i in kept)
        mixture.source_index.extend([source] * len(kept))
    if not mixture.samples:
        raise ValueError(f"data_path {data_path}: no samples")
    return mixture
