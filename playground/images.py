"""Scenes of flat shapes, a tiny star and a small text token, sampled from a ``random.Random`` and drawn with PIL.

A scene has one *largest* shape (30-40 % of the short side) entirely inside the left, right, top or bottom half,
0-3 smaller shapes (12-20 %), optionally a tiny star (diameter 2.4-4 % of the long side) and a 2-3 character token
in PIL's bitmap font (ink 3.5-5.5 % of the long side, at least one font pixel per pixel). Detail sizes are relative
to the image, as in real photographs: a large image shrunk to one 56-px square loses the star and the text, a small
one keeps them. Nothing here knows about the models that will look at the images.

Only the given ``random.Random`` is used, iteration is over sorted names, there is no anti-aliasing and PNGs carry
no metadata, so a seed gives the same bytes on every run.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass
from functools import cache

from PIL import Image, ImageDraw, ImageFont

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)

COLOURS = {
    "blue": (50, 80, 220),
    "green": (40, 170, 70),
    "orange": (245, 140, 30),
    "purple": (140, 60, 190),
    "red": (220, 40, 40),
    "yellow": (235, 205, 40),
}
BACKGROUNDS = {"black": (25, 25, 25), "grey": (150, 150, 150), "white": (245, 245, 245)}
TEXT_INK = {"black": "white", "grey": "black", "white": "black"}  # background -> a contrasting ink
INKS = {"black": (0, 0, 0), "white": (255, 255, 255)}
SHAPES = ("circle", "square", "triangle")
POSITIONS = ("bottom", "left", "right", "top")
# Letters and digits that the 5x7 bitmap glyphs tell apart (no O/0, I/1).
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
ASPECTS = (1.0, 4 / 3, 3 / 2, 2.0, 3.0, 4.0)
MIN_SHORT, MIN_LONG, MAX_LONG = 48, 64, 900
# Unit star (5 points), rounded so that libm's last bits cannot move a vertex.
_STAR = tuple(
    (
        round(math.sin(k * math.pi / 5) * (1 if k % 2 == 0 else 0.45), 6),
        round(-math.cos(k * math.pi / 5) * (1 if k % 2 == 0 else 0.45), 6),
    )
    for k in range(10)
)


@dataclass(frozen=True, slots=True)
class Item:
    kind: str  # circle, square, triangle, star or text
    colour: str  # a COLOURS name; for text, an INKS name
    box: Box
    token: str = ""  # the text, for kind "text"


@dataclass(frozen=True, slots=True)
class Scene:
    size: tuple[int, int]
    background: str
    shapes: tuple[Item, ...]  # shapes[0] is the largest
    position: str  # the half the largest shape lies in
    star: Item | None = None
    text: Item | None = None

    @property
    def main(self) -> Item:
        return self.shapes[0]


def region(box: Box, size: tuple[int, int]) -> str:
    """Where a box's centre lies on a 3x3 grid: "top left", "top", ..., "centre", ..., "bottom right"."""
    cx, cy = (box[0] + box[2]) / 2 / size[0], (box[1] + box[3]) / 2 / size[1]
    row = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else ""
    col = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else ""
    return f"{row} {col}".strip() or "centre"


def _size(rng: random.Random) -> tuple[int, int]:
    # Long side log-uniform, so small, medium and large images are equally common.
    long = round(math.exp(rng.uniform(math.log(MIN_LONG), math.log(MAX_LONG))))
    short = min(long, max(MIN_SHORT, round(long / rng.choice(ASPECTS))))
    return (long, short) if rng.random() < 0.5 else (short, long)


def _main_box(rng: random.Random, size: tuple[int, int], position: str) -> Box:
    w, h = size
    side = max(12, round(min(w, h) * rng.uniform(0.30, 0.40)))
    # Centre at 20-30 % (or 70-80 %) along one axis: with side <= 40 % of the short side the whole shape stays in
    # that half, so "left/right/top/bottom" is never ambiguous; the other axis is kept near the middle.
    near, mid = rng.uniform(0.20, 0.30), rng.uniform(0.40, 0.60)
    cx, cy = {
        "left": (near * w, mid * h),
        "right": ((1 - near) * w, mid * h),
        "top": (mid * w, near * h),
        "bottom": (mid * w, (1 - near) * h),
    }[position]
    x0, y0 = round(cx - side / 2), round(cy - side / 2)
    return x0, y0, x0 + side, y0 + side


