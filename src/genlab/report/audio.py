"""The sound runs' part of `genlab compare`: players for generated and real clips, each
beside its spectrogram, inside the one offline page (WAVs and PNGs as data: URIs).

    section = audio_section([("fsdd-vae", run)], seed=0)   # an HTML fragment

For each run trained on sound (``run.info.audio``): about ten generated clips (one per class
of a conditional run, in class order) turned into sound by Griffin-Lim, and five real clips
of the run's test split, as recorded (after the loader's resampling and fitting to length).
Spectrograms are drawn low frequencies at the bottom, as people read them.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import torch
from PIL import Image

from genlab.errors import GenlabError
from genlab.outputs.audio import GL_ITERS, flip_frequency, phase_generator, to_waves, wav_bytes
from genlab.outputs.images import to_uint8

N_GENERATED = 10
N_REAL = 5
CSS = """.clips{display:flex;flex-wrap:wrap;gap:12px;margin:0 0 16px}.clip{margin:0;
text-align:center;font-size:12px;color:#555}.clip img{display:block;margin:0 auto 4px;
image-rendering:pixelated}.clip audio{display:block;width:170px}"""


def wav_data_uri(wave: np.ndarray, rate: int) -> str:
    """A data: URI of a 16-bit PCM WAV: what an <audio> element plays offline."""
    return "data:audio/wav;base64," + base64.b64encode(wav_bytes(wave, rate)).decode("ascii")


def spectrogram_data_uri(image_u8: np.ndarray, scale: int = 2) -> str:
    """A data: URI of one (F, T, 1) uint8 spectrogram as a PNG, low frequencies at the
    bottom, enlarged ``scale`` times (nearest neighbour)."""
    img = flip_frequency(image_u8[None])[0, ..., 0]
    if scale > 1:
        img = img.repeat(scale, axis=0).repeat(scale, axis=1)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(image_u8: np.ndarray, wave: np.ndarray, rate: int, caption: str) -> str:
    cap = html.escape(caption)
    return (
        f'<figure class="clip"><img src="{spectrogram_data_uri(image_u8)}" '
        f'alt="spectrogram: {cap}"><audio controls preload="none" '
        f'src="{wav_data_uri(wave, rate)}"></audio><figcaption>{cap}</figcaption></figure>'
    )


def _class(run, label: int | None) -> str:
    classes = run.info.classes
    if label is None or not 0 <= label < len(classes):
        return ""
    return str(classes[label])


def generated_clips(run, *, n: int = N_GENERATED, seed: int = 0, gl_iters: int = GL_ITERS):
    """(uint8 spectrograms (N, F, T, 1), waves (N, samples), labels or None): one clip per
    class of a conditional run (its first ``n`` classes), else ``n`` clips."""
    from genlab.data.spectrogram import Spectrogram

    spec = Spectrogram.from_dict(run.info.audio)
    k = run.info.num_classes
    labels = None
    if k and getattr(run.config.model, "conditional", False):
        labels = list(range(min(k, n)))
        n = len(labels)
    controls = {"label": labels} if labels is not None else {}
    with torch.no_grad():
        x = run.sample(n, seed=seed, **controls)
    return to_uint8(x), to_waves(x, spec, gl_iters, phase_generator(seed)), labels


def real_clips(run, *, n: int = N_REAL, seed: int = 0):
    """(uint8 spectrograms (n, F, T, 1), waves (n, samples), labels or None) of ``n`` clips
    of the run's test split, picked with ``seed``."""
    from genlab.data import load_data

    test = load_data(run.config.data, "test", progress=False)
    idx = np.sort(np.random.default_rng(seed).permutation(len(test.x))[:n])
    images = test.x[idx].permute(0, 2, 3, 1).numpy()
    waves = np.asarray(test.wave[idx], dtype=np.float32)
    labels = test.y[idx].tolist() if test.y is not None else None
    return images, waves, labels


def audio_section(
    runs: list[tuple[str, object]], *, seed: int = 0, gl_iters: int = GL_ITERS
) -> str:
    """The "Sound" section for the runs trained on sound ("" when there are none)."""
    from genlab.data.spectrogram import Spectrogram

    runs = [(name, run) for name, run in runs if getattr(run.info, "audio", None)]
    if not runs:
        return ""
    parts = [
        "<h2>Sound</h2>",
        f'<p class="small">Each generated spectrogram is turned into sound by Griffin-Lim '
        f"({gl_iters} iterations, seed {seed}); real clips are the test split's, as the model "
        "learned them. Spectrograms: time left to right, low frequencies at the bottom. "
        "Press play: the sound is inside this page.</p>",
    ]
    for name, run in runs:
        rate = Spectrogram.from_dict(run.info.audio).sample_rate
        images, waves, labels = generated_clips(run, seed=seed, gl_iters=gl_iters)
        gen = "".join(
            _figure(img, w, rate, _caption("generated", i, run, labels))
            for i, (img, w) in enumerate(zip(images, waves))
        )
        try:
            r_images, r_waves, r_labels = real_clips(run, seed=seed)
            real = '<div class="clips">' + "".join(
                _figure(img, w, rate, _caption("real", i, run, r_labels))
                for i, (img, w) in enumerate(zip(r_images, r_waves))
            ) + "</div>"
        except GenlabError as e:
            real = f'<p class="small">real clips unavailable: {html.escape(str(e))}</p>'
        parts.append(
            f"<h3>{html.escape(name)}</h3>"
            f'<p class="small">{html.escape(run.config.family)}, '
            f"{html.escape(str(run.config.data.name))}, {rate:,} Hz</p>"
            f'<h4>generated</h4><div class="clips">{gen}</div><h4>real (test split)</h4>{real}'
        )
    return "\n".join(parts)


def _caption(kind: str, i: int, run, labels: list[int] | None) -> str:
    c = _class(run, labels[i]) if labels else ""
    return f"{kind} {i + 1}" + (f" · {c}" if c else "")
