"""Say a number: one generated clip per character of a text, joined into one waveform.

    run = genlab.load("runs/fsdd-diffusion")       # a digit-conditioned audio run
    wave = say(run, "2026", seed=0)                 # float32 at run.info.audio's sample rate
    write_wav("2026.wav", wave, sample_rate(run))

The smallest speech synthesis from text: each character names a class of the run (FSDD's
classes are the digits "0" to "9"), and the run draws one clip of it. Each clip's silence is
trimmed at both ends (10 ms frames whose RMS is more than 40 dB below the clip's loudest
frame, keeping 5 ms of margin), and the clips are joined with ``gap`` seconds of silence
between them; a space in the text is a longer pause (3 x ``gap``). A run whose classes are
not single characters ("yes", "no") takes the text as words separated by spaces instead.
A character (or word) the run has no class for is refused in one line naming it.
"""

from __future__ import annotations

import numpy as np
import torch

from genlab.errors import GenlabError
from genlab.outputs.audio import GL_ITERS, phase_generator, to_waves

GAP = 0.15  # seconds of silence between two clips
PAUSE = 3  # a space is this many gaps of silence
FRAME = 0.010  # seconds: the trimming frame
FLOOR_DB = 40.0  # frames this far below the loudest frame are silence
MARGIN = 0.005  # seconds kept beyond the first and last sounding frames
MAX_CHARS = 1000  # characters of one text
BATCH = 250  # clips drawn at once


def sample_rate(run) -> int:
    from genlab.data.spectrogram import Spectrogram

    return Spectrogram.from_dict(run.info.audio).sample_rate


def check_sayable(run, text: str) -> list[int | None]:
    """The class index of each unit of ``text`` (None: a pause), or a GenlabError in one line:
    a run that is not a class-conditional audio run, an empty text, or a unit without a class."""
    name = str(run.path) if getattr(run, "path", None) else "the run"
    if not getattr(run.info, "audio", None):
        raise GenlabError(f"{name} makes {run.info.kind}, not sound: saying needs an audio run")
    classes = [str(c) for c in run.info.classes]
    if not classes or not getattr(run.config.model, "conditional", False):
        raise GenlabError(
            f"{name} is not class-conditional: saying needs a run trained with "
            "model.conditional=true on labelled clips"
        )
    return labels_of(text, classes, name)


def labels_of(text: str, classes: list[str], name: str = "the run") -> list[int | None]:
    """The class index each character of ``text`` names (words, when some class name is
    longer than one character); None for a pause (a space). GenlabError, in one line, for an
    empty text, one too long, or a character (word) that names no class."""
    classes = [str(c) for c in classes]
    if not text.strip():
        raise GenlabError("nothing to say: give a text such as 2026")
    if len(text) > MAX_CHARS:
        raise GenlabError(f"the text to say has {len(text):,} characters; at most {MAX_CHARS:,}")
    words = not all(len(c) == 1 for c in classes)
    units = text.split() if words else list(text.strip())
    out: list[int | None] = []
    for u in units:
        if u.isspace():
            if out and out[-1] is not None:
                out.append(None)
            continue
        k = _class_of(u, classes)
        if k is None:
            what = "word" if words else "character"
            raise GenlabError(
                f"{name} has no class for the {what} {u!r}; its classes: {', '.join(classes)}"
            )
        out.append(k)
    return out


def _class_of(unit: str, classes: list[str]) -> int | None:
    if unit in classes:
        return classes.index(unit)
    folded = [c.casefold() for c in classes]
    return folded.index(unit.casefold()) if folded.count(unit.casefold()) == 1 else None


def trim(wave: np.ndarray, rate: int) -> np.ndarray:
    """``wave`` without the silence at its ends: 10 ms frames more than 40 dB below the
    loudest frame's RMS, keeping 5 ms of margin; an all-silent clip becomes empty."""
    frame = max(1, int(round(FRAME * rate)))
    n = len(wave) // frame * frame
    if n == 0:
        return wave[:0].copy()
    rms = np.sqrt(np.mean(wave[:n].astype(np.float64).reshape(-1, frame) ** 2, axis=1))
    peak = rms.max()
    if peak <= 0:
        return wave[:0].copy()
    loud = np.flatnonzero(rms >= peak * 10 ** (-FLOOR_DB / 20))
    margin = int(round(MARGIN * rate))
    start = max(0, loud[0] * frame - margin)
    end = min(len(wave), (loud[-1] + 1) * frame + margin)
    return wave[start:end].copy()


def say_clips(
    run, text: str, *, seed: int = 0, gl_iters: int = GL_ITERS, controls: dict | None = None
) -> list[np.ndarray | None]:
    """The trimmed clip of each unit of ``text`` (None: a pause), drawn with ``seed`` and the
    family's ``controls`` (label excluded: the text picks it)."""
    from genlab.data.spectrogram import Spectrogram

    labels = check_sayable(run, text)
    controls = dict(controls or {})
    if controls.get("label") is not None:
        raise GenlabError("the text picks the classes when saying: drop --label")
    controls.pop("label", None)
    controls = run.model.check_controls(controls)
    controls.pop("label", None)
    spec = Spectrogram.from_dict(run.info.audio)
    wanted = [k for k in labels if k is not None]
    g = torch.Generator(device=run.model.device).manual_seed(seed)
    phase = phase_generator(seed)
    clips: list[np.ndarray] = []
    with torch.no_grad():
        for start in range(0, len(wanted), BATCH):
            y = wanted[start : start + BATCH]
            x = run.model.sample(len(y), generator=g, label=y, **controls)
            clips += [trim(w, spec.sample_rate) for w in to_waves(x, spec, gl_iters, phase)]
    it = iter(clips)
    return [None if k is None else next(it) for k in labels]


def join(clips: list[np.ndarray | None], rate: int, gap: float = GAP) -> np.ndarray:
    """Clips with ``gap`` seconds of silence between them; None is a pause of PAUSE gaps."""
    silence = np.zeros(int(round(gap * rate)), np.float32)
    parts: list[np.ndarray] = []
    for i, c in enumerate(clips):
        if c is None:
            parts.append(np.zeros(int(round(PAUSE * gap * rate)), np.float32))
            continue
        if parts and clips[i - 1] is not None:
            parts.append(silence)
        parts.append(c.astype(np.float32))
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def say(
    run,
    text: str,
    *,
    seed: int = 0,
    gl_iters: int = GL_ITERS,
    gap: float = GAP,
    controls: dict | None = None,
) -> np.ndarray:
    """``text`` spoken by ``run``: one generated clip per character (each naming a class of
    the run), silence trimmed, joined with ``gap`` seconds between; float32 in [-1, 1] at
    the run's sample rate."""
    if not 0 <= gap <= 10:
        raise GenlabError(f"gap must be between 0 and 10 seconds, not {gap}")
    clips = say_clips(run, text, seed=seed, gl_iters=gl_iters, controls=controls)
    return join(clips, sample_rate(run), gap)
