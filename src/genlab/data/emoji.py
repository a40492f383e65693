"""The named image set emoji: Google's and Twitter's drawings of every emoji, captioned, with
a fixed split that holds out a drawing style and emoji-tone pairs.

    x, captions, attributes, source = load_emoji("train", size=32)   # load_images("emoji") calls it

The files are emoji-data 16.0.0 (`fetch("emoji")`: CACHE/emoji/emoji.json and
{google,twitter}/NAME.png, 64x64 RGBA, each checked by sha256 against genlab's manifests).
An image is a base emoji or one of its skin variations (emoji.json's `skin_variations`,
keyed by tone codes: "1F3FE", or "1F3FB-1F3FE" for two people), drawn by a vendor; it is
used when its `has_img_<vendor>` is true and its file exists: 3,786 per vendor. The order:
emoji by `sort_order`, each base first and then its variations in emoji.json's order, each
drawn by google, then twitter. Pixels are composited on white by their alpha (RGB), then
resized with Pillow's box filter when shrinking (each pixel the mean of its area), Lanczos
when enlarging.

The caption, exactly: the base emoji's `name`, lower case (when empty, its first short name
with "_" as " "); then, for a skin variation, ", " and the phrase of each tone code of its
key, in order, joined by ", " (1F3FB "light skin tone", 1F3FC "medium-light skin tone",
1F3FD "medium skin tone", 1F3FE "medium-dark skin tone", 1F3FF "dark skin tone"); then
", google style" or ", twitter style". So "woman surfing, medium-dark skin tone, twitter
style"; a key with one code twice (1F3FB-1F3FB) names it twice.

Attributes, one value per image: "style" (google | twitter), "tone" (none for a base emoji;
the tone word, e.g. medium-dark, when every code of the key is the same tone; mixed when
they differ), "emoji" (the base emoji's `unified`), "unified" (the image's own), "part"
(a or b for the test split, "" otherwise).

The split, fixed: h = int(sha256(base `unified`, e.g. "1F3C4-200D-2640-FE0F")[:8 hex], 16).
Test (a): every twitter image (base and variations) of each emoji both vendors draw (the
base's has_img_google and has_img_twitter) with h % 10 == 0; its google drawings stay in
training (a style held out). Test (b): both vendors' variations keyed exactly 1F3FE of each
emoji with h % 10 == 1 (an emoji-tone pair never seen). Everything else is training; "val"
is the training images with int(sha256(f"{vendor}/{unified}")[:8 hex], 16) % 25 == 0, and
"train" the rest.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from genlab.data.fetch import fetch
from genlab.errors import DataError, reason_of

NATIVE = 64  # the packages' image size (img/VENDOR/64/)
VENDORS = ("google", "twitter")
SPLITS = ("train", "val", "test")
TONES = {  # tone code -> the word for the attribute; its caption phrase is WORD + " skin tone"
    "1F3FB": "light",
    "1F3FC": "medium-light",
    "1F3FD": "medium",
    "1F3FE": "medium-dark",
    "1F3FF": "dark",
}
_TEST_B_KEY = "1F3FE"
_VAL_EVERY = 25


@dataclass(frozen=True)
class EmojiImage:
    """One image of the set: where its file is, what it shows, which split it is in."""

    file: str  # under the set's folder: "twitter/1f3c4-1f3fe-200d-2640-fe0f.png"
    style: str  # "google" | "twitter"
    emoji: str  # the base emoji's unified
    unified: str  # this image's unified (the base's, or its skin variation's)
    key: str  # the skin_variations key ("1F3FE", "1F3FB-1F3FE"), "" for the base
    caption: str
    split: str  # "train" | "val" | "test"
    part: str  # "a" | "b" for test, "" otherwise

    @property
    def tone(self) -> str:
        return tone_of(self.key)


def bucket(text: str) -> int:
    """int of the first 8 hex digits of sha256(text): the split's fixed draw."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)


def tone_of(key: str) -> str:
    """The tone attribute of a skin_variations key: "none" for the base ("" key), the tone
    word when every code of the key is that tone ("1F3FE", "1F3FB-1F3FB"), else "mixed"."""
    if not key:
        return "none"
    tones = {TONES[code] for code in key.split("-")}
    return tones.pop() if len(tones) == 1 else "mixed"


def caption(entry: dict, key: str, style: str) -> str:
    """The caption of `entry` (an emoji.json row) as skin variation `key` ("" for the base)
    drawn in `style`: see the module docstring."""
    name = (entry.get("name") or "").lower()
    if not name:
        name = entry["short_names"][0].replace("_", " ")
    tones = [f"{TONES[code]} skin tone" for code in key.split("-")] if key else []
    return ", ".join([name, *tones, f"{style} style"])


def read_table(folder: Path) -> list[dict]:
    """emoji.json under `folder` (a list of emoji rows); DataError (one line) when it is not."""
    path = folder / "emoji.json"
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(
            f"{path}: cannot read the emoji table ({reason_of(e)}); fetch emoji again"
        ) from None
    if not isinstance(table, list) or not all(isinstance(e, dict) for e in table):
        raise DataError(f"{path}: not emoji-data's emoji.json (a list of objects expected)")
    return table


