"""Raw annotation files -> the Arrow tables of ``managertower.data.arrow`` (the original's ``write_*.py``).

    convert=(python -m managertower.data.convert)
    "${convert[@]}" karpathy --dataset coco --annotations dataset_coco.json --images COCO/ --out arrow/
    "${convert[@]}" karpathy --dataset f30k --annotations dataset_flickr30k.json --images flickr30k-images/ --out arrow/
    "${convert[@]}" vg --annotations region_descriptions.json --images VG/ --out arrow/
    "${convert[@]}" pairs --name sbu --annotations sbu.tsv --images SBU/ --out arrow/ [--shard-size N]
    "${convert[@]}" vqa --annotations vqav2/ --images COCO/ --out arrow/
    "${convert[@]}" nlvr2 --annotations nlvr2/data/ --images nlvr2/images/ --out arrow/
    "${convert[@]}" snli_ve --annotations snli_ve/ --images flickr30k-images/ --out arrow/

A *record* is one caption, region phrase, question or hypothesis. A record whose image is missing or does not
decode, whose text is empty, or whose answer or label is unknown is left out, named in a warning and counted once;
each table gets ``<table>.skipped.json`` beside it with the counts per reason and examples
(``vlcommon.ledger.BadSampleLedger``). Source layouts are described in ``docs/managertower.md``.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from managertower.data.arrow import TableKind, write_table
from vlcommon.ledger import BadSample, BadSampleLedger, write_json_atomic

logger = logging.getLogger(__name__)

VQA_SPLITS = {"train": "train2014", "val": "val2014", "test": "test2015"}
NLVR2_SPLITS = ("train", "dev", "test1")


@dataclass
class Skips:
    """The records one output table left out, counted once each."""

    source: str
    ledger: BadSampleLedger = field(default_factory=lambda: BadSampleLedger(max_share=1.0, min_seen=0))

    def seen(self, count: int = 1) -> None:
        self.ledger.record(seen=count, events=[])

    def skip(self, record: str, kind: str, reason: str, count: int = 1) -> None:
        logger.warning("skipping %s from %s: %s", record, self.source, reason)
        events = [{"sample_id": record, "source": self.source, "kind": kind, "reason": reason}] * count
        self.ledger.record(seen=0, events=events)


def image_bytes(path: Path) -> bytes:
    """The file's bytes, checked to decode; :class:`BadSample` names a missing or corrupt image."""
    if not path.is_file():
        raise BadSample("missing_image", f"image: file not found: {path}")
    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except Exception as error:  # PIL raises several types for broken files
        raise BadSample("corrupt_image", f"image: cannot decode {path}: {error}") from error
    return data


def finish_table(out: Path, name: str, kind: TableKind, rows: dict[str, list], skips: Skips) -> Path:
    path = write_table(out / f"{name}.arrow", kind, rows)
    write_json_atomic(out / f"{name}.skipped.json", skips.ledger.to_dict())
    logger.info("%s: %d rows; %s", path, len(next(iter(rows.values()))), skips.ledger.summary())
    return path


def _texts(texts: Iterable[str], record: str, skips: Skips) -> list[str]:
    kept = []
    for number, text in enumerate(texts):
        if str(text or "").strip():
            kept.append(str(text).strip())
        else:
            skips.skip(f"{record}#{number}", "empty_text", "caption: empty text")
    return kept


# -- captions ----------------------------------------------------------------------------------------------------


def convert_karpathy(annotations: Path, images: Path, out: Path, *, dataset: str) -> list[Path]:
    """Karpathy's ``dataset_{coco,flickr30k}.json``: one table per split (COCO: train, restval, val, test)."""
    entries = json.loads(Path(annotations).read_text())["images"]
    by_split: dict[str, list[dict]] = {}
    for entry in entries:
        by_split.setdefault(entry["split"], []).append(entry)
    written = []
    for split, group in sorted(by_split.items()):
        name = f"{dataset}_caption_karpathy_{split}"
        skips, rows = Skips(str(annotations)), {"image": [], "caption": [], "image_id": [], "split": []}
        for entry in group:
            path = Path(images) / entry.get("filepath", "") / entry["filename"]
            raws = [s["raw"] for s in entry["sentences"]]
            skips.seen(len(raws))
            captions = _texts(raws, entry["filename"], skips)
            if captions and (data := image_or_skip(path, entry["filename"], skips, len(captions))) is not None:
                rows["image"].append(data)
                rows["caption"].append(captions)
                rows["image_id"].append(str(entry.get("cocoid", entry.get("imgid", entry["filename"]))))
                rows["split"].append(split)
        written.append(finish_table(out, name, TableKind.CAPTIONS, rows, skips))
    return written


