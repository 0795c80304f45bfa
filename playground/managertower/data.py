"""The demo's generated data: raw sources from ``managertower.data.synthetic`` at the demo's sizes, built by the
real table builders into the Arrow tables the train entry reads.

* ``data/arrow``: COCO-, VG- and SBU-style captions (pre-training), VQAv2 train/val/test (fine-tuning; the train
  split reads val too, as the original does) and Flickr30K-style captions (retrieval: train + val, test);
* ``data/held_out``: VQAv2 val of images drawn from another seed, never trained on: the split the demo scores;
* ``data/tokenizer``: ``managertower.testing.tiny_tokenizer()`` (word level, RoBERTa's special tokens);
* ``report.json``: the counts, every table's rows and the answer vocabulary; ``COMPLETE`` once all is written.

Every image is one coloured shape (4 colours, 3 shapes) at the left or the right of a grey canvas of varying width,
with a vertical jitter: 24 kinds of scene. VQA asks its colour, its shape or its side (10 annotators, 2 of them give
a random colour), so the question says what to look for and only the image says the answer. The pre-trained experts
get their own pairs and sentences from other seeds (:func:`expert_pairs`, :func:`expert_sentences`).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from managertower.data import synthetic
from managertower.data.answers import VQA_VOCABULARY_FILE
from managertower.data.arrow import read_table, split_files
from managertower.data.build_captions import build_karpathy, build_pairs, build_vg
from managertower.data.build_tasks import build_vqa
from managertower.testing import tiny_tokenizer
from playground.managertower.settings import Counts
from playground.stage0 import finished, publish, read_report, staging

IMAGE_SIZE = 48  # the writers' canvas height; the models see 32 px
# Per source, an offset of the demo's seed: no two sources draw the same scenes (the writers seed by their seed).
SEEDS = {"coco": 11, "vg": 23, "sbu": 37, "vqa": 41, "vqa_held_out": 5003, "f30k": 7001, "pairs": 9001, "texts": 9103}


def _seed(seed: int, source: str) -> int:
    return 10_000 * seed + SEEDS[source]


def generate(out: Path, *, counts: Counts, seed: int) -> dict:
    """Write ``out`` (``arrow/``, ``held_out/``, ``tokenizer/``) unless it is complete; the manifest."""
    if finished(out):
        return read_report(out)
    logging.getLogger("managertower.data").setLevel(logging.WARNING)  # a line per table otherwise
    tmp = staging(out)
    raw, arrow = tmp / "raw", tmp / "arrow"
    for dataset, count in (("coco", counts.coco), ("f30k", counts.f30k)):
        source = synthetic.write_karpathy(raw / dataset, count=count, seed=_seed(seed, dataset), size=IMAGE_SIZE)
        build_karpathy(source, raw / dataset, arrow, dataset=dataset)
    vg = synthetic.write_vg(raw / "vg", count=counts.vg, seed=_seed(seed, "vg"), size=IMAGE_SIZE)
    build_vg(vg, raw / "vg", arrow)
    sbu = synthetic.write_pairs(raw / "sbu", count=counts.sbu, seed=_seed(seed, "sbu"), size=IMAGE_SIZE)
    build_pairs(sbu, raw / "sbu", arrow, name="sbu")
    vqa = synthetic.write_vqa(raw / "vqa", count=counts.vqa, seed=_seed(seed, "vqa"), size=IMAGE_SIZE)
    build_vqa(vqa, vqa, arrow)
    # The held-out root's own train split only feeds its builder's vocabulary; the demo scores its val split.
    held = synthetic.write_vqa(
        raw / "vqa_held_out", count=2 * counts.vqa_held_out, seed=_seed(seed, "vqa_held_out"), size=IMAGE_SIZE
    )
    build_vqa(held, held, tmp / "held_out")
    tiny_tokenizer().save_pretrained(tmp / "tokenizer")
    shutil.rmtree(raw)  # the tables hold every image's bytes
    manifest = {
        "seed": seed,
        "counts": {name: getattr(counts, name) for name in counts.__dataclass_fields__},
        "tables": {path.stem: read_table_rows(path) for path in sorted(arrow.glob("*.arrow"))},
        "answers": json.loads((arrow / VQA_VOCABULARY_FILE).read_text()),
    }
    return publish(tmp, out, steps=0, report=manifest)


def read_table_rows(path: Path) -> int:
    """The rows (images) of one Arrow table, whatever its kind."""
    import pyarrow as pa

    return pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all().num_rows


def vqa_questions(root: Path, split: str) -> list[tuple[str, dict[str, float]]]:
    """Per question of ``root``'s VQA ``split``: its text and its answers' soft scores (by answer string)."""
    vocabulary = json.loads((root / VQA_VOCABULARY_FILE).read_text())
    out = []
    for kind, path in split_files(root, "vqa", split):
        table = read_table(path, kind)
        columns = [table.column(c).to_pylist() for c in ("questions", "answer_labels", "answer_scores")]
        for questions, labels, scores in zip(*columns, strict=True):
            for text, ids, values in zip(questions, labels, scores, strict=True):
                if ids:  # the dataset leaves out a question with no answer in the vocabulary; so does this
                    out.append((text, {vocabulary[i]: s for i, s in zip(ids, values, strict=True)}))
    return out


def expert_pairs(count: int, *, seed: int, held_out: bool = False) -> tuple[list[Image.Image], list[str]]:
    """Scenes drawn as the writers draw them, each with one of its three captions (the CLIP expert's data)."""
    stream = _seed(seed, "pairs") + (1 if held_out else 0)
    rng = np.random.default_rng(stream)
    images, captions = [], []
    for scene in synthetic.scenes(count, stream):
        images.append(scene.draw(IMAGE_SIZE, rng))
        captions.append(scene.caption(int(rng.integers(3))))
    return images, captions


def expert_sentences(count: int, *, seed: int, held_out: bool = False) -> list[str]:
    """Sentences in the forms the Two-Tower data uses (captions, VQA questions, NLVR2 and SNLI-VE statements), about
    random scenes: the RoBERTa expert's MLM corpus."""
    stream = _seed(seed, "texts") + (1 if held_out else 0)
    rng = np.random.default_rng(stream)
    out = []
    for scene in synthetic.scenes(count, stream):
        forms = (
            scene.caption(0),
            scene.caption(1),
            scene.caption(2),
            "what colour is the shape ?",
            "what shape is there ?",
            "which side is the shape on ?",
            f"the left image has a {scene.colour} shape",
            f"the shape is {scene.colour}",
            f"the shape is {rng.choice(('big', 'small'))}",
        )
        out.append(forms[int(rng.integers(len(forms)))])
    return out
