"""The pre-training caption tables: Karpathy's COCO / Flickr30K captions, Visual Genome regions and (image, caption)
pairs such as SBU and Conceptual Captions (see ``managertower.data.build`` for the command line and
``managertower.data.records`` for how each bad record is named and counted)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from managertower.data import records
from managertower.data.arrow import TableKind
from vlcommon.ledger import BadSample

KARPATHY_SPLITS = ("train", "restval", "val", "test")
VG_BOX = ("width", "height", "x", "y")


def _caption_rows() -> dict[str, list]:
    return {"image": [], "caption": [], "image_id": [], "split": []}


def build_karpathy(annotations: Path, images: Path, out: Path, *, dataset: str) -> list[Path]:
    """Karpathy's ``dataset_{coco,flickr30k}.json``: one table per split (COCO: train, restval, val, test). An entry
    whose ``split`` is none of these has no table of its own: its skip is counted in the train table's."""
    entries = records.read_json(annotations, "images")
    repeats = records.repeated(_karpathy_id(entry) for entry in entries)
    tables: dict[str, tuple[records.Skips, dict[str, list]]] = {}
    for number, entry in enumerate(entries):
        split = entry.get("split") if isinstance(entry, dict) else None
        split = split if isinstance(split, str) and split in KARPATHY_SPLITS else None
        skips, rows = tables.setdefault(split or "train", (records.Skips(str(annotations)), _caption_rows()))
        _karpathy_entry(entry, number, split, Path(images), repeats, skips, rows)
    return [
        records.finish_table(out, f"{dataset}_caption_karpathy_{split}", TableKind.CAPTIONS, rows, skips)
        for split, (skips, rows) in sorted(tables.items())
    ]


def _karpathy_id(entry) -> int | str | None:
    """The image's id: COCO's ``cocoid``, else Flickr30K's ``imgid``, else the file name (the original's order)."""
    for key in ("cocoid", "imgid", "filename"):
        if (value := records.peek(entry, key)) is not None:
            return value
    return None


def _karpathy_entry(entry, number: int, split: str | None, images: Path, repeats: Counter, skips: records.Skips,
                    rows: dict[str, list]) -> None:  # fmt: skip
    """One image entry: a row of its good captions, each bad caption (or the whole entry) a counted skip."""
    sentences = entry.get("sentences") if isinstance(entry, dict) else None
    count = max(1, len(sentences)) if isinstance(sentences, list) else 1  # records: the entry's captions
    skips.seen(count)
    filename = records.peek(entry, "filename")
    record = filename if isinstance(filename, str) else f"images[{number}]"
    try:
        if split is None:
            found = entry.get("split") if isinstance(entry, dict) else None
            raise BadSample("unknown_split", f"split: {found!r} is not one of {', '.join(KARPATHY_SPLITS)}")
        filename = records.name_field(entry, "filename")
        folder = records.name_field(entry, "filepath") if entry.get("filepath") not in (None, "") else ""
        records.check_unique(_karpathy_id(entry), "image id (cocoid, imgid or filename)", repeats, "the annotations")
        if not isinstance(sentences, list) or not sentences:
            raise BadSample("missing_field", f"sentences: expected a list of captions, got {sentences!r}")
    except BadSample as bad:
        skips.bad(record, bad, count)
        return
    captions = []
    for index, sentence in enumerate(sentences):
        try:
            captions.append(records.text_field(sentence, "raw", label="caption"))
        except BadSample as bad:
            skips.bad(f"{record}#{index}", bad)
    if (
        captions
        and (data := records.image_or_skip(images / folder / filename, record, skips, len(captions))) is not None
    ):
        rows["image"].append(data)
        rows["caption"].append(captions)
        rows["image_id"].append(str(_karpathy_id(entry)))
        rows["split"].append(split)


def build_vg(annotations: Path, images: Path, out: Path) -> Path:
    """Visual Genome ``region_descriptions.json``: one row per image, its region phrases and boxes."""
    skips = records.Skips(str(annotations))
    rows: dict[str, list] = {k: [] for k in ("image", "caption", "width", "height", "x", "y", "image_id")}
    entries = records.read_json(annotations)
    repeats = records.repeated(_vg_id(entry) for entry in entries)
    for number, entry in enumerate(entries):
        _vg_entry(entry, number, Path(images), repeats, skips, rows)
    return records.finish_table(out, "vg", TableKind.VG, rows, skips)


