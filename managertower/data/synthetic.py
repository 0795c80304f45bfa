"""Generated raw datasets in the source layouts the table builders read (``managertower.data.build``), for the tests
and the CPU demo: no download, fixed seeds.

Each image is one coloured shape on a grey background, at the left or the right; its captions name the colour,
the shape and the side. From the same scenes: Karpathy-style caption files (COCO, Flickr30K), Visual Genome
regions, SBU-style pairs, VQAv2 question and annotation files (what colour / what shape / which side), NLVR2
statements over two images and SNLI-VE hypotheses. ``bad=True`` plants one record of each bad kind the pipeline
must skip and count (a missing image, a corrupt image, an empty caption, an unknown answer or label).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40)}
SHAPES = ("circle", "square", "triangle")
SIDES = ("left", "right")
VOCABULARY = (
    "a",
    "the",
    "on",
    "is",
    "there",
    "shape",
    "what",
    "colour",
    "which",
    "side",
    "image",
    "has",
    "of",
    *COLOURS,
    *SHAPES,
    *SIDES,
    "true",
    "false",
    "big",
    "small",
    "?",
)


@dataclass(frozen=True, slots=True)
class Scene:
    colour: str
    shape: str
    side: str

    def caption(self, variant: int = 0) -> str:
        forms = (
            f"a {self.colour} {self.shape} on the {self.side}",
            f"the {self.shape} is {self.colour}",
            f"there is a {self.shape} on the {self.side}",
        )
        return forms[variant % len(forms)]

    def draw(self, size: int, rng: np.random.Generator) -> Image.Image:
        image = Image.new("RGB", (size + int(rng.integers(0, size // 2)), size), (128, 128, 128))
        w, h = image.size
        r = size // 4
        cx = w // 4 if self.side == "left" else 3 * w // 4
        cy = h // 2 + int(rng.integers(-r // 2, r // 2 + 1))
        box = (cx - r, cy - r, cx + r, cy + r)
        draw, fill = ImageDraw.Draw(image), COLOURS[self.colour]
        if self.shape == "circle":
            draw.ellipse(box, fill=fill)
        elif self.shape == "square":
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
        return image


def scenes(count: int, seed: int) -> list[Scene]:
    rng = np.random.default_rng(seed)
    return [
        Scene(str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES)), str(rng.choice(SIDES))) for _ in range(count)
    ]


def _save(scene: Scene, path: Path, size: int, rng: np.random.Generator, fmt: str = "JPEG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scene.draw(size, rng).save(path, fmt)


def _plant_bad_image(path: Path) -> None:
    path.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")


def truncate_jpeg(path: Path) -> None:
    """Cut the JPEG at ``path`` halfway through its pixel data: the header is whole, so ``Image.verify`` passes
    it, but its pixels do not decode."""
    data = path.read_bytes()
    scan = data.index(b"\xff\xda")  # start of scan: the compressed pixels follow
    path.write_bytes(data[: (scan + len(data)) // 2])


def write_karpathy(root: Path, *, count: int = 12, seed: int = 0, size: int = 48, bad: bool = False) -> Path:
    """``root/dataset.json`` and ``root/images/*.jpg``; splits train/restval/val/test in turn. With ``bad``:
    image 0 is missing, image 1 corrupt, and image 2 has one empty caption."""
    rng, entries = np.random.default_rng(seed), []
    for number, scene in enumerate(scenes(count, seed)):
        name = f"{number:06d}.jpg"
        captions = [scene.caption(v) for v in range(3)] + [scene.caption(0)]  # one duplicate caption per image
        if bad and number == 2:
            captions[1] = "  "
        if not (bad and number == 0):
            _save(scene, root / "images" / name, size, rng)
        if bad and number == 1:
            _plant_bad_image(root / "images" / name)
        split = ("train", "restval", "val", "test")[number % 4]
        entries.append(
            {
                "filepath": "images",
                "filename": name,
                "split": split,
                "cocoid": number,
                "sentences": [{"raw": c} for c in captions],
            }
        )
    path = root / "dataset.json"
    path.write_text(json.dumps({"images": entries}))
    return path


def write_vqa(root: Path, *, count: int = 24, seed: int = 0, size: int = 48, bad: bool = False) -> Path:
    """VQAv2's file layout under ``root`` (images ``root/<folder>/COCO_<folder>_<id:012d>.jpg``). Each image has a
    colour, a shape and a side question, each answered by 10 annotators with some noise. ``bad``: question 0 of
    train has answers outside the vocabulary."""
    rng = np.random.default_rng(seed)
    folders = {"train2014": count, "val2014": count // 2, "test2015": count // 4}
    question_id = 0
    for folder, n in folders.items():
        questions, annotations = [], []
        for image_id, scene in enumerate(scenes(n, seed + len(folder) + n), start=1):
            _save(scene, root / folder / f"COCO_{folder}_{image_id:012d}.jpg", size, rng)
            for text, answer in (
                ("what colour is the shape ?", scene.colour),
                ("what shape is there ?", scene.shape),
                ("which side is the shape on ?", scene.side),
            ):
                question_id += 1
                questions.append({"image_id": image_id, "question": text, "question_id": question_id})
                given = [answer] * 8 + [str(rng.choice(list(COLOURS)))] * 2
                if bad and folder == "train2014" and len(annotations) == 0:
                    given = ["Zebra!"] * 10  # one question whose answers never reach the vocabulary
                annotations.append(
                    {
                        "question_id": question_id,
                        "image_id": image_id,
                        "multiple_choice_answer": given[0],
                        "answers": [{"answer": a} for a in given],
                    }
                )
        (root / f"v2_OpenEnded_mscoco_{folder}_questions.json").write_text(json.dumps({"questions": questions}))
        if folder != "test2015":
            (root / f"v2_mscoco_{folder}_annotations.json").write_text(json.dumps({"annotations": annotations}))
    return root


def write_nlvr2(root: Path, *, count: int = 12, seed: int = 0, size: int = 48, bad: bool = False) -> Path:
    """``root/data/{train,dev,test1}.json`` and ``root/images/...``: "the left image has a <colour> shape"."""
    rng = np.random.default_rng(seed)
    for split in ("train", "dev", "test1"):
        lines = []
        for number in range(count):
            left, right = scenes(2, seed + 7 * number + len(split))
            colour = left.colour if number % 2 == 0 else str(rng.choice([c for c in COLOURS if c != left.colour]))
            record = {
                "identifier": f"{split}-{number}-0-0",
                "sentence": f"the left image has a {colour} shape",
                "label": str(number % 2 == 0),
                "directory": number % 3,
            }
            folder = root / "images" / split / (str(record["directory"]) if split == "train" else "")
            _save(left, folder / f"{split}-{number}-0-img0.png", size, rng, "PNG")
            _save(right, folder / f"{split}-{number}-0-img1.png", size, rng, "PNG")
            if bad and split == "train" and number == 1:
                record["label"] = "Maybe"
            lines.append(json.dumps(record))
        (root / "data").mkdir(parents=True, exist_ok=True)
        (root / "data" / f"{split}.json").write_text("\n".join(lines) + "\n")
    return root


def write_snli_ve(root: Path, *, count: int = 12, seed: int = 0, size: int = 48, bad: bool = False) -> Path:
    """``root/snli_ve_{split}.jsonl`` and ``root/images/<id>.jpg``: hypotheses about the shape's colour."""
    rng = np.random.default_rng(seed)
    for split in ("train", "dev", "test"):
        lines = []
        for number, scene in enumerate(scenes(count, seed + len(split))):
            image_id = f"{split}{number}"
            _save(scene, root / "images" / f"{image_id}.jpg", size, rng)
            other = next(c for c in COLOURS if c != scene.colour)
            for hypothesis, label in (
                (f"the shape is {scene.colour}", "entailment"),
                (f"the shape is {other}", "contradiction"),
                ("the shape is big", "neutral"),
            ):
                lines.append(
                    json.dumps(
                        {
                            "Flickr30K_ID": image_id,
                            "sentence1": scene.caption(),
                            "sentence2": hypothesis,
                            "gold_label": label,
                            "pairID": f"{image_id}.jpg#0r{label[0]}",  # SNLI-VE's form: image, premise, label
                        }
                    )
                )
        if bad and split == "train":
            lines.append(json.dumps({"Flickr30K_ID": "train0", "sentence1": "x", "sentence2": "y", "gold_label": "-"}))
        (root / f"snli_ve_{split}.jsonl").write_text("\n".join(lines) + "\n")
    return root


def write_vg(root: Path, *, count: int = 6, seed: int = 0, size: int = 48) -> Path:
    """``root/region_descriptions.json`` and ``root/VG_100K/<id>.jpg``: each image's regions repeat its captions
    (one phrase twice, as VG's duplicates do)."""
    rng, entries = np.random.default_rng(seed), []
    for image_id, scene in enumerate(scenes(count, seed + 101), start=1):
        _save(scene, root / "VG_100K" / f"{image_id}.jpg", size, rng)
        phrases = [scene.caption(1), scene.caption(2), scene.caption(1)]
        entries.append(
            {"id": image_id, "regions": [{"phrase": p, "x": 0, "y": 0, "width": size, "height": size} for p in phrases]}
        )
    path = root / "region_descriptions.json"
    path.write_text(json.dumps(entries))
    return path


def write_pairs(root: Path, *, count: int = 8, seed: int = 0, size: int = 48) -> Path:
    """``root/pairs.tsv`` (``image<TAB>caption``) and ``root/images/*.jpg``, as SBU or Conceptual Captions."""
    rng, lines = np.random.default_rng(seed), []
    for number, scene in enumerate(scenes(count, seed + 202)):
        name = f"images/{number:05d}.jpg"
        _save(scene, root / name, size, rng)
        lines.append(f"{name}\t{scene.caption(number)}")
    path = root / "pairs.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path
