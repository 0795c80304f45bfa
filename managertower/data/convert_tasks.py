"""The fine-tuning converters: VQAv2, NLVR2 and SNLI-VE (see ``managertower.data.convert`` for the CLI and the
skip accounting)."""

from __future__ import annotations

import json
from pathlib import Path

from managertower.data.answers import answer_vocabulary, soft_labels
from managertower.data.arrow import NLVR2_LABELS, SNLI_LABEL_IDS, TableKind
from managertower.data.convert import (
    NLVR2_SPLITS,
    VQA_SPLITS,
    Skips,
    finish_table,
    image_or_skip,
)
from vlcommon.ledger import write_json_atomic

VQA_VOCABULARY_FILE = "vqav2_answers.json"


def _vqa_file(root: Path, kind: str, folder: str) -> Path:
    return Path(root) / f"v2_{'OpenEnded_mscoco' if kind == 'questions' else 'mscoco'}_{folder}_{kind}.json"


def convert_vqa(annotations: Path, images: Path, out: Path) -> list[Path]:
    """VQAv2's question and annotation files (``v2_OpenEnded_mscoco_<folder>_questions.json``,
    ``v2_mscoco_<folder>_annotations.json``) and COCO images (``<folder>/COCO_<folder>_<id:012d>.jpg``) ->
    ``vqav2_{train,val,test}.arrow`` and the answer vocabulary ``vqav2_answers.json`` (label id = position).

    Train and val questions with no annotator answer in the vocabulary are left out (``unknown_answer``)."""
    answers: dict[str, dict[int, dict]] = {}
    for split in ("train", "val"):
        path = _vqa_file(annotations, "annotations", VQA_SPLITS[split])
        answers[split] = {a["question_id"]: a for a in json.loads(path.read_text())["annotations"]}
    vocabulary = answer_vocabulary(a["multiple_choice_answer"] for group in answers.values() for a in group.values())
    write_json_atomic(Path(out) / VQA_VOCABULARY_FILE, vocabulary)
    ids = {answer: label for label, answer in enumerate(vocabulary)}
    written = []
    for split, folder in VQA_SPLITS.items():
        questions_file = _vqa_file(annotations, "questions", folder)
        if split == "test" and not questions_file.is_file():
            continue  # test questions are optional: fine-tuning needs train and val only
        written.append(_vqa_split(questions_file, answers.get(split), ids, Path(images), out, split, folder))
    return written


def _vqa_split(questions_file: Path, answers, ids: dict[str, int], images: Path, out: Path, split: str, folder: str):
    skips = Skips(str(questions_file))
    by_image: dict[int, list[dict]] = {}
    for question in json.loads(questions_file.read_text())["questions"]:
        by_image.setdefault(question["image_id"], []).append(question)
    keys = ("image", "questions", "answers", "answer_labels", "answer_scores", "image_id", "question_id", "split")
    rows: dict[str, list] = {k: [] for k in keys}
    for image_id, questions in sorted(by_image.items()):
        skips.seen(len(questions))
        kept = []
        for q in questions:
            if answers is not None and q["question_id"] not in answers:
                skips.skip(f"question {q['question_id']}", "missing_answer", "answers: no annotation for the question")
                continue
            given = [a["answer"] for a in answers[q["question_id"]]["answers"]] if answers is not None else []
            labels, scores = soft_labels(given, ids) if answers is not None else ([], [])
            if answers is not None and not labels:
                skips.skip(
                    f"question {q['question_id']}",
                    "unknown_answer",
                    f"answers: none of {sorted(set(given))} is in the answer vocabulary",
                )
                continue
            kept.append((q, given, labels, scores))
        path = images / folder / f"COCO_{folder}_{image_id:012d}.jpg"
        if not kept or (data := image_or_skip(path, f"image {image_id}", skips, len(kept))) is None:
            continue
        for key, values in (("image", data), ("image_id", image_id), ("split", split)):
            rows[key].append(values)
        rows["questions"].append([q["question"] for q, *_ in kept])
        rows["question_id"].append([q["question_id"] for q, *_ in kept])
        rows["answers"].append([given for _, given, _, _ in kept])
        rows["answer_labels"].append([labels for *_, labels, _ in kept])
        rows["answer_scores"].append([scores for *_, scores in kept])
    return finish_table(out, f"vqav2_{split}", TableKind.VQA, rows, skips)


