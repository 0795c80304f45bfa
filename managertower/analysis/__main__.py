"""Manager analyses of a ManagerTower checkpoint (paper Figs. 4, 7 and 23-25).

    python -m managertower.analysis --checkpoint ckpt --out report [--batches 4 --batch-size 8 --seed 0]

Loads ``ManagerTowerModel.from_pretrained(--checkpoint)``, runs one no-grad eval pass and writes
manager_weights.csv/.png (the aggregation weights on the unimodal experts) and manager_similarity.csv/.png (cosine
similarity of consecutive managers' aggregated parts) to --out. The inputs are seeded RANDOM inputs of the model's
sizes by default (token ids with random valid lengths, N(0, 1) pixels): a real-data source plugs into
``managertower.analysis.analyse`` as any iterable of input dicts.
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
    return p


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    model = ManagerTowerModel.from_pretrained(args.checkpoint).to(torch.device(args.device))
    require_managers(model)  # before drawing any input
    batches = random_batches(model.config, batches=args.batches, batch_size=args.batch_size, seed=args.seed,
                             text_length=args.text_length)  # fmt: skip
    result = analyse(model, batches, args.out)
    print(f"{result['samples']} random samples in {result['batches']} batches; wrote")
    for path in result["files"].values():
        print(f"  {path}")
    return result


if __name__ == "__main__":
    try:
        main()
    except ValueError as error:  # a user's mistake (a checkpoint without managers, a bad size): no traceback
        raise SystemExit(f"error: {error}") from None
