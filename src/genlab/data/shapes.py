"""`shapes`: a captioned image set made by code (no download), for the text-to-image
family's quick runs and tests: coloured shapes on white, each with the sentence that says
what it is, and a test split of combinations never seen in training.

    x, captions = draw_shapes("train", size=16)     # x (N, 3, 16, 16) uint8
    captions[0]                                     # "a small red circle, top right"
    load_images("shapes", "train")                  # the same as an ImageSet

Every combination of 6 colours (red, green, blue, yellow, purple, black), 3 shapes
(circle, square, triangle), 2 sizes (small, large) and 4 places (top left, top right,
bottom left, bottom right) is drawn 6 times, each shifted by up to 1/16 of the side
(numpy's default_rng seeded by the combination's index, so every call draws the same
pixels). Caption: ``a {size} {colour} {shape}, {place}``. Test split: the combinations
whose (colour + 2 shape + 3 place) index sum is 0 mod 7, all 6 drawings each: colours,
shapes, sizes and places all seen in training, never in that combination. Validation:
the first drawing of every 10th training combination.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (235, 200, 20),
    "purple": (140, 40, 180),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle")
SIZES = ("small", "large")
PLACES = ("top left", "top right", "bottom left", "bottom right")
DRAWINGS = 6


def _combinations() -> list[tuple[int, int, int, int]]:
    return list(
        itertools.product(range(len(COLOURS)), range(len(SHAPES)), range(2), range(len(PLACES)))
    )


def _split_of(index: int, combo: tuple[int, int, int, int], drawing: int) -> str:
    colour, shape, _, place = combo
    if (colour + 2 * shape + 3 * place) % 7 == 0:
        return "test"
    return "val" if index % 10 == 0 and drawing == 0 else "train"


def _draw(combo: tuple[int, int, int, int], drawing: int, index: int, size: int) -> np.ndarray:
    colour, shape, big, place = combo
    rng = np.random.default_rng(index * DRAWINGS + drawing)
    img = np.full((size, size, 3), 255, dtype=np.uint8)
    r = size * (0.22 if big else 0.13)
    cy = size * (0.28 if place < 2 else 0.72) + rng.uniform(-1, 1) * size / 16
    cx = size * (0.28 if place % 2 == 0 else 0.72) + rng.uniform(-1, 1) * size / 16
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    if SHAPES[shape] == "circle":
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    elif SHAPES[shape] == "square":
        inside = (abs(yy - cy) <= r * 0.9) & (abs(xx - cx) <= r * 0.9)
    else:  # a triangle pointing up
        top, bottom = cy - r, cy + r * 0.8
        half = (yy - top) / (bottom - top) * r
        inside = (yy >= top) & (yy <= bottom) & (abs(xx - cx) <= half)
    img[inside] = list(COLOURS.values())[colour]
    return img


def caption(combo: tuple[int, int, int, int]) -> str:
    colour, shape, big, place = combo
    return f"a {SIZES[big]} {list(COLOURS)[colour]} {SHAPES[shape]}, {PLACES[place]}"


def draw_shapes(split: str, size: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """The images (N, 3, size, size) uint8 of ``split`` ("train", "val" or "test"; size 16
    by default) and their captions."""
    size = size or 16
    xs, caps = [], []
    for index, combo in enumerate(_combinations()):
        for drawing in range(DRAWINGS):
            if _split_of(index, combo, drawing) == split:
                xs.append(_draw(combo, drawing, index, size))
                caps.append(caption(combo))
    return torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous(), caps


__all__ = ["caption", "draw_shapes"]
