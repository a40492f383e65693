"""Sound out: an audio run's spectrogram images back into sound with Griffin-Lim, written as
WAV files (a folder, one .wav), an .npz of waveforms, or a spectrogram grid (.png).

    spec = Spectrogram.from_dict(run.info.audio)                     # an audio run's transform
    save_audio_batches(iter([(x, y)]), "sevens/", len(x), spec)      # sevens/000000.wav, ...
    write_wav("one.wav", wave, spec.sample_rate)                     # 16-bit PCM, clipped to [-1, 1]
    wav_data_uri(wave, spec.sample_rate)                             # the same WAV, as a data: URI

The phase starts from its own generator (seeded by the sampling seed), never the sampling
one, so a seed gives the same spectrograms whichever output is written, and the same sound
on any device.
"""

from __future__ import annotations

import dataclasses
import io
import os
import tempfile
import wave as wavelib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from genlab.errors import GenlabError
from genlab.outputs.images import (
    GRID_MAX,
    npy_bytes,
    npy_header,
    npz_writer,
    save_array,
    to_uint8,
    write_labels,
)
from genlab.outputs.provenance import data_uri

if TYPE_CHECKING:
    from genlab.data.spectrogram import Spectrogram

GL_ITERS = 32  # Griffin-Lim iterations: the default of `--gl-iters` (0..GL_ITERS_MAX)
GL_ITERS_MAX = 1000


def flip_frequency(images: np.ndarray) -> np.ndarray:
    """(N, F, T, C) uint8 spectrograms with row 0 the lowest frequency -> low frequencies at
    the bottom, as people read spectrograms (for pictures only: arrays keep the model's
    orientation)."""
    return np.ascontiguousarray(images[:, ::-1])


def pcm16(wave: np.ndarray) -> bytes:
    """Float samples -> little-endian 16-bit PCM, clipped to [-1, 1] (peak-safe)."""
    a = np.clip(np.nan_to_num(np.asarray(wave, dtype=np.float64)), -1.0, 1.0)
    return np.round(a * 32767.0).astype("<i2").tobytes()


def wav_bytes(wave: np.ndarray, rate: int) -> bytes:
    """A mono 16-bit PCM WAV file of ``wave`` (float, clipped to [-1, 1]) at ``rate`` Hz."""
    buf = io.BytesIO()
    with wavelib.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(pcm16(wave))
    return buf.getvalue()


def wav_data_uri(wave: np.ndarray, rate: int) -> str:
    """``wave`` as a 16-bit WAV in a data: URI (a page plays it without a file)."""
    return data_uri(wav_bytes(wave, rate), "audio/wav")


def write_wav(path: str | Path, wave: np.ndarray, rate: int) -> Path:
    """Write ``wave`` as a 16-bit PCM WAV (whole or not at all: a temporary file replaces
    ``path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.wav")
    try:
        tmp.write_bytes(wav_bytes(wave, rate))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def to_waves(
    x: torch.Tensor, spec: Spectrogram, gl_iters: int = GL_ITERS, generator=None
) -> np.ndarray:
    """(N, 1, F, T) spectrogram images in [-1, 1] -> (N, samples) float32 in [-1, 1]."""
    with torch.no_grad():
        w = spec.to_wave(x.detach().float().clamp(-1, 1), iters=gl_iters, generator=generator)
    return np.clip(w.cpu().numpy().astype(np.float32), -1.0, 1.0)


def phase_generator(seed: int) -> torch.Generator:
    """Griffin-Lim's own generator (CPU: the same phase on any device) for sampling ``seed``."""
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + 7)


