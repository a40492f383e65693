"""Sound as data: folders of WAV files become spectrogram images the image families learn.

    ds = load_audio("fsdd", "train")    # an ImageSet: x (2700, 1, 64, 64) uint8, y the digits,
                                        # ds.wave (2700, 4096) float clips, ds.audio the transform
    wave, rate = read_wav("recordings/7_jackson_3.wav")   # float32 in [-1, 1], mono

`spec` is "fsdd" (the Free Spoken Digit Dataset, fetched and checked recording by recording)
or a folder of .wav files. Labels come from class subfolders, or else from a ``{label}_...``
file-name prefix (as FSDD names its files: ``7_jackson_3.wav`` is a 7); a folder whose files
have neither is unlabelled. Splits: FSDD's own (recordings numbered 0-4 are the test set,
5-49 training); a folder's ``train/`` and ``test/`` subfolders if it has them; otherwise the
images' rule, 10% held out (the last N // 10 of ``default_rng(0).permutation(N)``).

Each clip is read with Python's ``wave`` module (no dependency: PCM WAV is what recorders
and FSDD write; soundfile would add a C library for formats genlab does not need), as
8, 16, 24 or 32-bit integer PCM; several channels are mixed down to mono (averaged; the
loader says how many). A clip at another rate than ``data.sample_rate`` is resampled with
scipy's polyphase filter (``resample_poly``, a Kaiser-windowed FIR, beta 5), or refused when
``data.resample=false``. Each clip is then fitted to ``data.seconds``: a shorter one is
centred in silence; a longer one keeps its loudest window (most energy), and the loader
reports how many were cropped. Last, ``spectrogram.Spectrogram``, fitted on the training
clips (its per-frequency statistics are saved in the run), makes each clip an image,
stored as uint8 like every image set.
"""

from __future__ import annotations

import functools
import math
import re
import sys
import wave as wavelib
from pathlib import Path

import numpy as np
import torch

from genlab.data.folders import holdout_indices, nothing_found
from genlab.data.images import ImageSet
from genlab.data.spectrogram import Spectrogram
from genlab.errors import DataError, reason_of

AUDIO_EXTENSIONS = (".wav",)
_PREFIX = re.compile(r"^([^_]+)_")
_FSDD_INDEX = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


def is_audio(spec: str) -> bool:
    """Whether ``spec`` names a sound data set: "fsdd" or a folder holding .wav files."""
    from genlab.data.catalogue import NAMED_SETS

    if spec in NAMED_SETS:
        return NAMED_SETS[spec].kind == "audio"
    path = Path(spec).expanduser()
    if not path.is_dir():
        return path.suffix.lower() in AUDIO_EXTENSIONS
    return any(_is_wav(p) for p in path.rglob("*"))


def _is_wav(p: Path) -> bool:
    return p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".") and p.is_file()


def read_wav(path: Path) -> tuple[np.ndarray, int, int]:
    """(mono float32 samples in [-1, 1], sample rate, channels in the file) of a PCM WAV."""
    try:
        with wavelib.open(str(path), "rb") as w:
            channels, width, rate, frames = (
                w.getnchannels(),
                w.getsampwidth(),
                w.getframerate(),
                w.getnframes(),
            )
            raw = w.readframes(frames)
    except (wavelib.Error, EOFError) as e:
        raise DataError(
            f"{path}: not a PCM WAV file ({reason_of(e)}); convert it, e.g. "
            "ffmpeg -i in.wav -c:a pcm_s16le out.wav"
        ) from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({reason_of(e)})") from None
    if width not in (1, 2, 3, 4):
        raise DataError(
            f"{path}: {8 * width}-bit samples are not supported; use 8, 16, 24 or 32-bit PCM"
        )
    if frames == 0 or len(raw) == 0:
        raise DataError(f"{path}: the WAV holds no samples; remove or replace this file")
    if len(raw) < frames * channels * width:
        raise DataError(
            f"{path}: truncated WAV ({len(raw):,} of {frames * channels * width:,} bytes of "
            "samples); remove or replace this file"
        )
    x = _pcm(raw, width).reshape(-1, channels)
    return x.mean(axis=1).astype(np.float32), rate, channels


