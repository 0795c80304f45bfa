"""playground.fit's bookkeeping: question kinds, where each answer lies among the labels, the table."""

from __future__ import annotations

import pytest

from playground.fit import Fit, answer_starts, kinds_of, table
from playground.questions import QUESTIONS, SUFFIX


def _record(kinds: list[str]) -> dict:
    turns = []
    for i, kind in enumerate(kinds):
        question = ("<image>\n" if i == 0 else "") + QUESTIONS[kind] + SUFFIX
        turns += [{"from": "human", "value": question}, {"from": "gpt", "value": "x"}]
    return {"id": "s-1", "conversations": turns}


def test_kinds_of_reads_each_question_with_or_without_the_image_token():
    assert kinds_of(_record(["count", "background", "read"])) == ["count", "background", "read"]


def test_kinds_of_names_the_sample_and_the_question_it_does_not_know():
    record = _record(["colour"])
    record["conversations"][0]["value"] = "<image>\nWhat is this?"
    with pytest.raises(ValueError, match=r"record s-1: 'What is this\?'"):
        kinds_of(record)


def test_answer_starts_in_conversation_order_even_when_an_answer_repeats():
    ignore = -100
    targets = [ignore, 7, 8, ignore, ignore, 7, ignore, 5, 6, 9]
    assert answer_starts(targets, [[7], [7], [5, 6]], "s") == [1, 5, 7]
    with pytest.raises(ValueError, match=r"sample s: answer tokens \[6, 5\] not found"):
        answer_starts(targets, [[7], [6, 5]], "s")


def test_accuracy_and_table_split_first_and_later_turns():
    fit = Fit()
    fit.asked.update({("colour", "first"): 2, ("colour", "later"): 2, ("read", "later"): 4})
    fit.right.update({("colour", "first"): 2, ("colour", "later"): 1})
    assert fit.accuracy("colour") == 0.75 and fit.accuracy("colour", "first") == 1.0
    assert fit.accuracy("read", "first") is None and fit.accuracy("read") == 0.0
    assert fit.to_dict()["colour"] == {"accuracy": 0.75, "first": 1.0, "later": 0.5, "answers": 4}
    lines = table({"Baseline": fit})
    assert lines[0] == "| Kind | answers | Baseline |"
    # Kinds in question order, only those asked.
    assert lines[2:] == ["| colour | 4 | 75 (100 / 50) |", "| read | 4 | 0 (- / 0) |"]