def spectrogram_picture(spec: Spectrogram, wave: np.ndarray) -> np.ndarray:
    """(F, T', 1) uint8 of a waveform of any length, normalised as the run's images and drawn
    low frequencies at the bottom (a said text is longer than one clip)."""
    length = max(spec.n_fft, -(-len(wave) // spec.hop) * spec.hop)
    padded = np.zeros(length, np.float32)
    padded[: len(wave)] = wave
    img = dataclasses.replace(spec, samples=length).to_image(torch.from_numpy(padded)[None])
    return flip_frequency(to_uint8(img))[0]


def _audio_kinds() -> str:
    return (
        "a path ending in / (one WAV per sample), .wav (one sample), .npz (arrays) or .png "
        "(a spectrogram grid)"
    )


def check_audio_output(out: str | Path, n: int) -> None:
    """Refuse, before any sampling, an output that cannot take ``n`` sound samples."""
    out_s = str(out)
    if out_s.endswith(("/", os.sep)):
        return
    suffix = Path(out_s).suffix.lower()
    if suffix not in (".wav", ".npz", ".png"):
        raise GenlabError(
            f"{out_s}: unknown output type {suffix or '(none)'} for sound; use {_audio_kinds()}"
        )
    if suffix == ".wav" and n != 1:
        raise GenlabError(
            f"{out_s}: a .wav holds one sample, not {n:,}; write a folder/ (one WAV per sample), "
            "or -n 1, or --say TEXT for one clip of several"
        )
    if suffix == ".png" and n > GRID_MAX:
        raise GenlabError(
            f"a grid of {n:,} spectrograms is more than anyone can look at (at most "
            f"{GRID_MAX:,}); write a folder/ or an .npz (both streamed)"
        )


def save_audio_batches(
    batches: Iterator[tuple[torch.Tensor, list[int] | None]],
    out: str | Path,
    n: int,
    spec: Spectrogram,
    *,
    gl_iters: int = GL_ITERS,
    seed: int = 0,
    nrow: int | None = None,
) -> Path:
    """Write ``n`` sound samples that come as (spectrogram images, labels) batches, one batch
    at a time: a folder/ gets NNNNNN.wav for each; a .wav the one sample; an .npz ``audio``
    float32 (N, samples), ``sample_rate``, ``x`` the uint8 spectrograms (N, F, T, 1, as
    image runs' .npz) and ``y`` the labels of a conditional run (all streamed); a .png the
    spectrograms as a grid, low frequencies at the bottom (no sound is made for it)."""
    check_audio_output(out, n)
    out_s = str(out)
    g = phase_generator(seed)
    rate = spec.sample_rate
    if out_s.endswith(("/", os.sep)):
        folder = Path(out_s)
        folder.mkdir(parents=True, exist_ok=True)
        i = 0
        for x, _ in batches:
            for w in to_waves(x, spec, gl_iters, g):
                write_wav(folder / f"{i:06d}.wav", w, rate)
                i += 1
        return folder
    path = Path(out_s)
    suffix = path.suffix.lower()
    if suffix == ".wav":
        waves = [to_waves(x, spec, gl_iters, g) for x, _ in batches]
        return write_wav(path, np.concatenate(waves)[0], rate)
    if suffix == ".npz":
        return _stream_audio_npz(batches, path, n, spec, gl_iters, g)
    parts, labels = [], []
    for x, y in batches:
        parts.append(to_uint8(x))
        labels += y or []
    return save_array(flip_frequency(np.concatenate(parts)), path, None, nrow)


def _stream_audio_npz(batches, path: Path, n: int, spec, gl_iters: int, g) -> Path:
    """The audio .npz, batch by batch: ``audio`` streams into the zip as it comes, the uint8
    spectrograms into a temporary file copied in after it (a zip member is written whole)."""
    labels: list[int] = []
    x_shape = None
    with npz_writer(path) as zf, tempfile.TemporaryFile(dir=path.parent) as spill:
        with zf.open("audio.npy", "w", force_zip64=True) as f:
            npy_header(f, "<f4", (n, spec.samples))
            for x, y in batches:
                f.write(to_waves(x, spec, gl_iters, g).astype("<f4").tobytes())
                part = to_uint8(x)
                x_shape = part.shape[1:]
                spill.write(np.ascontiguousarray(part).tobytes())
                labels += y or []
        spill.seek(0)
        with zf.open("x.npy", "w", force_zip64=True) as f:
            npy_header(f, "|u1", (n, *x_shape))
            while chunk := spill.read(1 << 20):
                f.write(chunk)
        zf.writestr("sample_rate.npy", npy_bytes(np.asarray(spec.sample_rate, dtype=np.int64)))
        write_labels(zf, labels)
    return path
