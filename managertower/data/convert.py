"""Raw annotation files -> the Arrow tables of ``managertower.data.arrow`` (the original's ``write_*.py``).

    convert=(python -m managertower.data.convert)
    "${convert[@]}" karpathy --dataset coco --annotations dataset_coco.json --images COCO/ --out arrow/
    "${convert[@]}" karpathy --dataset f30k --annotations dataset_flickr30k.json --images flickr30k-images/ --out arrow/
    "${convert[@]}" vg --annotations region_descriptions.json --images VG/ --out arrow/
    "${convert[@]}" pairs --name sbu --annotations sbu.tsv --images SBU/ --out arrow/ [--shard-size N]
    "${convert[@]}" vqa --annotations vqav2/ --images COCO/ --out arrow/
    "${convert[@]}" nlvr2 --annotations nlvr2/data/ --images nlvr2/images/ --out arrow/
    "${convert[@]}" snli_ve --annotations snli_ve/ --images flickr30k-images/ --out arrow/

A *record* is one caption, region phrase, question, statement or hypothesis. No field of a record is trusted
(``managertower.data.records``): a record whose image is missing or does not decode (every pixel is decoded), whose
text is empty or not UTF-8, whose id is missing or repeated (every copy), whose answer or label is unknown, or whose
line is not JSON is left out, named (file, line or id, field) in a warning and counted once; each table gets
``<table>.skipped.json`` beside it with the counts per reason and examples (``vlcommon.ledger.BadSampleLedger``).
A file that cannot be used at all stops the conversion with one error line. Source layouts and the list of
skip reasons: ``docs/managertower_training.md``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from managertower.data.arrow import TableKind
from managertower.data.records import (
    Skips,
    check_unique,
    finish_table,
    image_or_skip,
    int_field,
    json_object,
    name_field,
    number_field,
    peek,
    read_json,
    repeated,
    text_field,
    text_lines,
)
from vlcommon.ledger import BadSample

logger = logging.getLogger(__name__)

VQA_SPLITS = {"train": "train2014", "val": "val2014", "test": "test2015"}
NLVR2_SPLITS = ("train", "dev", "test1")
KARPATHY_SPLITS = ("train", "restval", "val", "test")
VG_BOX = ("width", "height", "x", "y")


def _caption_rows() -> dict[str, list]:
    return {"image": [], "caption": [], "image_id": [], "split": []}


# -- captions ----------------------------------------------------------------------------------------------------


def convert_karpathy(annotations: Path, images: Path, out: Path, *, dataset: str) -> list[Path]:
    """Karpathy's ``dataset_{coco,flickr30k}.json``: one table per split (COCO: train, restval, val, test). An entry
    whose ``split`` is none of these has no table of its own: its skip is counted in the train table's."""
    entries = read_json(annotations, "images")
    repeats = repeated(_karpathy_id(entry) for entry in entries)
    tables: dict[str, tuple[Skips, dict[str, list]]] = {}
    for number, entry in enumerate(entries):
        split = entry.get("split") if isinstance(entry, dict) else None
        split = split if isinstance(split, str) and split in KARPATHY_SPLITS else None
        skips, rows = tables.setdefault(split or "train", (Skips(str(annotations)), _caption_rows()))
        _karpathy_entry(entry, number, split, Path(images), repeats, skips, rows)
    return [
        finish_table(out, f"{dataset}_caption_karpathy_{split}", TableKind.CAPTIONS, rows, skips)
        for split, (skips, rows) in sorted(tables.items())
    ]


def _karpathy_id(entry) -> int | str | None:
    """The image's id: COCO's ``cocoid``, else Flickr30K's ``imgid``, else the file name (the original's order)."""
    for key in ("cocoid", "imgid", "filename"):
        if (value := peek(entry, key)) is not None:
            return value
    return None


