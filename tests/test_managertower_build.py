"""ManagerTower's table builders through their CLI (``python -m managertower.data.build``) on generated raw
annotations with a few bad records of each kind: each bad record is skipped, named (file, line or id, field) and
counted once in ``<table>.skipped.json``; the good records are in the table with their own answers; and a file that
cannot be used at all ends in one error line, not a traceback. Also: the dataset names the real text field of a
table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from managertower.data import synthetic
from managertower.data.answers import VQA_VOCABULARY_FILE, normalize_word
from managertower.data.arrow import TableKind, Task, read_table, write_table
from managertower.data.build import main
from managertower.data.datasets import DataConfig, TwoTowerDataset
from managertower.testing import tiny_tokenizer

BAD_BYTE = b"\xff"  # never valid in UTF-8


def _build(source: str, annotations: Path, images: Path, out: Path, *extra: str) -> None:
    main([source, "--annotations", str(annotations), "--images", str(images), "--out", str(out), *extra])


def _skipped(out: Path, table: str) -> dict:
    return json.loads((out / f"{table}.skipped.json").read_text())


def _events(report: dict) -> set[tuple[str, str, str]]:
    """(record, kind, field) of every example: the field is what the reason names first."""
    return {(e["sample_id"], kind, e["reason"].split(":")[0]) for kind, es in report["examples"].items() for e in es}


def _write_json(path: Path, data, *, bad_text: str | None = None) -> None:
    """``data`` as JSON; ``bad_text`` (a string in it) gets a byte that is not UTF-8 in the middle."""
    raw = json.dumps(data).encode()
    if bad_text is not None:
        raw = raw.replace(bad_text.encode(), bad_text[:4].encode() + BAD_BYTE + bad_text[4:].encode(), 1)
    path.write_bytes(raw)


def test_vqa_cli_skips_each_bad_question_once_and_never_mixes_answers(tmp_path):
    raw, out = synthetic.write_vqa(tmp_path / "raw", count=48), tmp_path / "arrow"
    # Train: 48 images, questions 3i-2..3i on image i; questions[k] and annotations[k] are question k+1's.
    questions_file = raw / "v2_OpenEnded_mscoco_train2014_questions.json"
    annotations_file = raw / "v2_mscoco_train2014_annotations.json"
    questions = json.loads(questions_file.read_text())["questions"]
    annotations = json.loads(annotations_file.read_text())["annotations"]
    truth = {a["question_id"]: a for a in annotations}
    questions[18]["question"] = "is the shape on the left ?"  # question 19, whose text gets a byte not UTF-8
    text = {q["question_id"]: q["question"] for q in questions}
    del questions[3]["image_id"]  # question 4
    questions[4]["question"] = "   "  # question 5
    questions.append({**questions[6], "question": "what shape is there ?"})  # question 7 twice: both copies go
    annotations.append({**annotations[9], "answers": [{"answer": "red"}] * 10})  # question 10 annotated twice
    questions.append({"image_id": 1, "question": "what colour is the shape ?"})  # no question_id: questions[145]
    annotations[12]["image_id"] = 99  # question 13's annotation names another image
    annotations.append({"image_id": 1, "answers": [{"answer": "red"}] * 10})  # no question_id: annotations[145]
    synthetic.truncate_jpeg(raw / "train2014" / "COCO_train2014_000000000006.jpg")  # questions 16, 17, 18
    _write_json(questions_file, {"questions": questions}, bad_text=text[19])
    _write_json(annotations_file, {"annotations": annotations})

    _build("vqa", raw, raw, out)

    report = _skipped(out, "vqav2_train")
    assert report["seen"] == 144 + 2 + 1 and report["skipped"] == 12
    assert report["by_reason"] == {
        "missing_field": 3, "empty_text": 1, "duplicate_id": 3, "mismatched_annotation": 1, "corrupt_image": 3,
        "bad_encoding": 1,
    }  # fmt: skip
    assert _events(report) == {
        ("question 4", "missing_field", "image_id"),
        ("questions[145]", "missing_field", "question_id"),
        ("annotations[145]", "missing_field", "question_id"),
        ("question 5", "empty_text", "question"),
        ("question 7", "duplicate_id", "question_id"),
        ("question 10", "duplicate_id", "question_id"),
        ("question 13", "mismatched_annotation", "image_id"),
        ("image 6", "corrupt_image", "image"),
        ("question 19", "bad_encoding", "question"),
    }
    assert report["by_source"] == {str(questions_file): 11, str(annotations_file): 1}
    duplicate_reasons = [e["reason"] for e in report["examples"]["duplicate_id"]]
    assert all("appears 2 times" in reason for reason in duplicate_reasons)
    assert sum(annotations_file.name in reason for reason in duplicate_reasons) == 1  # question 10's two annotations

    table = read_table(out / "vqav2_train.arrow", TableKind.VQA).to_pylist()
    vocabulary = json.loads((out / VQA_VOCABULARY_FILE).read_text())
    kept = {}
    for row in table:
        for qid, question, answers, labels in zip(row["question_id"], row["questions"], row["answers"],
                                                  row["answer_labels"], strict=True):  # fmt: skip
            kept[qid] = (row["image_id"], question, answers, labels)
    assert sorted(kept) == sorted(set(range(1, 145)) - {4, 5, 7, 10, 13, 16, 17, 18, 19})
    for qid, (image_id, question, answers, labels) in kept.items():
        given = [a["answer"] for a in truth[qid]["answers"]]
        assert (image_id, question, answers) == ((qid + 2) // 3, text[qid], given)
        assert {vocabulary[label] for label in labels} == {normalize_word(a) for a in given} & set(vocabulary)
    assert _skipped(out, "vqav2_val")["skipped"] == 0


def test_jsonl_cli_skips_bad_lines_repeated_ids_and_empty_texts(tmp_path):
    out = tmp_path / "arrow"
    nlvr2 = synthetic.write_nlvr2(tmp_path / "nlvr2", count=6)
    source = nlvr2 / "data" / "train.json"
    records = [json.loads(line) for line in source.read_text().splitlines()]
    records[3]["sentence"] = ""
    del records[4]["directory"]
    (nlvr2 / "images" / "train" / "2" / "train-5-0-img0.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    lines = [json.dumps(r).encode() for r in records]
    lines += [json.dumps({**records[2], "label": "False"}).encode()]  # train-2-0-0 again (line 8 after the insert)
    lines.insert(1, b'{"identifier": "train-9-0-0", "sentence": "caf' + BAD_BYTE + b'", "label": "True"}')  # line 2
    lines.append(b'{"identifier": "train-8-0-0", ')  # line 9: not JSON
    source.write_bytes(b"\n".join(lines) + b"\n")

    _build("nlvr2", nlvr2 / "data", nlvr2 / "images", out)

    report = _skipped(out, "nlvr2_train")
    assert report["seen"] == 9 and report["by_reason"] == {
        "bad_encoding": 1, "bad_json": 1, "duplicate_id": 2, "empty_text": 1, "missing_field": 1, "corrupt_image": 1,
    }  # fmt: skip
    assert _events(report) == {
        ("line 2", "bad_encoding", "line"),
        ("line 9", "bad_json", "line"),
        ("train-2-0-0 (line 4)", "duplicate_id", "identifier"),
        ("train-2-0-0 (line 8)", "duplicate_id", "identifier"),
        ("train-3-0-0 (line 5)", "empty_text", "sentence"),
        ("train-4-0-0 (line 6)", "missing_field", "directory"),
        ("train-5-0-0 (line 7)", "corrupt_image", "image"),
    }
    table = read_table(out / "nlvr2_train.arrow", TableKind.NLVR2).to_pylist()
    assert [(r["identifier"], r["answers"]) for r in table] == [("train-0-0-0", ["True"]), ("train-1-0-0", ["False"])]

    snli = synthetic.write_snli_ve(tmp_path / "snli", count=4)
    source = snli / "snli_ve_train.jsonl"
    records = [json.loads(line) for line in source.read_text().splitlines()]  # image trainN: lines 3N+1..3N+3
    del records[1]["Flickr30K_ID"]
    records[4]["sentence2"] = " "
    records.append({**records[0], "gold_label": "contradiction"})  # line 13: train0's first pairID again
    synthetic.truncate_jpeg(snli / "images" / "train3.jpg")
    lines = [json.dumps(r).encode() for r in records]
    lines.insert(5, json.dumps({**records[5], "pairID": "x"}).encode().replace(b"shape", b"sh" + BAD_BYTE + b"pe"))
    source.write_bytes(b"\n".join(lines) + b"\n")

    _build("snli_ve", snli, snli / "images", out)

    report = _skipped(out, "snli_ve_train")
    assert report["seen"] == 14 and report["by_reason"] == {
        "missing_field": 1, "empty_text": 1, "duplicate_id": 2, "bad_encoding": 1, "corrupt_image": 3,
    }  # fmt: skip
    first = records[0]["pairID"]
    assert _events(report) == {
        (f"{first} (line 1)", "duplicate_id", "pairID"),
        (f"{first} (line 14)", "duplicate_id", "pairID"),
        (f"{records[1]['pairID']} (line 2)", "missing_field", "Flickr30K_ID"),
        (f"{records[4]['pairID']} (line 5)", "empty_text", "sentence2"),
        ("line 6", "bad_encoding", "line"),
        ("train3", "corrupt_image", "image"),
    }
    table = read_table(out / "snli_ve_train.arrow", TableKind.SNLI_VE).to_pylist()
    expected = {
        "train0": [records[2]],
        "train1": [records[3], records[5]],
        "train2": records[6:9],
    }
    labels = {"contradiction": 0, "neutral": 1, "entailment": 2}
    assert len(table) == 3
    for row, (image_id, good) in zip(table, expected.items(), strict=True):
        assert [pair[1] for pair in row["sentences"]] == [r["sentence2"] for r in good], image_id
        assert row["labels"] == [labels[r["gold_label"]] for r in good]


def test_caption_cli_decodes_every_image_and_skips_repeated_ids(tmp_path):
    out = tmp_path / "arrow"
    coco = tmp_path / "coco"
    source = synthetic.write_karpathy(coco, count=12)  # splits in turn: train 0 4 8, restval 1 5 9, val 2 6 10
    entries = json.loads(source.read_text())["images"]
    synthetic.truncate_jpeg(coco / "images" / "000000.jpg")
    entries[5]["cocoid"] = 1  # images 1 and 5 share an id: both go
    del entries[2]["split"]  # no split, so no table: counted in train's
    del entries[6]["filename"]
    entries[4]["sentences"][1]["raw"] = "the picture is quite odd"  # unique: it gets a byte that is not UTF-8
    captions = {e["cocoid"]: [s["raw"] for s in e["sentences"]] for e in entries}
    _write_json(source, {"images": entries}, bad_text=captions[4][1])

    _build("karpathy", source, coco, out, "--dataset", "coco")

    train = _skipped(out, "coco_caption_karpathy_train")
    assert train["seen"] == 4 * 4 and train["by_reason"] == {"corrupt_image": 4, "bad_encoding": 1, "unknown_split": 4}
    assert _events(train) == {
        ("000000.jpg", "corrupt_image", "image"),
        ("000004.jpg#1", "bad_encoding", "caption"),
        ("000002.jpg", "unknown_split", "split"),
    }
    table = read_table(out / "coco_caption_karpathy_train.arrow", TableKind.CAPTIONS).to_pylist()
    assert [(r["image_id"], r["caption"]) for r in table] == [
        ("4", [captions[4][0], *captions[4][2:]]),
        ("8", captions[8]),
    ]
    restval = _skipped(out, "coco_caption_karpathy_restval")
    assert restval["by_reason"] == {"duplicate_id": 8}
    assert {e["sample_id"] for e in restval["examples"]["duplicate_id"]} == {"000001.jpg", "000005.jpg"}
    assert read_table(out / "coco_caption_karpathy_restval.arrow", TableKind.CAPTIONS).column(
        "image_id"
    ).to_pylist() == ["9"]
    val = _skipped(out, "coco_caption_karpathy_val")
    assert val["by_reason"] == {"missing_field": 4} and _events(val) == {("images[6]", "missing_field", "filename")}

    sbu = tmp_path / "sbu"
    pairs = synthetic.write_pairs(sbu, count=4)
    lines = pairs.read_bytes().splitlines()
    synthetic.truncate_jpeg(sbu / "images" / "00003.jpg")
    lines += [
        b"images/00000.jpg\ta caf" + BAD_BYTE,
        b"images/00001.jpg",
        b'{"image": "images/00002.jpg"',
        b"\tno image",
    ]
    pairs.write_bytes(b"\n".join(lines) + b"\n")

    _build("pairs", pairs, sbu, out, "--name", "sbu")

    report = _skipped(out, "sbu_0")
    assert report["seen"] == 8 and report["by_reason"] == {
        "bad_encoding": 1, "empty_text": 1, "bad_json": 1, "missing_field": 1, "corrupt_image": 1,
    }  # fmt: skip
    assert _events(report) == {
        ("line 5", "bad_encoding", "line"),
        ("line 6", "empty_text", "caption"),
        ("line 7", "bad_json", "line"),
        ("line 8", "missing_field", "image"),
        ("images/00003.jpg", "corrupt_image", "image"),
    }
    table = read_table(out / "sbu_0.arrow", TableKind.CAPTIONS).to_pylist()
    assert [r["image_id"] for r in table] == ["images/00000.jpg", "images/00001.jpg", "images/00002.jpg"]


def test_vg_cli_skips_repeated_ids_and_bad_boxes(tmp_path):
    vg, out = tmp_path / "vg", tmp_path / "arrow"
    source = synthetic.write_vg(vg, count=4)
    entries = json.loads(source.read_text())
    entries[1]["regions"][0]["x"] = "left"
    entries[3]["id"] = 3  # images 3 and 4 share an id: both go
    source.write_text(json.dumps(entries))

    _build("vg", source, vg, out)

    report = _skipped(out, "vg")
    assert report["seen"] == 12 and report["by_reason"] == {"bad_field": 1, "duplicate_id": 6}
    assert _events(report) == {("vg:2#0", "bad_field", "x"), ("vg:3", "duplicate_id", "id")}
    table = read_table(out / "vg.arrow", TableKind.VG).to_pylist()
    assert [(r["image_id"], len(r["caption"]), len(r["x"])) for r in table] == [("1", 3, 3), ("2", 2, 2)]


@pytest.mark.parametrize("problem", ["not JSON", "wrong layout", "missing file"])
def test_an_unusable_file_is_one_error_line(tmp_path, capsys, problem):
    source = tmp_path / "dataset.json"
    source.write_text({"not JSON": '{"images": [', "wrong layout": '{"pictures": []}'}.get(problem, "{}"))
    args = ("karpathy", source, tmp_path, tmp_path / "arrow", "--dataset", "coco")
    if problem == "missing file":
        args = ("nlvr2", tmp_path, tmp_path, tmp_path / "arrow")
    with pytest.raises(SystemExit) as caught:
        _build(*args)
    error = capsys.readouterr().err
    assert caught.value.code == 2 and "Traceback" not in error
    expected = {
        "not JSON": "line 1, column 13: not valid JSON",
        "wrong layout": "a list under \"images\" at the top, found an object with keys ['pictures']",
    }
    assert expected.get(problem, "train.json not found") in error and len(error.strip().splitlines()) == 1


def test_dataset_names_the_text_field_of_each_table_kind(tmp_path):
    image = b"unused: the index is built before any image is read"
    write_table(tmp_path / "vqav2_test.arrow", TableKind.VQA, {
        "image": [image], "questions": [["what colour ?", " "]], "answers": [[[], []]], "answer_labels": [[[], []]],
        "answer_scores": [[[], []]], "image_id": [1], "question_id": [[1, 2]], "split": ["test"],
    })  # fmt: skip
    write_table(tmp_path / "nlvr2_test1.arrow", TableKind.NLVR2, {
        "image_0": [image], "image_1": [image], "questions": [["", "a statement"]], "answers": [["True", "False"]],
        "identifier": ["a"],
    })  # fmt: skip
    write_table(tmp_path / "snli_ve_test.arrow", TableKind.SNLI_VE, {
        "image": [image], "sentences": [[["premise", ""], ["premise", "a hypothesis"]]], "labels": [[0, 1]],
    })  # fmt: skip
    config = DataConfig(image_size=16, transform="albef")
    reasons = {}
    for task in (Task.VQA, Task.NLVR2, Task.SNLI_VE):
        data = TwoTowerDataset(tmp_path, task, "test", tokenizer=tiny_tokenizer(), config=config)
        reasons[task] = [(e.sample_id, e.reason) for e in data.issues]
    assert reasons == {
        Task.VQA: [("vqav2_test.arrow:0:1", "question: empty text")],
        Task.NLVR2: [("nlvr2_test1.arrow:0:0", "sentence: empty text")],
        Task.SNLI_VE: [("snli_ve_test.arrow:0:0", "hypothesis: empty text")],
    }
