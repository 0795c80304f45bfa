"""The fine-tuning tables: VQAv2, NLVR2 and SNLI-VE (see ``managertower.data.build`` for the command line and
``managertower.data.records`` for how each bad record is named and counted)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from managertower.data.answers import VQA_VOCABULARY_FILE, answer_vocabulary, soft_labels
from managertower.data.arrow import NLVR2_LABELS, SNLI_LABEL_IDS, TableKind
from managertower.data.records import (
    Skips,
    check_unique,
    finish_table,
    image_or_skip,
    int_field,
    json_lines,
    name_field,
    peek,
    read_json,
    repeated,
    string_field,
    text_field,
)
from vlcommon.ledger import BadSample, write_json_atomic

VQA_SPLITS = {"train": "train2014", "val": "val2014", "test": "test2015"}
NLVR2_SPLITS = ("train", "dev", "test1")


def _vqa_file(root: Path, kind: str, folder: str) -> Path:
    return Path(root) / f"v2_{'OpenEnded_mscoco' if kind == 'questions' else 'mscoco'}_{folder}_{kind}.json"


@dataclass(frozen=True, slots=True)
class _Annotation:
    image_id: int | None
    top: str | None  # multiple_choice_answer: what the vocabulary counts
    given: list[str]  # the annotators' answers


@dataclass(frozen=True, slots=True)
class _Annotations:
    """One annotation file, read and checked: per question id its annotation, or why it cannot be used."""

    path: Path
    by_id: dict[int, _Annotation | BadSample]
    orphans: list[tuple[str, BadSample]]  # (name, problem) of the annotations that name no question


def build_vqa(annotations: Path, images: Path, out: Path) -> list[Path]:
    """VQAv2's question and annotation files (``v2_OpenEnded_mscoco_<folder>_questions.json``,
    ``v2_mscoco_<folder>_annotations.json``) and COCO images (``<folder>/COCO_<folder>_<id:012d>.jpg``) ->
    ``vqav2_{train,val,test}.arrow`` and the answer vocabulary ``vqav2_answers.json`` (label id = position).

    Train and val questions with no annotator answer in the vocabulary are left out (``unknown_answer``), as are
    questions whose id is repeated in the questions or the annotations (every copy: ``duplicate_id``) and
    questions whose annotation names another image (``mismatched_annotation``)."""
    answers = {
        split: _vqa_annotations(_vqa_file(annotations, "annotations", VQA_SPLITS[split])) for split in ("train", "val")
    }
    vocabulary = answer_vocabulary(
        a.top for group in answers.values() for a in group.by_id.values() if isinstance(a, _Annotation) and a.top
    )
    write_json_atomic(Path(out) / VQA_VOCABULARY_FILE, vocabulary)
    ids = {answer: label for label, answer in enumerate(vocabulary)}
    written = []
    for split, folder in VQA_SPLITS.items():
        questions_file = _vqa_file(annotations, "questions", folder)
        if split == "test" and not questions_file.is_file():
            continue  # test questions are optional: fine-tuning needs train and val only
        written.append(_vqa_split(questions_file, answers.get(split), ids, Path(images) / folder, out, split))
    return written


def _vqa_annotations(path: Path) -> _Annotations:
    entries = read_json(path, "annotations")
    repeats = repeated(peek(entry, "question_id") for entry in entries)
    by_id: dict[int, _Annotation | BadSample] = {}
    orphans: list[tuple[str, BadSample]] = []
    for number, entry in enumerate(entries):
        try:
            question_id = int_field(entry, "question_id")
        except BadSample as bad:
            orphans.append((f"annotations[{number}]", bad))
            continue
        try:
            check_unique(question_id, "question_id", repeats, path.name)
        except BadSample as bad:
            by_id[question_id] = bad
            continue
        try:
            answers = entry.get("answers")
            if not isinstance(answers, list) or not answers:
                raise BadSample("missing_field", f"answers: expected a list of annotator answers, got {answers!r}")
            given = [string_field(a, "answer", label=f"answers[{i}].answer") for i, a in enumerate(answers)]
            image_id = int_field(entry, "image_id") if entry.get("image_id") is not None else None
            top = entry.get("multiple_choice_answer")
            by_id[question_id] = _Annotation(image_id, top if isinstance(top, str) else None, given)
        except BadSample as bad:
            by_id[question_id] = BadSample(bad.kind, f"{bad} (its annotation in {path.name})")
    return _Annotations(path, by_id, orphans)


def _vqa_split(questions_file: Path, answers: _Annotations | None, ids: dict[str, int], images: Path, out: Path,
               split: str) -> Path:  # fmt: skip
    skips = Skips(str(questions_file))
    for record, bad in answers.orphans if answers is not None else ():
        skips.seen()
        skips.skip(record, bad.kind, str(bad), source=str(answers.path))
    entries = read_json(questions_file, "questions")
    repeats = repeated(peek(entry, "question_id") for entry in entries)
    by_image: dict[int, list[tuple]] = {}
    for number, entry in enumerate(entries):
        skips.seen()
        question_id = peek(entry, "question_id")
        try:
            image_id, kept = _vqa_question(entry, repeats, answers, ids, questions_file.name)
        except BadSample as bad:
            skips.bad(f"question {question_id}" if question_id is not None else f"questions[{number}]", bad)
            continue
        by_image.setdefault(image_id, []).append(kept)
    keys = ("image", "questions", "answers", "answer_labels", "answer_scores", "image_id", "question_id", "split")
    rows: dict[str, list] = {k: [] for k in keys}
    for image_id, kept in sorted(by_image.items()):
        path = images / f"COCO_{images.name}_{image_id:012d}.jpg"
        if (data := image_or_skip(path, f"image {image_id}", skips, len(kept))) is None:
            continue
        for key, values in (("image", data), ("image_id", image_id), ("split", split)):
            rows[key].append(values)
        for position, key in enumerate(("question_id", "questions", "answers", "answer_labels", "answer_scores")):
            rows[key].append([question[position] for question in kept])
    return finish_table(out, f"vqav2_{split}", TableKind.VQA, rows, skips)


def _vqa_question(entry, repeats: Counter, answers: _Annotations | None, ids: dict[str, int], where: str):
    """(image id, (question id, question, answers, labels, scores)) of one question, or :class:`BadSample`."""
    question_id = int_field(entry, "question_id")
    check_unique(question_id, "question_id", repeats, where)
    image_id = int_field(entry, "image_id")
    if image_id < 0:
        raise BadSample("bad_field", f"image_id: {image_id} is negative")
    question = text_field(entry, "question")
    if answers is None:  # test questions have no answers
        return image_id, (question_id, question, [], [], [])
    annotation = answers.by_id.get(question_id)
    if annotation is None:
        raise BadSample("missing_answer", f"answers: no annotation for the question in {answers.path.name}")
    if isinstance(annotation, BadSample):
        raise annotation
    if annotation.image_id is not None and annotation.image_id != image_id:
        raise BadSample(
            "mismatched_annotation",
            f"image_id: {image_id}, but its annotation in {answers.path.name} names image {annotation.image_id}",
        )
    labels, scores = soft_labels(annotation.given, ids)
    if not labels:
        raise BadSample("unknown_answer", f"answers: none of {sorted(set(annotation.given))} is in the vocabulary")
    return image_id, (question_id, question, annotation.given, labels, scores)


def _line_name(number: int, identifier) -> str:
    return f"{identifier} (line {number})" if identifier is not None else f"line {number}"


def nlvr2_images(images: Path, split: str, record: dict) -> tuple[Path, Path]:
    """``train-10171-0-0`` -> ``train/<directory>/train-10171-0-img0.png`` and ``-img1.png``; dev and test1 images
    sit directly in their split folder."""
    stem = name_field(record, "identifier").rsplit("-", 1)[0]
    folder = Path(images) / split / (name_field(record, "directory") if split == "train" else "")
    return folder / f"{stem}-img0.png", folder / f"{stem}-img1.png"


def build_nlvr2(annotations: Path, images: Path, out: Path) -> list[Path]:
    """NLVR2's ``{train,dev,test1}.json`` (JSON lines: identifier, sentence, label, directory) ->
    ``nlvr2_{split}.arrow``, one row per statement; a repeated identifier leaves out every copy."""
    written = []
    for split in NLVR2_SPLITS:
        source = Path(annotations) / f"{split}.json"
        if not source.is_file():
            raise ValueError(f"nlvr2: {source} not found (expected train.json, dev.json, test1.json)")
        skips = Skips(str(source))
        records = list(json_lines(source, skips))
        repeats = repeated(peek(record, "identifier") for _, record in records)
        rows: dict[str, list] = {k: [] for k in ("image_0", "image_1", "questions", "answers", "identifier")}
        for number, record in records:
            skips.seen()
            name = _line_name(number, peek(record, "identifier"))
            try:
                identifier = name_field(record, "identifier")
                check_unique(peek(record, "identifier"), "identifier", repeats, source.name)
                sentence = text_field(record, "sentence")
                if str(record.get("label")) not in NLVR2_LABELS:
                    raise BadSample("unknown_label", f"label: {record.get('label')!r} is not True or False")
                left, right = nlvr2_images(images, split, record)
            except BadSample as bad:
                skips.bad(name, bad)
                continue
            if (first := image_or_skip(left, name, skips, 1)) is None:
                continue
            if (second := image_or_skip(right, name, skips, 1)) is None:
                continue
            for key, value in (("image_0", first), ("image_1", second), ("identifier", identifier)):
                rows[key].append(value)
            rows["questions"].append([sentence])
            rows["answers"].append([str(record["label"])])
        written.append(finish_table(out, f"nlvr2_{split}", TableKind.NLVR2, rows, skips))
    return written


def _snli_record(record: dict, repeats: Counter, where: str) -> tuple[str, list[str], int]:
    """(image id, [premise, hypothesis], label id) of one SNLI-VE line, or :class:`BadSample`."""
    if (pair_id := peek(record, "pairID")) is not None:
        check_unique(pair_id, "pairID", repeats, where)
    gold = record.get("gold_label")
    label = SNLI_LABEL_IDS.get(gold) if isinstance(gold, str) else None
    if label is None:
        raise BadSample("unknown_label", f"gold_label: {gold!r} is not one of {', '.join(SNLI_LABEL_IDS)}")
    hypothesis = text_field(record, "sentence2")
    # The premise is kept for reference only (the image is the premise the model sees): it may be missing.
    premise = string_field(record, "sentence1") if record.get("sentence1") is not None else ""
    return name_field(record, "Flickr30K_ID"), [premise, hypothesis], label


def build_snli_ve(annotations: Path, images: Path, out: Path) -> list[Path]:
    """SNLI-VE's ``snli_ve_{train,dev,test}.jsonl`` (Flickr30K_ID, sentence1, sentence2, gold_label, pairID) and
    the Flickr30K images -> ``snli_ve_{split}.arrow``, hypotheses grouped by image; label ids contradiction 0,
    neutral 1, entailment 2. A repeated ``pairID`` leaves out every copy."""
    written = []
    for split in ("train", "dev", "test"):
        source = Path(annotations) / f"snli_ve_{split}.jsonl"
        if not source.is_file():
            raise ValueError(f"snli_ve: {source} not found")
        skips, by_image = Skips(str(source)), {}
        records = list(json_lines(source, skips))
        repeats = repeated(peek(record, "pairID") for _, record in records)
        for number, record in records:
            skips.seen()
            try:
                image_id, pair, label = _snli_record(record, repeats, source.name)
            except BadSample as bad:
                skips.bad(_line_name(number, peek(record, "pairID")), bad)
                continue
            by_image.setdefault(image_id, []).append((pair, label))
        rows: dict[str, list] = {"image": [], "sentences": [], "labels": []}
        for image_id, items in sorted(by_image.items()):
            if (data := image_or_skip(Path(images) / f"{image_id}.jpg", image_id, skips, len(items))) is None:
                continue
            rows["image"].append(data)
            rows["sentences"].append([pair for pair, _ in items])
            rows["labels"].append([label for _, label in items])
        written.append(finish_table(out, f"snli_ve_{split}", TableKind.SNLI_VE, rows, skips))
    return written