def _karpathy_entry(entry, number: int, split: str | None, images: Path, repeats: Counter, skips: Skips,
                    rows: dict[str, list]) -> None:  # fmt: skip
    """One image entry: a row of its good captions, each bad caption (or the whole entry) a counted skip."""
    sentences = entry.get("sentences") if isinstance(entry, dict) else None
    count = max(1, len(sentences)) if isinstance(sentences, list) else 1  # records: the entry's captions
    skips.seen(count)
    filename = peek(entry, "filename")
    record = filename if isinstance(filename, str) else f"images[{number}]"
    try:
        if split is None:
            found = entry.get("split") if isinstance(entry, dict) else None
            raise BadSample("unknown_split", f"split: {found!r} is not one of {', '.join(KARPATHY_SPLITS)}")
        filename = name_field(entry, "filename")
        folder = name_field(entry, "filepath") if entry.get("filepath") not in (None, "") else ""
        check_unique(_karpathy_id(entry), "image id (cocoid, imgid or filename)", repeats, "the annotations")
        if not isinstance(sentences, list) or not sentences:
            raise BadSample("missing_field", f"sentences: expected a list of captions, got {sentences!r}")
    except BadSample as bad:
        skips.bad(record, bad, count)
        return
    captions = []
    for index, sentence in enumerate(sentences):
        try:
            captions.append(text_field(sentence, "raw", label="caption"))
        except BadSample as bad:
            skips.bad(f"{record}#{index}", bad)
    if captions and (data := image_or_skip(images / folder / filename, record, skips, len(captions))) is not None:
        rows["image"].append(data)
        rows["caption"].append(captions)
        rows["image_id"].append(str(_karpathy_id(entry)))
        rows["split"].append(split)


def convert_vg(annotations: Path, images: Path, out: Path) -> Path:
    """Visual Genome ``region_descriptions.json``: one row per image, its region phrases and boxes."""
    skips = Skips(str(annotations))
    rows: dict[str, list] = {k: [] for k in ("image", "caption", "width", "height", "x", "y", "image_id")}
    entries = read_json(annotations)
    repeats = repeated(_vg_id(entry) for entry in entries)
    for number, entry in enumerate(entries):
        _vg_entry(entry, number, Path(images), repeats, skips, rows)
    return finish_table(out, "vg", TableKind.VG, rows, skips)


def _vg_key(entry) -> str:
    return "id" if peek(entry, "id") is not None else "image_id"


def _vg_id(entry) -> int | str | None:
    return peek(entry, _vg_key(entry))


def _vg_entry(entry, number: int, images: Path, repeats: Counter, skips: Skips, rows: dict[str, list]) -> None:
    """One image entry: a row of its good region phrases, each bad region (or the whole entry) a counted skip."""
    regions = entry.get("regions") if isinstance(entry, dict) else None
    count = max(1, len(regions)) if isinstance(regions, list) else 1  # records: the image's region phrases
    skips.seen(count)
    image_id = _vg_id(entry)
    try:
        image_id = int_field(entry, _vg_key(entry))
        check_unique(image_id, _vg_key(entry), repeats, "the annotations")
        if not isinstance(regions, list) or not regions:
            raise BadSample("missing_field", f"regions: expected a list of regions, got {regions!r}")
    except BadSample as bad:
        skips.bad(f"vg:{image_id}" if image_id is not None else f"vg entry #{number}", bad, count)
        return
    kept = []
    for index, region in enumerate(regions):
        try:
            kept.append((text_field(region, "phrase"), {key: number_field(region, key) for key in VG_BOX}))
        except BadSample as bad:
            skips.bad(f"vg:{image_id}#{index}", bad)
    folders = (images / "VG_100K", images / "VG_100K_2")
    path = next((p for p in (f / f"{image_id}.jpg" for f in folders) if p.is_file()), folders[0] / f"{image_id}.jpg")
    if not kept or (data := image_or_skip(path, f"vg:{image_id}", skips, len(kept))) is None:
        return
    rows["image"].append(data)
    rows["caption"].append([phrase for phrase, _ in kept])
    for key in VG_BOX:
        rows[key].append([box[key] for _, box in kept])
    rows["image_id"].append(str(image_id))


