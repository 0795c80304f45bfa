"""One rank of the Flickr30K gather check (``test_managertower_train``): the ITC loss and its gradients on half of a
fixed batch, gathered across 2 gloo processes, written to OUT/rank<r>.json (run under torch.distributed.run)."""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist

from managertower.data.arrow import Task
from managertower.model import ManagerTowerModel
from managertower.tasks import TwoTowerForTask
from managertower.testing import tiny_config


def batch(size: int = 8) -> dict:
    """Four images with two captions each, the same on every rank (seeded)."""
    generator = torch.Generator().manual_seed(7)
    return {
        "input_ids": torch.randint(5, 90, (size, 6), generator=generator),
        "attention_mask": torch.ones(size, 6, dtype=torch.long),
        "pixel_values": torch.randn(size, 3, 32, 32, generator=generator),
        "image_index": torch.arange(size) // 2,
    }


def model() -> TwoTowerForTask:
    torch.manual_seed(0)
    return TwoTowerForTask(ManagerTowerModel(tiny_config()), Task.F30K)


def main() -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    task, full = model(), batch()
    share = full["input_ids"].shape[0] // world
    local = {k: v[rank * share : (rank + 1) * share] for k, v in full.items()}
    # Each rank's images keep their own pixels: sample i of the full batch is on rank i // share.
    out = task(**local)
    out["itc_loss"].backward()
    grad = task.itc.text.weight.grad.clone()
    dist.all_reduce(grad)  # DDP's average of the ranks' gradients
    grad /= world
    result = {"itc_loss": out["itc_loss"].item(), "grad": grad.flatten()[:64].tolist(),
              "negative_images": out["negative_images"].tolist(), "negative_texts": out["negative_texts"].tolist(),
              "image_index": local["image_index"].tolist()}  # fmt: skip
    with open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w") as f:
        json.dump(result, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