def _vg_key(entry) -> str:
    return "id" if records.peek(entry, "id") is not None else "image_id"


def _vg_id(entry) -> int | str | None:
    return records.peek(entry, _vg_key(entry))


def _vg_entry(entry, number: int, images: Path, repeats: Counter, skips: records.Skips, rows: dict[str, list]) -> None:
    """One image entry: a row of its good region phrases, each bad region (or the whole entry) a counted skip."""
    regions = entry.get("regions") if isinstance(entry, dict) else None
    count = max(1, len(regions)) if isinstance(regions, list) else 1  # records: the image's region phrases
    skips.seen(count)
    image_id = _vg_id(entry)
    try:
        image_id = records.int_field(entry, _vg_key(entry))
        records.check_unique(image_id, _vg_key(entry), repeats, "the annotations")
        if not isinstance(regions, list) or not regions:
            raise BadSample("missing_field", f"regions: expected a list of regions, got {regions!r}")
    except BadSample as bad:
        skips.bad(f"vg:{image_id}" if image_id is not None else f"vg entry #{number}", bad, count)
        return
    kept = []
    for index, region in enumerate(regions):
        try:
            kept.append(
                (records.text_field(region, "phrase"), {key: records.number_field(region, key) for key in VG_BOX})
            )
        except BadSample as bad:
            skips.bad(f"vg:{image_id}#{index}", bad)
    folders = (images / "VG_100K", images / "VG_100K_2")
    path = next((p for p in (f / f"{image_id}.jpg" for f in folders) if p.is_file()), folders[0] / f"{image_id}.jpg")
    if not kept or (data := records.image_or_skip(path, f"vg:{image_id}", skips, len(kept))) is None:
        return
    rows["image"].append(data)
    rows["caption"].append([phrase for phrase, _ in kept])
    for key in VG_BOX:
        rows[key].append([box[key] for _, box in kept])
    rows["image_id"].append(str(image_id))


def _pair_lines(annotations: Path, skips: records.Skips) -> Iterator[tuple[str, str]]:
    """(image path, caption) per line of a TSV (``path<TAB>caption``) or JSONL (``{"image", "caption"}``) file; a bad
    line is counted as seen and skipped here, named by its number."""
    for number, line in records.text_lines(annotations, skips):
        try:
            if line.lstrip().startswith("{"):
                record = records.json_object(line)
                image, caption = records.name_field(record, "image"), records.text_field(record, "caption")
            else:
                image, _, caption = line.partition("\t")
                if not image.strip():
                    raise BadSample("missing_field", "image: missing (expected 'image<TAB>caption')")
                caption = records.text_field({"caption": caption}, "caption")
        except BadSample as bad:
            skips.seen()
            skips.bad(f"line {number}", bad)
            continue
        yield image, caption


def build_pairs(annotations: Path, images: Path, out: Path, *, name: str, shard_size: int = 100_000) -> list[Path]:
    """SBU / Conceptual Captions as (image, caption) pairs -> ``{name}_{shard}.arrow``, captions grouped by image
    (so an image named on several lines is one row with all its captions, by design). Bad lines belong to no image:
    they are counted in the first shard's skips."""
    if shard_size < 1:
        raise ValueError(f"shard_size={shard_size} must be >= 1")
    lines = records.Skips(str(annotations))
    grouped: dict[str, list[str]] = {}
    for image, caption in _pair_lines(annotations, lines):
        grouped.setdefault(image, []).append(caption)
    items, written = sorted(grouped.items()), []
    for shard, start in enumerate(range(0, max(1, len(items)), shard_size)):
        skips, rows = records.Skips(str(annotations)), _caption_rows()
        if shard == 0:
            skips.ledger.merge(lines.ledger)
        for image, captions in items[start : start + shard_size]:
            skips.seen(len(captions))
            if (data := records.image_or_skip(Path(images) / image, image, skips, len(captions))) is not None:
                rows["image"].append(data)
                rows["caption"].append(captions)
                rows["image_id"].append(image)
                rows["split"].append("train")
        written.append(records.finish_table(out, f"{name}_{shard}", TableKind.CAPTIONS, rows, skips))
    return written
