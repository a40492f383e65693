"""Sound measured like images: every figure is of the sound a person would hear.

A model trained on sound (data/audio.py) makes spectrogram images; what a listener gets is
the waveform Griffin-Lim rebuilds from them. So before any feature is taken, a generated
image goes through the sound: image -> waveform (`Spectrogram.to_wave`, fast Griffin-Lim,
zero initial phase so the same images always give the same sound) -> spectrogram of that
waveform (`to_image`) -> uint8 like the data. The domain classifier (metrics/features.py),
trained on spectrograms of the real training clips, then measures it as it measures images.

    heard = through_sound(samples, run.info.audio)          # uint8 (N, 1, 64, 64) -> same
    x = waves_to_images(waves, test.audio)                  # (N, samples) float -> uint8 images

The same route applied to real training clips is the ceiling of any spectrogram model (a
model that reproduced the training spectrograms exactly would score that after inversion);
the real test clips, their spectrograms straight from the waveform, are the floor.
"""

from __future__ import annotations

import numpy as np
import torch

from genlab.errors import GenlabError
from genlab.metrics.cache import cached_features

GRIFFIN_LIM_ITERS = 32  # the samplers' default (data/spectrogram.py measures 32 vs 100)


def _as_spectrogram(transform):
    from genlab.data.spectrogram import Spectrogram

    return transform if isinstance(transform, Spectrogram) else Spectrogram.from_dict(transform)


def _quantise(image: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8, as the loader stores spectrogram images."""
    return ((image + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


@torch.no_grad()
def through_sound(
    x: torch.Tensor,
    transform,
    iters: int = GRIFFIN_LIM_ITERS,
    *,
    image_transform=None,
    batch_size: int = 256,
) -> torch.Tensor:
    """Spectrogram images as heard: each image -> Griffin-Lim waveform (``iters`` iterations,
    zero initial phase, clipped to [-1, 1] as a WAV file would) -> its spectrogram image.

    ``x``: uint8 (N, 1, F, T) (returned as uint8, quantised like the data) or floats in
    [-1, 1] (returned as floats). ``transform``: the spectrogram (or its dict) the images were
    made with; ``image_transform``: the one that makes the images again (default the same).
    """
    spec = _as_spectrogram(transform)
    again = spec if image_transform is None else _as_spectrogram(image_transform)
    if iters < 0:
        raise GenlabError(f"Griffin-Lim iterations must be 0 or more, got {iters}")
    x = torch.as_tensor(x)
    uint8 = x.dtype == torch.uint8
    out = []
    for start in range(0, len(x), batch_size):
        part = x[start : start + batch_size].cpu()
        image = part.float() / 127.5 - 1 if uint8 else part.float()
        wave = spec.to_wave(image, iters=iters).clamp(-1, 1)  # (B, samples)
        image = again.to_image(wave)  # (B, 1, F, T) in [-1, 1]
        out.append(_quantise(image) if uint8 else image)
    if not out:
        return x.clone()
    return torch.cat(out)


def waves_to_images(wave, transform, *, sample_rate: int | None = None) -> torch.Tensor:
    """Waveforms of any tool, (N, L) floats in [-1, 1] -> uint8 spectrogram images as the
    loader makes them: resampled to the transform's rate when ``sample_rate`` differs, each
    clip fitted to its length (centred in silence when short, its loudest window when long)."""
    from genlab.data.audio import fit_length, resample

    spec = _as_spectrogram(transform)
    wave = np.asarray(wave)
    if wave.ndim != 2 or not np.issubdtype(wave.dtype, np.floating) or len(wave) == 0:
        raise GenlabError(
            f"waveforms must be floats in [-1, 1] shaped (N, samples), got {wave.dtype} "
            f"{wave.shape}"
        )
    if not np.isfinite(wave).all():
        raise GenlabError("the waveforms hold NaN or infinite samples")
    clips = []
    for clip in wave.astype(np.float32):
        if sample_rate is not None and sample_rate != spec.sample_rate:
            clip = resample(clip, int(sample_rate), spec.sample_rate)
        clips.append(fit_length(clip, spec.samples)[0])
    return _quantise(spec.to_image(torch.from_numpy(np.stack(clips))))


def accuracy_through_sound(clf, images, transform, iters: int = GRIFFIN_LIM_ITERS) -> float:
    """The classifier's accuracy on labelled real clips heard through the transform and
    Griffin-Lim (the ceiling's test accuracy); probabilities cached by content."""
    heard = through_sound(images.x, transform, iters)
    p = cached_features(clf, heard, kind="probs")
    return float((p.argmax(1) == images.y.numpy()).mean())
