"""Feature-space metrics: FID (against scipy), KID (unbiased), precision/recall, density/coverage, IS.

Small synthetic Gaussians only (d <= 64, n <= 2000): each test checks a value an
independent formula or the papers predict, so a wrong formula fails it.
"""

import numpy as np
import pytest
import torch
from scipy.linalg import sqrtm
from scipy.spatial.distance import cdist

from genlab.errors import GenlabError
from genlab.metrics.image import (
    density_coverage,
    fid,
    fid_bootstrap_ci,
    fid_from_stats,
    gaussian_stats,
    inception_score,
    kid,
    precision_recall,
)


def _gauss(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)) * scale + shift


def _two_gaussians(n: int = 500, d: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Different means and correlated, different covariances."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * 0.5
    b = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * 0.7 + 0.3
    return a, b


# ---- FID -----------------------------------------------------------------------------------


def _fid_scipy(x: np.ndarray, y: np.ndarray) -> float:
    """The textbook formula with scipy's general matrix square root (pytorch-fid's way)."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = np.real(sqrtm(s1 @ s2))
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_fid_matches_scipy_sqrtm():
    a, b = _two_gaussians()
    expected = _fid_scipy(a, b)
    assert expected > 1.0
    assert fid(a, b) == pytest.approx(expected, rel=1e-6)
    # torch input, and cached statistics, give the same number
    assert fid(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected, rel=1e-6)
    assert fid_from_stats(*gaussian_stats(a), *gaussian_stats(b)) == pytest.approx(
        expected, rel=1e-6
    )


def test_gaussian_stats_are_unbiased_mean_and_covariance():
    a, _ = _two_gaussians(n=50, d=5)
    mu, sigma = gaussian_stats(a)
    assert isinstance(mu, np.ndarray) and mu.dtype == np.float64 and mu.shape == (5,)
    np.testing.assert_allclose(mu, a.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(a, rowvar=False, ddof=1), rtol=1e-12)


def test_fid_of_a_set_with_itself_is_zero():
    a, _ = _two_gaussians()
    assert abs(fid(a, a)) < 1e-8
    few = _gauss(20, 64, seed=1)  # singular covariance
    assert abs(fid(few, few)) < 1e-8


def test_fid_with_fewer_samples_than_dimensions_is_exact():
    """n=20 < d=64: both covariances have rank 19, where sqrtm is unreliable. Reference:
    with s1 = A'A, s2 = B'B (centred rows / sqrt(n-1)), tr((s1 s2)^1/2) is the nuclear norm
    of A B' (the nonzero eigenvalues of s1 s2 are the squared singular values of A B')."""
    x, y = _gauss(20, 64, seed=1), _gauss(20, 64, seed=2, shift=0.2, scale=1.5)
    value = fid(x, y)
    assert isinstance(value, float) and np.isfinite(value) and value >= 0
    a = (x - x.mean(0)) / np.sqrt(len(x) - 1)
    b = (y - y.mean(0)) / np.sqrt(len(y) - 1)
    nuclear = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    diff = x.mean(0) - y.mean(0)
    expected = diff @ diff + (a * a).sum() + (b * b).sum() - 2 * nuclear
    assert value == pytest.approx(expected, rel=1e-10)  # clipping only at 0 gives ~1e-8


def test_fid_bootstrap_interval_contains_estimate_and_narrows_with_n():
    def width_around_estimate(n: int) -> float:
        real, fake = _gauss(n, 8, seed=3), _gauss(n, 8, seed=4, shift=0.5, scale=1.2)
        low, high = fid_bootstrap_ci(real, fake, n_boot=100, seed=0)
        assert low < fid(real, fake) < high
        return high - low

    small, large = width_around_estimate(200), width_around_estimate(2000)
    assert large < small / 2  # width ~ 1/sqrt(n): about 3x narrower at 10x the samples


def test_fid_from_rows_equals_the_covariance_route_when_samples_are_few():
    # 60 samples in 256 dimensions: the SVD route, and the eigh route on the same data
    real, fake = _gauss(60, 256, seed=5), _gauss(50, 256, seed=6, shift=0.3, scale=1.1)
    from genlab.metrics.image import _few_rows, fid_from_stats, gaussian_stats

    assert _few_rows(60, 50, 256)
    direct = fid_from_stats(*gaussian_stats(real), *gaussian_stats(fake))
    assert fid(real, fake) == pytest.approx(direct, rel=1e-9)


def test_fid_bootstrap_interval_covers_the_expected_fid_at_this_n():
    # FID is biased upward at finite n; the interval must cover what a fresh draw of the
    # same sizes would give (its expectation), which the plain percentile interval misses.
    rng = np.random.default_rng(1)
    d, n, trials = 16, 300, 40
    shift = np.zeros(d)
    shift[0] = 0.5
    draws = [
        (rng.standard_normal((n, d)), rng.standard_normal((n, d)) + shift) for _ in range(trials)
    ]
    expected = np.mean([fid(r, f) for r, f in draws])
    assert expected > 0.25 * 2  # the population FID is 0.25: the bias is large here

    def coverage(corrected: bool) -> float:
        hits = 0
        for t, (r, f) in enumerate(draws):
            low, high = fid_bootstrap_ci(r, f, n_boot=60, seed=t, bias_corrected=corrected)
            hits += low <= expected <= high
        return hits / trials

    assert coverage(True) >= 0.8
    assert coverage(False) <= 0.2


def test_fid_bootstrap_is_reproducible_and_can_fix_the_real_set():
    real, fake = _gauss(100, 4, seed=3), _gauss(100, 4, seed=4, shift=0.5)
    assert fid_bootstrap_ci(real, fake, n_boot=10, seed=7) == fid_bootstrap_ci(
        real, fake, n_boot=10, seed=7
    )
    low, high = fid_bootstrap_ci(real, fake, n_boot=10, seed=7, resample_real=False)
    assert low <= high


def test_mismatched_dimensions_are_one_clear_line():
    with pytest.raises(GenlabError, match="same feature extractor") as e:
        fid(_gauss(10, 4, 0), _gauss(10, 5, 1))
    assert "\n" not in str(e.value)
    with pytest.raises(GenlabError, match="shape"):
        fid(np.zeros(10), _gauss(10, 4, 1))
    with pytest.raises(GenlabError, match="same extractor"):
        fid_from_stats(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# ---- KID -----------------------------------------------------------------------------------


def _mmd2_unbiased_direct(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic kernel, one pair at a time (Binkowski et al. 2018, eq. 2)."""
    m, d = len(x), x.shape[1]
    k = lambda u, v: (u @ v / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / m**2


def test_kid_matches_direct_formula_on_a_tiny_set():
    x, y = _gauss(12, 3, seed=5), _gauss(12, 3, seed=6, shift=0.4)
    # one subset of all rows: a permutation of each set, which the estimator ignores
    mean, std = kid(x, y, subsets=1, subset_size=100, chunk=5)  # size capped at 12; chunked
    assert mean == pytest.approx(_mmd2_unbiased_direct(x, y), rel=1e-10)
    assert std == 0.0


def test_kid_is_unbiased_for_one_distribution_and_positive_for_a_shift():
    """Over independent pairs of samples of one distribution the estimates average to 0
    within 3 standard errors. (The biased estimator, diagonal included, sits ~27 standard
    errors above 0 here, so this fails for it.)"""
    values = [
        kid(_gauss(200, 8, seed=2 * s), _gauss(200, 8, seed=2 * s + 1), subsets=1)[0]
        for s in range(40)
    ]
    std_error = np.std(values, ddof=1) / np.sqrt(len(values))
    assert abs(np.mean(values)) < 3 * std_error
    assert min(values) < 0 < max(values)  # unbiased: some estimates fall below 0

    mean, std = kid(_gauss(200, 8, seed=0), _gauss(200, 8, seed=1, shift=0.5), subsets=20)
    assert mean > 10 * max(std_error, std / np.sqrt(20)) and mean > 0.3


def test_kid_subsets_are_seeded():
    x, y = _gauss(100, 4, seed=0), _gauss(100, 4, seed=1)
    assert kid(x, y, subsets=5, subset_size=50, seed=3) == kid(
        x, y, subsets=5, subset_size=50, seed=3
    )
    assert kid(x, y, subsets=5, subset_size=50, seed=3) != kid(
        x, y, subsets=5, subset_size=50, seed=4
    )


# ---- precision / recall / density / coverage -----------------------------------------------


def _reference_prdc(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, ...]:
    """Full distance matrices with scipy, as in the papers' reference code."""
    d_rr, d_ff, d_rf = cdist(real, real), cdist(fake, fake), cdist(real, fake)
    r_real = np.sort(d_rr, axis=1)[:, k]  # column 0 is the point itself
    r_fake = np.sort(d_ff, axis=1)[:, k]
    precision = (d_rf <= r_real[:, None]).any(0).mean()
    recall = (d_rf <= r_fake[None, :]).any(1).mean()
    density = (d_rf < r_real[:, None]).sum() / (k * len(fake))
    coverage = (d_rf.min(1) < r_real).mean()
    return precision, recall, density, coverage


def test_prdc_chunked_equals_full_matrix_reference():
    real, fake = _gauss(150, 6, seed=0), _gauss(130, 6, seed=1, shift=0.3, scale=0.8)
    p, r, d, c = _reference_prdc(real, fake, k=4)
    assert precision_recall(real, fake, k=4, chunk=17) == pytest.approx((p, r), abs=1e-12)
    assert density_coverage(real, fake, k=4, chunk=17) == pytest.approx((d, c), abs=1e-12)
    assert 0 < p < 1 and 0 < r < 1 and 0 < c < 1  # not a degenerate case


@pytest.fixture(scope="module")
def real_8d() -> np.ndarray:
    return _gauss(1000, 8, seed=10)


def test_prdc_identical_distributions(real_8d):
    fake = _gauss(1000, 8, seed=11)
    precision, recall = precision_recall(real_8d, fake, k=3)
    density, coverage = density_coverage(real_8d, fake, k=5)
    assert precision > 0.8 and recall > 0.8 and coverage > 0.8
    assert 0.8 < density < 1.2  # expectation exactly 1 (Naeem et al. 2020)


def test_prdc_shifted_fake_loses_fidelity(real_8d):
    same, shifted = _gauss(1000, 8, seed=11), _gauss(1000, 8, seed=12, shift=1.5)
    p_same, _ = precision_recall(real_8d, same)
    d_same, _ = density_coverage(real_8d, same)
    p_shift, _ = precision_recall(real_8d, shifted)
    d_shift, _ = density_coverage(real_8d, shifted)
    assert p_shift < 0.5 * p_same
    assert d_shift < 0.5 * d_same


def test_prdc_collapsed_fake_keeps_fidelity_loses_diversity(real_8d):
    collapsed = _gauss(1000, 8, seed=13, scale=0.01)  # every sample near the real mean
    precision, recall = precision_recall(real_8d, collapsed)
    _, coverage = density_coverage(real_8d, collapsed)
    assert precision > 0.95
    assert recall < 0.1 and coverage < 0.1


def test_knn_needs_more_samples_than_k():
    with pytest.raises(GenlabError, match="nearest neighbours"):
        precision_recall(_gauss(3, 2, 0), _gauss(10, 2, 1), k=3)


# ---- Inception score -----------------------------------------------------------------------


def test_inception_score_bounds():
    n, c = 500, 5
    uniform = np.full((n, c), 1.0 / c)
    assert inception_score(uniform) == pytest.approx((1.0, 0.0), abs=1e-12)
    one_hot = np.eye(c)[np.arange(n) % c]  # each split holds every class equally often
    assert inception_score(one_hot, splits=10) == pytest.approx((c, 0.0), abs=1e-9)
    # all rows the same confident class: no diversity, score 1
    assert inception_score(np.eye(c)[np.zeros(n, dtype=int)])[0] == pytest.approx(1.0)


def test_inception_score_against_direct_kl():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((200, 7)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = []
    for part in np.split(probs, 4):
        p_y = part.mean(0)
        scores.append(np.exp(np.mean([(p * np.log(p / p_y)).sum() for p in part])))
    assert inception_score(torch.from_numpy(probs), splits=4) == pytest.approx(
        (np.mean(scores), np.std(scores)), rel=1e-10
    )
    with pytest.raises(GenlabError, match="softmax"):
        inception_score(logits, splits=4)
