"""Offline stand-ins for what the curriculum downloads: tiny Qwen2 and SigLIP checkpoints and LLaVA-format data.

* :func:`write_tiny_llm`: a random Qwen2 LM in ``Qwen2ForCausalLM`` format with the real offline Qwen2 tokenizer
  (so stage 1 starts exactly as it does from ``Qwen/Qwen2-0.5B-Instruct``);
* :func:`write_tiny_siglip`: a random ``SiglipVisionModel`` (one layer more than the tower keeps, as so400m);
* :func:`write_corpus`: images of coloured shapes with captions (``plain``) or multi-turn questions (``qwen_1_5``),
  text-only and multi-image samples, in LLaVA JSON; the answers depend on the image, so the loss can fall;
* :func:`write_broken_corpus`: one record for each kind of bad sample the dataset must skip and count.

Also a CLI: ``python -m llava.testing.synthetic OUT_DIR`` writes all of them (used by
``scripts/train/tiny_curriculum.sh``).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from transformers import Qwen2Config, Qwen2ForCausalLM, SiglipVisionConfig, SiglipVisionModel

from llava.testing.tiny import QWEN2_EOS, QWEN2_PAD, QWEN2_VOCAB_SIZE
from llava.testing.tokenizer import build_qwen2_tokenizer

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 60, 220), "yellow": (230, 210, 40)}
SHAPES = ("circle", "square")


def tiny_llm_config(*, hidden_size: int = 64, layers: int = 4) -> Qwen2Config:
    """A tiny Qwen2 with the real tokenizer's vocabulary and special tokens."""
    return Qwen2Config(
        vocab_size=QWEN2_VOCAB_SIZE,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
        eos_token_id=QWEN2_EOS,
        pad_token_id=QWEN2_PAD,
        bos_token_id=QWEN2_PAD,
    )


def write_tiny_llm(path: str | Path, *, seed: int = 0, hidden_size: int = 64, layers: int = 4) -> Path:
    torch.manual_seed(seed)
    config = tiny_llm_config(hidden_size=hidden_size, layers=layers)
    path = Path(path)
    Qwen2ForCausalLM(config).save_pretrained(path)
    build_qwen2_tokenizer().save_pretrained(path)
    return path


def write_tiny_siglip(path: str | Path, *, seed: int = 0, image_size: int = 56, layers: int = 5) -> Path:
    torch.manual_seed(seed)
    config = SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=14,
    )
    path = Path(path)
    SiglipVisionModel(config).save_pretrained(path)
    return path


