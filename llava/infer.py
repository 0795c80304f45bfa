"""Offline demo: LLaVA-OneVision inference end to end on a generated image, with a tiny random-weight model.

Everything a real run does happens here -- the real Qwen2 tokenizer (built offline), ChatML prompt, anyres_max_9
preprocessing, SigLIP -> projector -> packing -> Qwen2, KV-cached greedy generation stopping on <|im_end|> --
but the weights are random, so the answer is meaningless. Usage: ``python -m llava.infer [--width W --height H]``.
"""

from __future__ import annotations

import argparse
import time

import torch
from PIL import Image, ImageDraw

from llava.constants import DEFAULT_IMAGE_TOKEN, IMAGE_TOKEN_INDEX
from llava.conversation import conv_templates
from llava.mm_utils import process_images, tokenizer_image_token
from llava.model.anyres import anyres_token_count
from llava.processing import image_processor_for
from llava.testing import build_qwen2_tokenizer, tiny_model


def synthetic_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """A deterministic scene: coloured shapes and a line of small text."""
    gen = torch.Generator().manual_seed(seed)
    image = Image.new("RGB", (width, height), (235, 235, 225))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = (torch.rand(2, generator=gen) * torch.tensor([width * 0.8, height * 0.8])).tolist()
        size = float(torch.rand(1, generator=gen)) * min(width, height) * 0.2 + 10
        colour = tuple(int(c) for c in torch.randint(0, 255, (3,), generator=gen))
        draw.ellipse([x0, y0, x0 + size, y0 + size], fill=colour)
    draw.text((10, height - 20), "LLaVA-OV-Manager demo", fill=(0, 0, 0))
    return image


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=800)
    parser.add_argument("--height", type=int, default=600)
    parser.add_argument("--question", default="What is shown in this image?")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args(argv)

    print("NOTE: this model has RANDOM weights (no downloads here); the answer below is meaningless.\n")
    tokenizer = build_qwen2_tokenizer()
    model = tiny_model(seed=0)
    processor = image_processor_for(model.config)
    image = synthetic_image(args.width, args.height)

    conv = conv_templates["qwen_1_5"].copy()
    conv.append_message(conv.roles[0], f"{DEFAULT_IMAGE_TOKEN}\n{args.question}")
    conv.append_message(conv.roles[1], None)
    prompt = conv.get_prompt()
    input_ids = tokenizer_image_token(prompt, tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt")[None]
    pixel_values = process_images([image], processor, model.config)

    spec = model.mm_spec
    image_tokens = anyres_token_count(
        image.size, spec.grid_pinpoints, spec.crop_size, spec.tokens_per_side, spec.aspect_ratio.max_num_crops
    )
    start = time.perf_counter()
    output = model.generate(
        input_ids, images=pixel_values, image_sizes=[image.size], max_new_tokens=args.max_new_tokens, do_sample=False
    )
    elapsed = time.perf_counter() - start
    print(
        f"image {image.size[0]}x{image.size[1]} -> {tuple(pixel_values.shape[1:])} crops "
        f"({model.config.image_aspect_ratio}), {image_tokens} image tokens, "
        f"{input_ids.shape[1] - 1 + image_tokens} tokens in the prompt"
    )
    print(f"prompt: {prompt!r}")
    answer = tokenizer.decode(output[0], skip_special_tokens=True)
    print(f"generated {output.shape[1]} tokens in {elapsed:.2f}s: {answer!r}")


if __name__ == "__main__":
    main()