def nlvr2_images(images: Path, split: str, record: dict) -> tuple[Path, Path]:
    """``train-10171-0-0`` -> ``train/<directory>/train-10171-0-img0.png`` and ``-img1.png``; dev and test1 images
    sit directly in their split folder."""
    stem = record["identifier"].rsplit("-", 1)[0]
    folder = Path(images) / split / (str(record["directory"]) if split == "train" else "")
    return folder / f"{stem}-img0.png", folder / f"{stem}-img1.png"


def convert_nlvr2(annotations: Path, images: Path, out: Path) -> list[Path]:
    """NLVR2's ``{train,dev,test1}.json`` (JSON lines: identifier, sentence, label, directory) ->
    ``nlvr2_{split}.arrow``, one row per statement."""
    written = []
    for split in NLVR2_SPLITS:
        source = Path(annotations) / f"{split}.json"
        if not source.is_file():
            raise ValueError(f"nlvr2: {source} not found (expected train.json, dev.json, test1.json)")
        skips = Skips(str(source))
        rows: dict[str, list] = {k: [] for k in ("image_0", "image_1", "questions", "answers", "identifier")}
        for line in source.read_text().splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            skips.seen()
            name = record["identifier"]
            if not str(record.get("sentence") or "").strip():
                skips.skip(name, "empty_text", "sentence: empty text")
                continue
            if str(record.get("label")) not in NLVR2_LABELS:
                skips.skip(name, "unknown_label", f"label: {record.get('label')!r} is not True or False")
                continue
            left, right = nlvr2_images(images, split, record)
            if (first := image_or_skip(left, name, skips, 1)) is None:
                continue
            if (second := image_or_skip(right, name, skips, 1)) is None:
                continue
            for key, value in (("image_0", first), ("image_1", second), ("identifier", name)):
                rows[key].append(value)
            rows["questions"].append([record["sentence"].strip()])
            rows["answers"].append([str(record["label"])])
        written.append(finish_table(out, f"nlvr2_{split}", TableKind.NLVR2, rows, skips))
    return written


def convert_snli_ve(annotations: Path, images: Path, out: Path) -> list[Path]:
    """SNLI-VE's ``snli_ve_{train,dev,test}.jsonl`` (Flickr30K_ID, sentence1, sentence2, gold_label) and the
    Flickr30K images -> ``snli_ve_{split}.arrow``, hypotheses grouped by image; label ids contradiction 0,
    neutral 1, entailment 2."""
    written = []
    for split in ("train", "dev", "test"):
        source = Path(annotations) / f"snli_ve_{split}.jsonl"
        if not source.is_file():
            raise ValueError(f"snli_ve: {source} not found")
        skips, by_image = Skips(str(source)), {}
        for number, line in enumerate(source.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            skips.seen()
            label = SNLI_LABEL_IDS.get(record.get("gold_label"))
            if label is None:
                skips.skip(f"line {number}", "unknown_label", f"gold_label: {record.get('gold_label')!r}")
            elif not str(record.get("sentence2") or "").strip():
                skips.skip(f"line {number}", "empty_text", "sentence2: empty hypothesis")
            else:
                pair = [str(record.get("sentence1") or ""), record["sentence2"].strip()]
                by_image.setdefault(str(record["Flickr30K_ID"]), []).append((pair, label))
        rows: dict[str, list] = {"image": [], "sentences": [], "labels": []}
        for image_id, items in sorted(by_image.items()):
            if (data := image_or_skip(Path(images) / f"{image_id}.jpg", image_id, skips, len(items))) is None:
                continue
            rows["image"].append(data)
            rows["sentences"].append([pair for pair, _ in items])
            rows["labels"].append([label for _, label in items])
        written.append(finish_table(out, f"snli_ve_{split}", TableKind.SNLI_VE, rows, skips))
    return written