def images(folder: Path) -> list[EmojiImage]:
    """Every image of the set under `folder`, in the set's order, each with its split."""
    out = []
    try:
        rows = sorted(read_table(folder), key=lambda e: e["sort_order"])
        for e in rows:
            h = bucket(e["unified"])
            both = bool(e.get("has_img_google") and e.get("has_img_twitter"))
            variants = [("", e), *(e.get("skin_variations") or {}).items()]
            for key, v in variants:
                for style in VENDORS:
                    file = f"{style}/{v['image']}"
                    if not v.get(f"has_img_{style}") or not (folder / file).is_file():
                        continue
                    part = ""
                    if both and h % 10 == 0 and style == "twitter":
                        part = "a"
                    elif h % 10 == 1 and key == _TEST_B_KEY:
                        part = "b"
                    if part:
                        split = "test"
                    elif bucket(f"{style}/{v['unified']}") % _VAL_EVERY == 0:
                        split = "val"
                    else:
                        split = "train"
                    out.append(
                        EmojiImage(
                            file,
                            style,
                            e["unified"],
                            v["unified"],
                            key,
                            caption(e, key, style),
                            split,
                            part,
                        )
                    )
    except (KeyError, TypeError, AttributeError, IndexError) as err:
        raise DataError(
            f"{folder / 'emoji.json'}: an emoji row lacks a field genlab reads ({reason_of(err)}); "
            "fetch emoji again"
        ) from None
    return out


def split_counts(folder: Path) -> dict[str, dict[str, int]]:
    """Images per split and style: {"train": {"google": n, "twitter": n, "all": n}, "val",
    "test_a", "test_b"}, from emoji.json and the files (nothing decoded)."""
    counts = {k: dict.fromkeys((*VENDORS, "all"), 0) for k in ("train", "val", "test_a", "test_b")}
    for im in images(folder):
        row = counts[f"test_{im.part}" if im.split == "test" else im.split]
        row[im.style] += 1
        row["all"] += 1
    return counts


def default_size() -> int:
    """64 (the images' own size) where CUDA is available, else 32."""
    return NATIVE if torch.cuda.is_available() else 32


def load_emoji(
    split: str, size: int | None = None, progress: bool = True
) -> tuple[torch.Tensor, list[str], dict[str, list], str]:
    """Split "train", "val" or "test": x (N, 3, size, size) uint8, the captions, the
    attributes (style, tone, emoji, unified, part; one value per image), a source line."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} for emoji; use 'train', 'val' or 'test'")
    size = default_size() if size is None else size
    folder = fetch("emoji", progress=progress)
    every = images(folder)
    keep = [i for i, im in enumerate(every) if im.split == split]
    pixels = _resized(str(folder), size, progress)[keep]  # (N, size, size, 3)
    x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).contiguous()
    chosen = [every[i] for i in keep]
    attributes = {
        "style": [im.style for im in chosen],
        "tone": [im.tone for im in chosen],
        "emoji": [im.emoji for im in chosen],
        "unified": [im.unified for im in chosen],
        "part": [im.part for im in chosen],
    }
    source = f"{folder} (emoji-data 16.0.0, {split}: {len(chosen):,} images)"
    return x, [im.caption for im in chosen], attributes, source


def _resized(folder: str, size: int, progress: bool) -> np.ndarray:
    """The images on white at size x size (box filter shrinking, Lanczos enlarging), kept in
    this process (read-only) while the folder is the same one (a re-fetch renames a new one
    into place)."""
    st = Path(folder).stat()
    key = (folder, st.st_ino, st.st_mtime_ns)
    if _KEPT.get("key") != key:
        _KEPT.clear()
        _KEPT["key"] = key
    if NATIVE not in _KEPT:
        _KEPT[NATIVE] = _on_white(Path(folder), progress)
    if size not in _KEPT:
        full = _KEPT[NATIVE]
        mode = Image.Resampling.BOX if size < NATIVE else Image.Resampling.LANCZOS
        out = np.empty((len(full), size, size, 3), dtype=np.uint8)
        for i, a in enumerate(full):
            out[i] = np.asarray(Image.fromarray(a).resize((size, size), mode))
        out.setflags(write=False)
        _KEPT[size] = out
    return _KEPT[size]


_KEPT: dict = {}  # "key": which folder; size -> (N, size, size, 3) uint8


def _on_white(folder: Path, progress: bool) -> np.ndarray:
    """Every image of the set at 64x64, composited on white: (N, 64, 64, 3) uint8."""
    every = images(folder)
    rgba = np.empty((len(every), NATIVE, NATIVE, 4), dtype=np.uint8)
    for i, im in enumerate(
        tqdm(every, desc="reading emoji", unit=" images", disable=not progress, delay=1.0)
    ):
        path = folder / im.file
        try:
            with Image.open(path) as png:
                png = png.convert("RGBA")
                if png.size != (NATIVE, NATIVE):
                    png = png.resize((NATIVE, NATIVE), Image.Resampling.LANCZOS)
                rgba[i] = np.asarray(png)
        except (OSError, ValueError, SyntaxError, EOFError, zlib.error) as e:
            raise DataError(
                f"{path}: cannot decode this image ({reason_of(e)}); fetch emoji again"
            ) from None
    out = np.empty((len(every), NATIVE, NATIVE, 3), dtype=np.uint8)
    for start in range(0, len(every), 64):  # over white: round((rgb a + 255 (255 - a)) / 255)
        part = rgba[start : start + 64].astype(np.uint16)
        alpha = part[..., 3:]
        v = part[..., :3] * alpha + 255 * (255 - alpha) + 128  # at most 65,153: fits uint16
        out[start : start + 64] = (v + (v >> 8)) >> 8  # exactly round(v / 255) for these v
    out.setflags(write=False)
    return out
