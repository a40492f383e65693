"""Novelty against the training data: how near each studio sample is to what the run learnt
from, shown beside it, so a copy is seen for one.

    image_novelty(x_uint8_nchw, ref)   # per image: the nearest training image, its distance,
                                       # the copy threshold and the verdict
    text_novelty(text, ref)            # the longest span copied word for word from the corpus

``ref`` is the run's ``Reference`` (runs.py: built once per data set).
"""

from __future__ import annotations

from typing import Any

import torch

from genlab.outputs.audio import flip_frequency
from genlab.outputs.provenance import data_uri, plain_png
from genlab.serve.runs import Reference


def image_novelty(
    x_uint8_nchw: torch.Tensor, ref: Reference, flip: bool = False
) -> list[dict[str, Any]]:
    """Each image's nearest training image, its distance, and the copy verdict (``flip``:
    the nearest drawn as a spectrogram, low frequencies at the bottom)."""
    flat = x_uint8_nchw.reshape(len(x_uint8_nchw), -1).double() / 255.0
    d = torch.cdist(flat, ref.images)
    dist, idx = d.min(dim=1)
    out = []
    for i in range(len(flat)):
        near = ref.raw[int(idx[i])].permute(1, 2, 0).numpy()
        near = flip_frequency(near[None])[0] if flip else near
        out.append(
            {
                "nearest": data_uri(plain_png(near)),
                "distance": round(float(dist[i]), 4),
                "threshold": round(float(ref.threshold), 4),
                "copy": bool(dist[i] < ref.threshold),
            }
        )
    return out


def text_novelty(text: str, ref: Reference) -> dict[str, Any]:
    """The longest run of words ``text`` shares with the training corpus, and where it is."""
    length, start, end = ref.index.copied_span(text)
    return {
        "span_words": length,
        "span": text[start:end] if length else "",
        "start": start if length else None,
        "end": end if length else None,
    }
