"""Novelty: is a sample new, or a copy of a training image?

Each sample's distance to its nearest training image, compared with how far
real unseen (test) images lie from their nearest training image. A sample
closer to the training set than the 1st percentile of those real distances
is flagged as a copy, so real unseen images are flagged about 1% of the time.

    result = novelty(samples, train_x, test_x)   # uint8 (N, C, H, W) tensors
    result["copy_share"]                          # share of samples flagged
"""

from __future__ import annotations

import torch


def nearest(
    a: torch.Tensor, ref: torch.Tensor, chunk: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """L2 distance from each row of ``a`` (N, D) to its nearest row of ``ref`` (M, D), and
    that row's index: (N,) float, (N,) int64 (the first of equally near rows)."""
    dist, idx = [], []
    for start in range(0, len(a), chunk):
        best = torch.cdist(a[start : start + chunk], ref).min(dim=1)
        dist.append(best.values)
        idx.append(best.indices)
    if not dist:
        return torch.zeros(0, dtype=ref.dtype), torch.zeros(0, dtype=torch.int64)
    return torch.cat(dist), torch.cat(idx)


def nearest_distance(a: torch.Tensor, ref: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """L2 distance from each row of ``a`` (N, D) to its nearest row of ``ref`` (M, D): (N,)."""
    return nearest(a, ref, chunk)[0]


def pixels(x: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, C, H, W) as float64 rows (N, C*H*W) in [0, 1]: the copy test's space."""
    return x.reshape(len(x), -1).double() / 255.0


def novelty(
    samples: torch.Tensor, train: torch.Tensor, test: torch.Tensor, percentile: float = 1.0
) -> dict:
    """Copy share and distance ratio of ``samples`` against ``train``, calibrated on ``test``."""
    s, tr, te = pixels(samples), pixels(train), pixels(test)
    d_samples = nearest_distance(s, tr)
    d_test = nearest_distance(te, tr)
    threshold = torch.quantile(d_test, percentile / 100.0)
    return {
        "copy_share": (d_samples < threshold).double().mean().item(),
        "copy_threshold": threshold.item(),
        "nn_distance_median": d_samples.median().item(),
        "test_nn_distance_median": d_test.median().item(),
        "nn_distance_ratio": (d_samples.median() / d_test.median()).item(),
        "percentile": percentile,
        "n_samples": len(s),
        "n_train": len(tr),
        "n_test": len(te),
    }
