"""MS-SSIM diversity: 1 for identical images, near 0 for independent noise, and fewer
scales (reported) where the images are too small for five."""

import pytest
import torch

from genlab.data import DataConfig, load_data
from genlab.metrics.ssim import ms_ssim, ms_ssim_diversity, plan


@pytest.mark.parametrize(
    "size, expected",
    [
        ((8, 8), (7, 1)),
        ((28, 28), (11, 2)),
        ((64, 64), (11, 3)),
        ((256, 256), (11, 5)),
        ((176, 176), (11, 5)),
        ((5, 9), (5, 1)),
    ],
)
def test_scales_and_window_follow_the_image_size(size, expected):
    assert plan(*size) == expected


def _noise(n, shape, seed):
    return torch.randint(
        0, 256, (n, *shape), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8
    )


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32), (1, 64, 64)])
def test_identical_images_score_one_and_independent_noise_near_zero(shape):
    a, b = _noise(16, shape, 0), _noise(16, shape, 1)
    same, how = ms_ssim(a, a)
    assert torch.allclose(same, torch.ones(16, dtype=torch.float64)) and how["scales"] >= 1
    assert ms_ssim(a, b)[0].mean() < 0.2  # few window positions at 8x8: a noisy estimate
    assert torch.allclose(ms_ssim(a, b)[0], ms_ssim(b, a)[0])  # symmetric


def test_a_collapsed_set_is_less_diverse_than_real_digits():
    real = load_data(DataConfig(), "test").x
    collapsed = real[:1].repeat(50, 1, 1, 1)  # one digit, fifty times
    d_real = ms_ssim_diversity(real, pairs=300)
    assert d_real["scales"] == 1 and d_real["window"] == 7  # 8x8: one scale, said so
    assert ms_ssim_diversity(collapsed, pairs=300)["ms_ssim"] == pytest.approx(1.0)
    assert 0.0 < d_real["ms_ssim"] < 0.6
