"""Worker for test_deepspeed.py: a few DeepSpeed steps of a tiny model with managers on 2 CPU ranks (gloo).

Run by ``torch.distributed.run``; writes ``rank<r>.json`` with the losses and the gathered manager weights.
"""

import json
import sys

import deepspeed
import torch

from llava.testing import tiny_model


def main(stage: int, out_dir: str) -> None:
    deepspeed.init_distributed(dist_backend="gloo")
    rank = torch.distributed.get_rank()
    # Built before deepspeed.initialize (no zero.Init): DeepSpeed partitions it for ZeRO-3.
    model = tiny_model(
        seed=0,
        vocab_size=256,
        image_aspect_ratio="pad",
        manager={"type": "saum", "expert_layers": [3, 4], "inject_layers": [0, 2]},
    ).train()
    config = {
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "zero_optimization": {"stage": stage},
        "optimizer": {"type": "AdamW", "params": {"lr": 1e-2, "torch_adam": True}},
    }
    engine, *_ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=config)
    torch.manual_seed(1)  # the same batch on both ranks, so both see the same losses
    images = [torch.rand(3, 384, 384) * 2 - 1]
    ids = torch.tensor([[5, -200, 6, 7, 8, 9, 10]])
    losses = []
    for _ in range(4):
        loss = engine(input_ids=ids, labels=ids.clamp_min(0), images=images).loss
        engine.backward(loss)
        engine.step()
        losses.append(loss.item())
    params = list(engine.module.model.managers.parameters())
    with deepspeed.zero.GatheredParameters(params, enabled=stage == 3):
        weights = [p.detach().float().abs().sum().item() for p in params]
    with open(f"{out_dir}/rank{rank}.json", "w") as f:
        json.dump(
            {"losses": losses, "manager_abs_sums": weights, "partitioned": stage == 3 and params[0].numel() == 0}, f
        )


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