def _place(rng: random.Random, size: tuple[int, int], bw: int, bh: int, taken: list[Box], tries: int = 40):
    """A free box of bw x bh (a margin away from the taken ones), or None."""
    w, h = size
    margin = max(2, min(w, h) // 40)
    if bw + 2 > w or bh + 2 > h:
        return None
    for _ in range(tries):
        x0, y0 = rng.randint(1, w - bw - 1), rng.randint(1, h - bh - 1)
        box = (x0, y0, x0 + bw, y0 + bh)
        if all(
            box[2] + margin <= t[0] or t[2] + margin <= box[0] or box[3] + margin <= t[1] or t[3] + margin <= box[1]
            for t in taken
        ):
            return box
    return None


@cache
def _text_mask(token: str) -> Image.Image:
    """The token's ink at one font pixel per pixel, cropped to the ink (the cell has blank rows)."""
    font = ImageFont.load_default_imagefont()  # the bitmap font: same glyphs whatever FreeType is installed
    left, top, right, bottom = font.getbbox(token)
    mask = Image.new("L", (right - left + 2, bottom - top + 2), 0)
    ImageDraw.Draw(mask).text((1 - left, 1 - top), token, fill=255, font=font)
    return mask.crop(mask.getbbox())


def _try_scene(rng: random.Random, count: int, text: bool, star: bool) -> Scene | None:
    size = _size(rng)
    short, long = min(size), max(size)
    background, position = rng.choice(sorted(BACKGROUNDS)), rng.choice(POSITIONS)
    shapes = [Item(rng.choice(SHAPES), rng.choice(sorted(COLOURS)), _main_box(rng, size, position))]
    taken = [shapes[0].box]
    for _ in range(count - 1):
        side = max(6, round(short * rng.uniform(0.12, 0.20)))
        box = _place(rng, size, side, side, taken)
        if box is None:
            return None
        shapes.append(Item(rng.choice(SHAPES), rng.choice(sorted(COLOURS)), box))
        taken.append(box)
    star_item = text_item = None
    if star:
        diameter = 2 * max(3, round(long * rng.uniform(0.012, 0.020)))
        box = _place(rng, size, diameter, diameter, taken)
        if box is None:
            return None
        star_item = Item("star", rng.choice(sorted(COLOURS)), box)
        taken.append(box)
    if text:
        token = "".join(rng.choice(ALPHABET) for _ in range(rng.choice((2, 3))))
        mask = _text_mask(token)
        scale = max(1, round(long * rng.uniform(0.035, 0.055) / mask.height))
        box = _place(rng, size, mask.width * scale, mask.height * scale, taken)
        if box is None:
            return None
        text_item = Item("text", TEXT_INK[background], box, token)
    return Scene(size, background, tuple(shapes), position, star_item, text_item)


def sample_scene(rng: random.Random, *, count: int, text: bool, star: bool) -> Scene:
    """A scene with exactly ``count`` shapes (1-4), and the star and text when asked; layouts that do not fit are
    drawn again, so the answers keep the distribution they were drawn from."""
    for _ in range(1000):
        scene = _try_scene(rng, count, text, star)
        if scene is not None:
            return scene
    raise RuntimeError(f"no layout with {count} shapes, text={text}, star={star} in 1000 tries")


def _draw_item(draw: ImageDraw.ImageDraw, item: Item) -> None:
    x0, y0, x1, y1 = item.box
    fill = COLOURS[item.colour]
    if item.kind == "circle":
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=fill)
    elif item.kind == "square":
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=fill)
    elif item.kind == "triangle":
        draw.polygon([((x0 + x1 - 1) // 2, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=fill)
    else:  # star
        r, cx, cy = (x1 - x0) / 2, (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2
        draw.polygon([(round(cx + r * u), round(cy + r * v)) for u, v in _STAR], fill=fill)


def render(scene: Scene) -> Image.Image:
    image = Image.new("RGB", scene.size, BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(image)
    for item in scene.shapes + ((scene.star,) if scene.star else ()):
        _draw_item(draw, item)
    if scene.text is not None:
        x0, y0, x1, y1 = scene.text.box
        mask = _text_mask(scene.text.token).resize((x1 - x0, y1 - y0), Image.Resampling.NEAREST)  # crisp pixels
        image.paste(INKS[scene.text.colour], (x0, y0, x1, y1), mask)
    return image


def png_bytes(image: Image.Image) -> bytes:
    """PNG without metadata (no time stamp, no text chunks): byte-identical for identical pixels."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()
