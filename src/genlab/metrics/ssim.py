"""MS-SSIM among samples: how alike pairs of generated images are (lower = more diverse).

Multi-scale SSIM (Wang, Simoncelli and Bovik 2003) with the 5-scale weights of
the paper, an 11x11 Gaussian window (sigma 1.5). Images too small for five
scales use fewer (the window shrinks to the image at most, and a scale needs
the window to fit), with the weights of the scales used renormalised; the
record says how many scales and which window were used.

    result = ms_ssim_diversity(samples_uint8, pairs=500, seed=0)
    result["ms_ssim"], result["scales"]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003
C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _window(size: int, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def plan(height: int, width: int, max_scales: int = 5) -> tuple[int, int]:
    """(window, scales) for images of this size: 11x11 and five scales when they fit."""
    window = min(11, height, width)
    window -= 1 - window % 2  # odd
    scales = 1
    while scales < max_scales and min(height, width) // 2**scales >= window:
        scales += 1
    return window, scales


def _filter(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)


def _ssim_parts(a: torch.Tensor, b: torch.Tensor, g: torch.Tensor):
    """Mean luminance term and contrast-structure term per image pair: (N,), (N,)."""
    mu_a, mu_b = _filter(a, g), _filter(b, g)
    var_a = _filter(a * a, g) - mu_a**2
    var_b = _filter(b * b, g) - mu_b**2
    cov = _filter(a * b, g) - mu_a * mu_b
    lum = (2 * mu_a * mu_b + C1) / (mu_a**2 + mu_b**2 + C1)
    cs = (2 * cov + C2) / (var_a + var_b + C2)
    return lum.flatten(1).mean(1), cs.flatten(1).mean(1)


def ms_ssim(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """MS-SSIM of each pair of uint8 images (N, C, H, W): (N,) and how it was measured."""
    a, b = a.double(), b.double()
    window, scales = plan(a.shape[-2], a.shape[-1])
    g = _window(window)
    weights = torch.tensor(WEIGHTS[:scales], dtype=torch.float64)
    weights = weights / weights.sum()
    cs_terms = []
    for s in range(scales):
        lum, cs = _ssim_parts(a, b, g)
        if s < scales - 1:
            cs_terms.append(cs.clamp(min=0))
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    # luminance only at the coarsest scale; contrast-structure at every scale
    terms = torch.stack([*cs_terms, (lum * cs).clamp(min=0)], dim=0)
    value = torch.prod(terms ** weights.view(-1, 1), dim=0)
    return value, {"scales": scales, "window": window, "sigma": 1.5}


def ms_ssim_diversity(images: torch.Tensor, pairs: int = 500, seed: int = 0) -> dict:
    """Mean MS-SSIM over random pairs of distinct images of a set (uint8 (N, C, H, W))."""
    n = len(images)
    if n < 2:
        raise ValueError("MS-SSIM diversity needs at least two images")
    g = torch.Generator().manual_seed(seed)
    i = torch.randint(0, n, (pairs,), generator=g)
    j = (i + torch.randint(1, n, (pairs,), generator=g)) % n  # never the same image
    values, how = ms_ssim(images[i], images[j])
    return {"ms_ssim": values.mean().item(), "pairs": pairs, **how}
