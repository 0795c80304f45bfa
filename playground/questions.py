"""The language of the playground curriculum: its questions, one-word answers, captions and descriptions.

Each kind of question needs a different view of the image (see :mod:`playground.data`); :func:`scene_for` draws a
scene that can answer the kinds asked of it.
"""

from __future__ import annotations

import random

from playground.images import ALPHABET, BACKGROUNDS, COLOURS, POSITIONS, SHAPES, Scene, region, sample_scene

SUFFIX = "\nAnswer with one word."
QUESTIONS = {
    "background": "What colour is the background?",
    "colour": "What colour is the largest shape?",
    "shape": "Is the largest shape a circle, a square or a triangle?",
    "count": "How many circles, squares and triangles are there in total?",
    "position": "Where is the largest shape: left, right, top or bottom?",
    "read": "What is the text in the image?",
    "small_colour": "What colour is the tiny star?",
}
KINDS = tuple(QUESTIONS)
# Lookup tables, laid out as tables: kept out of the formatter.
# fmt: off
# Number of possible answers of each kind: uniform guessing scores 1/n.
ANSWER_SPACE = {"background": len(BACKGROUNDS), "colour": len(COLOURS), "shape": len(SHAPES), "count": 4,
                "position": len(POSITIONS), "read": len(ALPHABET) ** 2 + len(ALPHABET) ** 3,
                "small_colour": len(COLOURS)}
DESCRIBE = ("Describe the image in detail.", "What is in this image? Describe everything you see.",
            "Give a detailed description of the picture.")
WHERE = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom"}
NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four"}
# fmt: on


def answer(scene: Scene, kind: str) -> str:
    """The one-word answer to ``QUESTIONS[kind]``."""
    if kind == "background":
        return scene.background
    if kind == "colour":
        return scene.main.colour
    if kind == "shape":
        return scene.main.kind
    if kind == "count":
        return str(len(scene.shapes))
    if kind == "position":
        return scene.position
    if kind == "read":
        return scene.text.token
    return scene.star.colour


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _listing(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def caption(scene: Scene) -> str:
    parts = [_a(f"{s.colour} {s.kind}") for s in scene.shapes]
    parts += [f"a tiny {scene.star.colour} star"] if scene.star else []
    parts += [f'the text "{scene.text.token}"'] if scene.text else []
    return f"{_listing(parts)} on a {scene.background} background."


def describe(scene: Scene) -> str:
    w, h = scene.size
    shape = "square" if w == h else "wide" if w > h else "tall"
    main = scene.main
    lines = [
        f"A {shape} image, {w} by {h} pixels, with a {scene.background} background.",
        f"The largest shape is {_a(main.colour)} {main.kind} {WHERE[scene.position]}.",
    ]
    others = [f"a smaller {s.colour} {s.kind} near the {region(s.box, scene.size)}" for s in scene.shapes[1:]]
    if others:
        lines.append(f"There are {NUMBERS[len(scene.shapes)]} shapes in total; the others are {_listing(others)}.")
    else:
        lines.append("It is the only shape.")
    if scene.star:
        lines.append(f"A tiny {scene.star.colour} star is near the {region(scene.star.box, scene.size)}.")
    if scene.text:
        where = region(scene.text.box, scene.size)
        lines.append(f'The text "{scene.text.token}" is written in {scene.text.colour} near the {where}.')
    return " ".join(lines)


def follow_ups(scene: Scene) -> list[tuple[str, str]]:
    main, count = scene.main, len(scene.shapes)
    turns = [
        ("Where is the largest shape?", f"The {main.colour} {main.kind} is {WHERE[scene.position]}."),
        ("How many shapes are there?", "There is one shape." if count == 1 else f"There are {count} shapes."),
    ]
    if scene.text:
        turns.append(("What does the text say?", f'The text says "{scene.text.token}".'))
    if scene.star:
        star = scene.star
        turns.append(
            (
                "Where is the tiny star, and what colour is it?",
                f"It is near the {region(star.box, scene.size)} and it is {star.colour}.",
            )
        )
    return turns


def scene_for(rng: random.Random, needs: set[str]) -> Scene:
    # Text and star appear in half of the images, and always where a question is about them.
    return sample_scene(
        rng,
        count=rng.randint(1, 4),
        text="read" in needs or rng.random() < 0.5,
        star="small_colour" in needs or rng.random() < 0.5,
    )
