"""Measured ms/sample of random-initialised variants: a training step and a short greedy generation.

All variants are built first from one seed (shared weights where their parameters coincide) and then timed in turn
within each repetition, so a drift of the machine hits every variant alike.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from PIL import Image

from llava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from llava.mm_utils import process_images
from llava.model import LlavaQwenForCausalLM
from llava.processing import image_processor_for

ANSWER_TOKENS = 8  # supervised tokens of the training sample


def resolve(device: str, dtype: str) -> tuple[torch.device, torch.dtype]:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"--device {device!r}: expected auto, cpu or cuda")
    if dtype == "auto":
        return torch.device(device), torch.bfloat16 if device == "cuda" else torch.float32
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"--dtype {dtype!r}: expected auto, float32 or bfloat16")
    return torch.device(device), getattr(torch, dtype)


def _sample(model, image_size, text_tokens: int, device) -> tuple[dict, dict]:
    """(training batch, generation inputs): text, then the image, then (training only) the answer."""
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (image_size[1], image_size[0], 3), dtype=np.uint8))
    pixels = process_images([image], image_processor_for(model.config), model.config)
    pixels = [p.to(device) for p in (pixels if isinstance(pixels, list) else pixels.unbind(0))]
    high = min(model.config.vocab_size, 1000)
    prompt = rng.integers(0, high, text_tokens).tolist() + [IMAGE_TOKEN_INDEX]
    answer = rng.integers(0, high, ANSWER_TOKENS).tolist()
    ids = torch.tensor([prompt + answer], device=device)
    labels = torch.tensor([[IGNORE_INDEX] * len(prompt) + answer], device=device)
    common = {"images": pixels, "image_sizes": [image.size]}
    train = dict(input_ids=ids, labels=labels, supervised_logits_only=True, **common)
    return train, dict(inputs=torch.tensor([prompt], device=device), **common)


def _build(configs: dict, device, dtype) -> dict[str, LlavaQwenForCausalLM]:
    models, reference = {}, None
    for name, config in configs.items():
        torch.manual_seed(0)
        model = LlavaQwenForCausalLM(config).to(device=device, dtype=dtype)
        if reference is not None:  # same weights wherever the parameter exists in both
            model.load_state_dict(reference.state_dict(), strict=False)
        reference = reference or model
        models[name] = model
    return models


def _timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def time_variants(
    configs: dict,
    *,
    image_size,
    text_tokens: int,
    reps: int,
    new_tokens: int,
    device: str = "auto",
    dtype: str = "auto",
) -> dict[str, dict[str, list[float]]]:
    """``{variant: {"train": [ms, ...], "infer": [ms, ...]}}``, one value per repetition (after one warm-up)."""
    device, dtype = resolve(device, dtype)
    models = _build(configs, device, dtype)
    jobs = {}
    for name, model in models.items():
        train, infer = _sample(model, image_size, text_tokens, device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

        def train_step(model=model, train=train, optimizer=optimizer):
            model.train()
            model(**train).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        def generate(model=model, infer=infer):
            model.eval()
            model.generate(**infer, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)

        jobs[name] = {"train": train_step, "infer": generate}
    times = {name: {"train": [], "infer": []} for name in jobs}
    for rep in range(reps + 1):
        for name, phases in jobs.items():
            for phase, fn in phases.items():
                elapsed = _timed(fn, device)
                if rep > 0:  # repetition 0 warms up allocators, kernels and the optimizer state
                    times[name][phase].append(elapsed * 1e3)
    return times