def _pcm(raw: bytes, width: int) -> np.ndarray:
    """Interleaved integer PCM -> float in [-1, 1] (8-bit WAV is unsigned, the rest signed)."""
    if width == 1:
        return (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    if width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        return v.astype(np.float32) / float(1 << 23)
    dtype = {2: "<i2", 4: "<i4"}[width]
    return np.frombuffer(raw, dtype).astype(np.float32) / float(2 ** (8 * width - 1))


def resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``x`` at ``rate`` -> at ``target``: scipy's polyphase resampler (Kaiser FIR, beta 5)."""
    from scipy.signal import resample_poly

    g = math.gcd(rate, target)
    return resample_poly(x, target // g, rate // g, window=("kaiser", 5.0)).astype(np.float32)


def fit_length(x: np.ndarray, samples: int) -> tuple[np.ndarray, bool]:
    """(exactly ``samples`` long, whether it was cropped): centred in silence when short, its
    loudest window (the most energy) when long."""
    n = len(x)
    if n <= samples:
        out = np.zeros(samples, np.float32)
        start = (samples - n) // 2
        out[start : start + n] = x
        return out, False
    energy = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    start = int(np.argmax(energy[samples:] - energy[: n - samples + 1]))
    return x[start : start + samples].copy(), True


def _files(root: Path) -> list[tuple[Path, str | None]]:
    """(file, class name or None): class subfolders, else a ``{label}_`` name prefix."""
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    nested = [(p, d.name) for d in subdirs for p in sorted(d.rglob("*")) if _is_wav(p)]
    top = sorted(p for p in root.iterdir() if _is_wav(p))
    if top and nested:
        raise DataError(
            f"{root}: WAV files both directly inside ({top[0].name}) and in class subfolders; "
            "move every file into a class folder, or none"
        )
    if nested:
        return nested
    prefixes = [_PREFIX.match(p.name) for p in top]
    if top and all(prefixes):
        return [(p, m.group(1)) for p, m in zip(top, prefixes)]
    return [(p, None) for p in top]


def _class_order(names: set[str]) -> list[str]:
    """Class names in label order: numerically when all are integers (so "10" follows "9")."""
    if all(n.isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


def _split_files(spec: str, root: Path, source: str) -> dict[str, list[tuple[Path, str | None]]]:
    """{"train": [(file, class or None)], "test": [...]}: the folder's train/ and test/ when it
    has both, FSDD's own split, or else 10% held out; DataError when a split is empty."""
    splits = {s: root / s for s in ("train", "test")}
    if all(p.is_dir() for p in splits.values()):
        listed = {s: _files(p) for s, p in splits.items()}
    else:
        files = _files(root)
        if not files:
            raise nothing_found(
                root,
                ".wav files",
                put=".wav files there (class subfolders give labels)",
                point_at="a folder of PCM WAV files",
            )
        if spec == "fsdd":
            test = [
                _FSDD_INDEX.match(p.name) and int(_FSDD_INDEX.match(p.name).group(3)) < 5
                for p, _ in files
            ]
            listed = {
                "train": [f for f, t in zip(files, test) if not t],
                "test": [f for f, t in zip(files, test) if t],
            }
        else:
            tr, te = holdout_indices(len(files), source)
            listed = {"train": [files[i] for i in tr], "test": [files[i] for i in te]}
    for s, fs in listed.items():
        if not fs:
            raise DataError(f"{source}: no .wav files in the {s} split")
    return listed


@functools.lru_cache(maxsize=4)
def _load_all(spec: str, sample_rate: int, seconds: float, allow_resample: bool, progress: bool):
    """Both splits of ``spec`` as clips and labels, and the transform fitted on train."""
    from genlab.data.catalogue import NAMED_SETS
    from genlab.data.fetch import fetch

    if spec in NAMED_SETS:
        root = fetch(spec, progress=progress) / "recordings"
        source = f"{spec} ({root})"
    else:
        root = Path(spec).expanduser()
        source = str(root)
        if not root.exists():
            raise DataError(f"{spec}: no such folder; give a folder of .wav files or fsdd")
        if not root.is_dir():
            raise DataError(f"{spec}: a single file; give the folder that holds the .wav files")
    listed = _split_files(spec, root, source)
    names = {c for fs in listed.values() for _, c in fs}
    labelled = None not in names
    if not labelled and names != {None}:
        raise DataError(f"{source}: some files have a class and some do not; give all or none")
    classes = _class_order(names) if labelled else []
    samples = int(round(seconds * sample_rate))
    hop = Spectrogram().hop
    samples -= samples % hop
    if samples < 4 * hop:
        raise DataError(f"data.seconds={seconds} is too short: at least {4 * hop / sample_rate} s")
    counts = {"cropped": 0, "resampled": 0, "mixed": 0}
    out = {}
    for s, fs in listed.items():
        clips, labels = [], []
        for path, c in fs:
            x, rate, channels = read_wav(path)
            counts["mixed"] += channels > 1
            if rate != sample_rate:
                if not allow_resample:
                    raise DataError(
                        f"{path}: recorded at {rate:,} Hz, not data.sample_rate={sample_rate:,}; "
                        "allow resampling (data.resample=true) or set data.sample_rate"
                    )
                x = resample(x, rate, sample_rate)
                counts["resampled"] += 1
            x, cropped = fit_length(x, samples)
            counts["cropped"] += cropped
            clips.append(x)
            labels.append(classes.index(c) if labelled else -1)
        out[s] = (torch.from_numpy(np.stack(clips)), torch.tensor(labels, dtype=torch.int64))
    transform = Spectrogram(sample_rate=sample_rate, samples=samples).fit(out["train"][0])
    total = sum(len(fs) for fs in listed.values())
    notes = (
        [
            f"{counts['cropped']:,} of {total:,} clips longer than {seconds} s kept their loudest "
            f"{seconds} s"
        ]
        if counts["cropped"]
        else []
    )
    if counts["resampled"]:
        notes.append(f"{counts['resampled']:,} resampled to {sample_rate:,} Hz (polyphase, Kaiser)")
    if counts["mixed"]:
        notes.append(f"{counts['mixed']:,} with several channels mixed down to mono")
    if notes and progress:
        print(f"genlab: {source}: " + "; ".join(notes), file=sys.stderr)
    return out, classes if labelled else [], transform, source


def load_audio(
    spec: str,
    split: str = "train",
    *,
    sample_rate: int = 8000,
    seconds: float = 0.512,
    resample: bool = True,
    progress: bool = True,
) -> ImageSet:
    """Split "train" or "test" of a sound data set as spectrogram images (see the module
    docstring); ``.wave`` holds the clips, ``.audio`` the fitted transform (a dict)."""
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}; use 'train' or 'test'")
    out, classes, transform, source = _load_all(
        str(spec), int(sample_rate), float(seconds), bool(resample), bool(progress)
    )
    wave, y = out[split]
    x = ((transform.to_image(wave) + 1) * 127.5).round().to(torch.uint8).contiguous()
    return ImageSet(
        x=x,
        y=y if classes else None,
        classes=classes,
        name=str(spec),
        source=source,
        audio=transform.to_dict(),
        wave=wave,
    )