def image_or_skip(path: Path, record: str, skips: Skips, count: int) -> bytes | None:
    try:
        return image_bytes(path)
    except BadSample as bad:
        skips.skip(record, bad.kind, str(bad), count)
        return None


def convert_vg(annotations: Path, images: Path, out: Path) -> Path:
    """Visual Genome ``region_descriptions.json``: one row per image, its region phrases and boxes."""
    skips = Skips(str(annotations))
    rows: dict[str, list] = {k: [] for k in ("image", "caption", "width", "height", "x", "y", "image_id")}
    for entry in json.loads(Path(annotations).read_text()):
        image_id = entry.get("id", entry.get("image_id"))
        regions = [r for r in entry["regions"] if str(r.get("phrase") or "").strip()]
        skips.seen(len(entry["regions"]))
        for number, region in enumerate(entry["regions"]):
            if not str(region.get("phrase") or "").strip():
                skips.skip(f"vg:{image_id}#{number}", "empty_text", "phrase: empty text")
        path = next(
            (
                p
                for p in (Path(images) / "VG_100K" / f"{image_id}.jpg", Path(images) / "VG_100K_2" / f"{image_id}.jpg")
                if p.is_file()
            ),
            Path(images) / "VG_100K" / f"{image_id}.jpg",
        )
        if not regions or (data := image_or_skip(path, f"vg:{image_id}", skips, len(regions))) is None:
            continue
        rows["image"].append(data)
        rows["caption"].append([r["phrase"].strip() for r in regions])
        for key in ("width", "height", "x", "y"):
            rows[key].append([int(r[key]) for r in regions])
        rows["image_id"].append(str(image_id))
    return finish_table(out, "vg", TableKind.VG, rows, skips)


def _pair_lines(annotations: Path) -> Iterator[tuple[str, str]]:
    """(image path, caption) per line of a TSV (``path<TAB>caption``) or JSONL (``{"image", "caption"}``) file."""
    for number, line in enumerate(Path(annotations).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            record = json.loads(line)
            yield str(record["image"]), str(record.get("caption") or "")
        else:
            image, _, caption = line.partition("\t")
            if not image:
                raise ValueError(f"{annotations}:{number}: expected 'image<TAB>caption'")
            yield image, caption


def convert_pairs(annotations: Path, images: Path, out: Path, *, name: str, shard_size: int = 100_000) -> list[Path]:
    """SBU / Conceptual Captions as (image, caption) pairs -> ``{name}_{shard}.arrow``, captions grouped by image."""
    if shard_size < 1:
        raise ValueError(f"shard_size={shard_size} must be >= 1")
    grouped: dict[str, list[str]] = {}
    for image, caption in _pair_lines(annotations):
        grouped.setdefault(image, []).append(caption)
    items, written = sorted(grouped.items()), []
    for shard, start in enumerate(range(0, len(items), shard_size)):
        skips, rows = Skips(str(annotations)), {"image": [], "caption": [], "image_id": [], "split": []}
        for image, raws in items[start : start + shard_size]:
            skips.seen(len(raws))
            captions = _texts(raws, image, skips)
            if captions and (data := image_or_skip(Path(images) / image, image, skips, len(captions))) is not None:
                rows["image"].append(data)
                rows["caption"].append(captions)
                rows["image_id"].append(image)
                rows["split"].append("train")
        written.append(finish_table(out, f"{name}_{shard}", TableKind.CAPTIONS, rows, skips))
    return written


# -- command line ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    import argparse

    from managertower.data import convert_tasks

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
