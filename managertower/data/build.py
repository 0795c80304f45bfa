"""Raw annotation files -> the Arrow tables of ``managertower.data.arrow`` (the original's ``write_*.py``).

    build=(python -m managertower.data.build)
    "${build[@]}" karpathy --dataset coco --annotations dataset_coco.json --images COCO/ --out arrow/
    "${build[@]}" karpathy --dataset f30k --annotations dataset_flickr30k.json --images flickr30k-images/ --out arrow/
    "${build[@]}" vg --annotations region_descriptions.json --images VG/ --out arrow/
    "${build[@]}" pairs --name sbu --annotations sbu.tsv --images SBU/ --out arrow/ [--shard-size N]
    "${build[@]}" vqa --annotations vqav2/ --images COCO/ --out arrow/
    "${build[@]}" nlvr2 --annotations nlvr2/data/ --images nlvr2/images/ --out arrow/
    "${build[@]}" snli_ve --annotations snli_ve/ --images flickr30k-images/ --out arrow/

A *record* is one caption, region phrase, question, statement or hypothesis. No field of a record is trusted
(``managertower.data.records``): a record whose image is missing or does not decode (every pixel is decoded), whose
text is empty or not UTF-8, whose id is missing or repeated (every copy), whose answer or label is unknown, or whose
line is not JSON is left out, named (file, line or id, field) in a warning and counted once; each table gets
``<table>.skipped.json`` beside it with the counts per reason and examples (``vlcommon.ledger.BadSampleLedger``).
A file that cannot be used at all stops the build with one error line. Source layouts and the list of skip
reasons: ``docs/managertower_training.md``.

This module is only the command line: the pre-training caption tables are built by
``managertower.data.build_captions``, the fine-tuning tables by ``managertower.data.build_tasks``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from managertower.data.build_captions import build_karpathy, build_pairs, build_vg
from managertower.data.build_tasks import build_nlvr2, build_snli_ve, build_vqa

# The sources that need only (annotations, images, out); karpathy and pairs take one more argument each.
_PLAIN = {"vg": build_vg, "vqa": build_vqa, "nlvr2": build_nlvr2, "snli_ve": build_snli_ve}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m managertower.data.build",
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


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.source == "karpathy":
        if args.dataset is None:
            parser.error("karpathy needs --dataset coco or f30k")
        build_karpathy(args.annotations, args.images, args.out, dataset=args.dataset)
    elif args.source == "pairs":
        if not args.name:
            parser.error("pairs needs --name")
        build_pairs(args.annotations, args.images, args.out, name=args.name, shard_size=args.shard_size)
    else:
        _PLAIN[args.source](args.annotations, args.images, args.out)


if __name__ == "__main__":
    main()