def _pair_lines(annotations: Path, skips: Skips) -> Iterator[tuple[str, str]]:
    """(image path, caption) per line of a TSV (``path<TAB>caption``) or JSONL (``{"image", "caption"}``) file; a bad
    line is counted as seen and skipped here, named by its number."""
    for number, line in text_lines(annotations, skips):
        try:
            if line.lstrip().startswith("{"):
                record = json_object(line)
                image, caption = name_field(record, "image"), text_field(record, "caption")
            else:
                image, _, caption = line.partition("\t")
                if not image.strip():
                    raise BadSample("missing_field", "image: missing (expected 'image<TAB>caption')")
                caption = text_field({"caption": caption}, "caption")
        except BadSample as bad:
            skips.seen()
            skips.bad(f"line {number}", bad)
            continue
        yield image, caption


def convert_pairs(annotations: Path, images: Path, out: Path, *, name: str, shard_size: int = 100_000) -> list[Path]:
    """SBU / Conceptual Captions as (image, caption) pairs -> ``{name}_{shard}.arrow``, captions grouped by image
    (so an image named on several lines is one row with all its captions, by design). Bad lines belong to no image:
    they are counted in the first shard's skips."""
    if shard_size < 1:
        raise ValueError(f"shard_size={shard_size} must be >= 1")
    lines = Skips(str(annotations))
    grouped: dict[str, list[str]] = {}
    for image, caption in _pair_lines(annotations, lines):
        grouped.setdefault(image, []).append(caption)
    items, written = sorted(grouped.items()), []
    for shard, start in enumerate(range(0, max(1, len(items)), shard_size)):
        skips, rows = Skips(str(annotations)), _caption_rows()
        if shard == 0:
            skips.ledger.merge(lines.ledger)
        for image, captions in items[start : start + shard_size]:
            skips.seen(len(captions))
            if (data := image_or_skip(Path(images) / image, image, skips, len(captions))) is not None:
                rows["image"].append(data)
                rows["caption"].append(captions)
                rows["image_id"].append(image)
                rows["split"].append("train")
        written.append(finish_table(out, f"{name}_{shard}", TableKind.CAPTIONS, rows, skips))
    return written


# -- command line ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m managertower.data.convert",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", choices=("karpathy", "vg", "pairs", "vqa", "nlvr2", "snli_ve"))
    parser.add_argument("--annotations", type=Path, required=True, help="the annotation file or folder")
    parser.add_argument("--images", type=Path, required=True, help="the image root")
    parser.add_argument("--out", type=Path, required=True, help="the folder of .arrow tables")
    parser.add_argument("--dataset", choices=("coco", "f30k"), help="karpathy: which captions")
    parser.add_argument("--name", help="pairs: the table name, e.g. sbu or conceptual_caption_train")
    parser.add_argument("--shard-size", type=int, default=100_000, help="pairs: images per table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.annotations.exists():
        parser.error(f"--annotations {args.annotations} does not exist")
    try:
        _run(parser, args)
    except ValueError as error:  # a file that cannot be used at all: one line, no traceback
        parser.exit(2, f"{parser.prog}: error: {error}\n")


def _run(parser, args) -> None:
    from managertower.data import convert_tasks

    if args.source == "karpathy":
        if args.dataset is None:
            parser.error("karpathy needs --dataset coco or f30k")
        convert_karpathy(args.annotations, args.images, args.out, dataset=args.dataset)
    elif args.source == "pairs":
        if not args.name:
            parser.error("pairs needs --name")
        convert_pairs(args.annotations, args.images, args.out, name=args.name, shard_size=args.shard_size)
    elif args.source == "vg":
        convert_vg(args.annotations, args.images, args.out)
    else:
        converter = {
            "vqa": convert_tasks.convert_vqa,
            "nlvr2": convert_tasks.convert_nlvr2,
            "snli_ve": convert_tasks.convert_snli_ve,
        }[args.source]
        converter(args.annotations, args.images, args.out)


if __name__ == "__main__":
    main()
