"""VQAv2 answers: the official evaluation's normalisation (``normalize_word``), soft scores and the vocabulary.

The original (and ViLT, METER, BridgeTower) normalise every annotator answer the way the VQA evaluation script
does before counting: lower case; punctuation stripped (kept inside numbers such as ``1,000`` or ``2.5``);
number words to digits; articles dropped; common contractions written with their apostrophe. The answer vocabulary
is every normalised ``multiple_choice_answer`` occurring at least 9 times over train+val: 3129 answers on VQAv2.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from managertower.objectives import vqa_soft_score

MIN_ANSWER_COUNT = 9
# The vocabulary's file in a data root, beside the tables: written by the VQAv2 builder, read by training and
# evaluation (label id = position).
VQA_VOCABULARY_FILE = "vqav2_answers.json"
VQAV2_ANSWERS = 3129  # the vocabulary's size on VQAv2 train + val: the classifier's width by default

_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
            "seven": "7", "eight": "8", "nine": "9", "ten": "10"}  # fmt: skip
_ARTICLES = frozenset({"a", "an", "the"})
# Contractions annotators typed without the apostrophe, as the evaluation maps them.
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's",
    "id": "i'd", "im": "i'm", "ive": "i've", "isnt": "isn't", "itd": "it'd", "itll": "it'll", "lets": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightve": "might've", "mustnt": "mustn't", "mustve": "must've",
    "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't", "shant": "shan't",
    "shed": "she'd", "shes": "she's", "shouldve": "should've", "shouldnt": "shouldn't", "somebodyd": "somebody'd",
    "somebodys": "somebody's", "someoned": "someone'd", "someones": "someone's", "somethingd": "something'd",
    "somethings": "something's", "thered": "there'd", "therere": "there're", "theres": "there's",
    "theyd": "they'd", "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas",
    "wasnt": "wasn't", "wed": "we'd", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "wholl": "who'll", "whos": "who's",
    "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's", "wont": "won't",
    "wouldve": "would've", "wouldnt": "wouldn't", "yall": "y'all", "youd": "you'd", "youll": "you'll",
    "youre": "you're", "youve": "you've",
}  # fmt: skip
_PUNCTUATION = ';/[]"{}()=+\\_-><@`,?!'  # the evaluation's 21 marks: an apostrophe or colon stays
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")  # a period that is not a decimal point
_COMMA_NUMBER = re.compile(r"(\d)(,)(\d)")  # a thousands separator


def _strip_punctuation(text: str) -> str:
    out = text
    for mark in _PUNCTUATION:
        # A mark next to a space in the *input* (or any input with a thousands comma) is deleted; one inside a
        # word splits it. The tests read the input, not the text earlier marks already changed, as the evaluation.
        if (mark + " " in text or " " + mark in text) or _COMMA_NUMBER.search(text) is not None:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD.sub("", out)


def normalize_word(answer: str) -> str:
    """One annotator answer as the VQA evaluation compares it: ``"Two "`` -> ``"2"``, ``"the dog."`` -> ``"dog"``."""
    text = _strip_punctuation(answer.replace("\n", " ").replace("\t", " ").strip().lower())
    words = []
    for word in text.split():
        word = _NUMBERS.get(word, word)
        if word not in _ARTICLES:
            words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


def answer_vocabulary(multiple_choice_answers: Iterable[str], min_count: int = MIN_ANSWER_COUNT) -> list[str]:
    """Normalised answers seen at least ``min_count`` times, most frequent first (ties alphabetical, so the label
    ids do not depend on the order of the annotation files)."""
    counts = Counter(normalize_word(a) for a in multiple_choice_answers)
    kept = [(answer, n) for answer, n in counts.items() if n >= min_count and answer]
    return [answer for answer, _ in sorted(kept, key=lambda pair: (-pair[1], pair[0]))]


def soft_labels(annotator_answers: Iterable[str], vocabulary: dict[str, int]) -> tuple[list[int], list[float]]:
    """The 10 annotators' answers -> (label ids, soft scores ``min(1, 0.3 x count)``) of those in the vocabulary,
    in label order."""
    counts = Counter(normalize_word(a) for a in annotator_answers)
    pairs = sorted((vocabulary[a], vqa_soft_score(n)) for a, n in counts.items() if a in vocabulary)
    return [label for label, _ in pairs], [score for _, score in pairs]