def _draw(colour: str, shape: str, size: tuple[int, int]) -> Image.Image:
    image = Image.new("RGB", size, (245, 245, 245))
    draw = ImageDraw.Draw(image)
    w, h = size
    box = (w // 4, h // 4, 3 * w // 4, 3 * h // 4)
    (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=COLOURS[colour])
    return image


def _sample_image(folder: Path, rng: random.Random, index: int) -> tuple[str, str, str]:
    colour, shape = rng.choice(sorted(COLOURS)), rng.choice(SHAPES)
    size = rng.choice([(64, 64), (96, 48), (48, 120), (160, 90)])
    name = f"img_{index:05d}.png"
    _draw(colour, shape, size).save(folder / name)
    return name, colour, shape


def write_corpus(
    folder: str | Path,
    *,
    count: int,
    template: str,
    seed: int = 0,
    text_only: int = 0,
    multi_image: int = 0,
    name: str = "data.json",
) -> Path:
    """``count`` image samples (+ ``text_only`` and ``multi_image`` ones) in ``folder/name``, images beside it."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    samples = []
    for i in range(count):
        image, colour, shape = _sample_image(folder / "images", rng, len(samples) + seed * 100000)
        if template == "plain":
            turns = [("human", "<image>\nDescribe the image briefly."), ("gpt", f"A {colour} {shape}.")]
        else:
            turns = [
                ("human", "<image>\nWhat colour is the shape?"),
                ("gpt", f"It is {colour}."),
                ("human", "Which shape is it?"),
                ("gpt", f"A {shape}."),
            ]
        samples.append(
            {
                "id": f"s{seed}-{i}",
                "image": f"images/{image}",
                "conversations": [{"from": f, "value": v} for f, v in turns],
            }
        )
    for i in range(multi_image):
        first, c1, _ = _sample_image(folder / "images", rng, len(samples) + seed * 100000)
        second, c2, _ = _sample_image(folder / "images", rng, len(samples) + seed * 100000 + 50000)
        samples.append(
            {
                "id": f"m{seed}-{i}",
                "image": [f"images/{first}", f"images/{second}"],
                "conversations": [
                    {"from": "human", "value": "<image>\n<image>\nName both colours."},
                    {"from": "gpt", "value": f"{c1} and {c2}."},
                ],
            }
        )
    for i in range(text_only):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        samples.append(
            {
                "id": f"t{seed}-{i}",
                "conversations": [
                    {"from": "human", "value": f"What is {a} plus {b}?"},
                    {"from": "gpt", "value": f"{a + b}."},
                ],
            }
        )
    path = folder / name
    path.write_text(json.dumps(samples, indent=1))
    return path


BROKEN_KINDS = {
    "missing_image": "missing_image",
    "corrupt_image": "corrupt_image",
    "empty_file": "corrupt_image",
    "too_many_markers": "image_count",
    "no_marker": "image_count",
    "empty_conversation": "conversation",
    "unknown_role": "conversation",
    "no_answer": "conversation",
    "video": "unsupported",
    "empty_answer": "empty_answer",
}


def write_broken_corpus(folder: str | Path, *, good: int = 4, seed: int = 0) -> tuple[Path, dict[str, str]]:
    """A JSON with ``good`` valid samples, then one of each broken kind; returns the path and, per broken record, its
    id (``#index`` for the record that is not even an object) -> the expected skip kind."""
    folder = Path(folder)
    path = write_corpus(folder, count=good, template="qwen_1_5", seed=seed, name="broken.json")
    samples = json.loads(path.read_text())
    images = folder / "images"
    (images / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    (images / "empty.png").write_bytes(b"")
    ok = samples[0]["image"]
    qa = [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A shape."}]
    broken = {
        "missing_image": {"image": "images/nowhere.png", "conversations": qa},
        "corrupt_image": {"image": "images/corrupt.png", "conversations": qa},
        "empty_file": {"image": "images/empty.png", "conversations": qa},
        "too_many_markers": {
            "image": ok,
            "conversations": [{"from": "human", "value": "<image> <image> Two?"}, {"from": "gpt", "value": "No."}],
        },
        "no_marker": {"conversations": qa},
        "empty_conversation": {"image": ok, "conversations": []},
        "unknown_role": {
            "image": ok,
            "conversations": [{"from": "robot", "value": "<image>\nHi"}, {"from": "gpt", "value": "Hello."}],
        },
        "no_answer": {"image": ok, "conversations": [{"from": "human", "value": "<image>\nHello?"}]},
        "video": {"video": "clip.mp4", "conversations": qa},
        "empty_answer": {"image": ok, "conversations": [qa[0], {"from": "gpt", "value": "  "}]},
    }
    for key, record in broken.items():
        samples.append({"id": key, **record})
    samples.append("not an object")
    path.write_text(json.dumps(samples, indent=1))
    return path, {**BROKEN_KINDS, f"#{len(samples) - 1}": "malformed"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=32)
    args = parser.parse_args(argv)
    write_tiny_llm(args.out / "qwen2-tiny")
    write_tiny_siglip(args.out / "siglip-tiny")
    write_corpus(args.out / "data", count=args.count, template="plain", name="stage1.json", seed=1)
    write_corpus(args.out / "data", count=args.count, template="qwen_1_5", name="stage1_5.json", seed=2, text_only=4)
    write_corpus(
        args.out / "data", count=args.count, template="qwen_1_5", name="stage2.json", seed=3, text_only=4, multi_image=4
    )
    (args.out / "data" / "stage2.yaml").write_text(
        "datasets:\n  - json_path: stage2.json\n    sampling_strategy: all\n"
        "  - json_path: stage1_5.json\n    sampling_strategy: first:25%\n"
    )
    print(f"tiny checkpoints and data written to {args.out}")


if __name__ == "__main__":
    main()
