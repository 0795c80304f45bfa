"""Manager analyses of a ManagerTower checkpoint (paper Figs. 4, 7 and 23-25).

    python -m managertower.analysis --checkpoint ckpt --out report [--batches 4 --batch-size 8 --seed 0]
    python -m managertower.analysis --checkpoint ckpt --out report --data_root arrow/ --task vqa --tokenizer tok/

Loads ``ManagerTowerModel.from_pretrained(--checkpoint)``, runs one no-grad eval pass and writes
manager_weights.csv/.png (the aggregation weights on the unimodal experts) and manager_similarity.csv/.png (cosine
similarity of consecutive managers' aggregated parts) to --out. With ``--data_root`` the inputs are the first
``--batches`` batches of a task's split (Arrow tables, the eval transform at the model's image size); without it,
seeded RANDOM inputs of the model's sizes (token ids with random valid lengths, N(0, 1) pixels), which show the
learned static weights but not what real inputs make of the adaptive ones.
"""

from __future__ import annotations

import argparse

import torch

from managertower.analysis.run import analyse, random_batches, require_managers
from managertower.model import ManagerTowerModel


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m managertower.analysis", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--checkpoint", required=True, help="a save_pretrained folder (config.json, model.safetensors)")
    p.add_argument("--out", required=True, help="folder for the CSV and PNG files")
    p.add_argument("--batches", type=int, default=4, help="random batches (the default input source)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--text-length", type=int, default=None, help="random text length (default 40 or the max)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data_root", help="a folder of .arrow tables: real inputs instead of random ones")
    p.add_argument("--task", default="vqa", choices=("pretrain", "vqa", "snli_ve", "f30k"), help="whose tables")
    p.add_argument("--split", default="val")
    p.add_argument("--tokenizer", help="the tokenizer the model was trained with (needed with --data_root)")
    p.add_argument("--max-text-len", type=int, default=50)
    return p


def data_batches(args, config):
    """The first ``--batches`` batches of the task's split, as the evaluation reads it."""
    from itertools import islice

    from torch.utils.data import DataLoader
    from transformers import AutoTokenizer

    from managertower.data.collate import TwoTowerCollator
    from managertower.data.datasets import DataConfig, TwoTowerDataset
    from managertower.data.transforms import TRAIN_EVAL
    from managertower.train.arguments import DEFAULT_TRANSFORM

    if args.tokenizer is None:
        raise ValueError("--data_root needs --tokenizer (the one the model was trained with)")
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    transform = TRAIN_EVAL[DEFAULT_TRANSFORM[args.task]]
    data = DataConfig(image_size=config.vision.image_size, transform=transform, max_text_len=args.max_text_len)
    dataset = TwoTowerDataset(args.data_root, args.task, args.split, tokenizer=tokenizer, config=data)
    loader = DataLoader(dataset, batch_size=args.batch_size, collate_fn=TwoTowerCollator(tokenizer=tokenizer))
    return list(islice(loader, args.batches))


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    model = ManagerTowerModel.from_pretrained(args.checkpoint).to(torch.device(args.device))
    require_managers(model)  # before drawing any input
    if args.data_root is not None:
        batches, source = data_batches(args, model.config), f"{args.task} {args.split}"
    else:
        batches = random_batches(model.config, batches=args.batches, batch_size=args.batch_size, seed=args.seed,
                                 text_length=args.text_length)  # fmt: skip
        source = "random"
    result = analyse(model, batches, args.out)
    print(f"{result['samples']} {source} samples in {result['batches']} batches; wrote")
    for path in result["files"].values():
        print(f"  {path}")
    return result


if __name__ == "__main__":
    try:
        main()
    except ValueError as error:  # a user's mistake (a checkpoint without managers, a bad size): no traceback
        raise SystemExit(f"error: {error}") from None
