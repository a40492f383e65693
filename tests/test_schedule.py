"""The diffusion noise schedule and samplers, alone, against closed forms.

No network: the samplers run on the exact denoiser of Gaussian data N(mu, sd^2), whose
E[x0 | x_t] is known, so a correct sampler must return N(mu, sd^2) samples.
"""

from __future__ import annotations

import pytest
import torch

from genlab.models.diffusion.sampler import ddim_invert, sample, timesteps
from genlab.models.diffusion.schedule import NoiseSchedule

KINDS = ["linear", "cosine"]
MU, SD = 0.3, 0.5


def gaussian_denoiser(schedule: NoiseSchedule, mu: float = MU, sd: float = SD):
    """The Bayes-optimal (x0_hat, eps_hat) for data ~ N(mu, sd^2) in every dimension."""

    def denoise(x, t):
        ab = schedule.ab(t).to(x.dtype).reshape(-1, *[1] * (x.dim() - 1))
        a, s = ab.sqrt(), (1 - ab).sqrt()
        x0 = mu + a * sd**2 / (a**2 * sd**2 + s**2) * (x - a * mu)
        return x0, (x - a * x0) / s

    return denoise


@pytest.mark.parametrize("kind", KINDS)
def test_schedule_is_a_valid_decreasing_alpha_bar(kind):
    s = NoiseSchedule(kind, 1000)
    ab = s.alpha_bar
    assert ab.dtype == torch.float64 and len(ab) == 1000
    assert (ab[1:] < ab[:-1]).all() and 0.99 < ab[0] < 1 and ab[-1] < 1e-3
    assert ((s.betas > 0) & (s.betas <= 0.999)).all()
    assert s.ab(-1).item() == 1.0  # the clean image
    torch.testing.assert_close(s.ab(torch.tensor([0, 999])), ab[[0, 999]])


@pytest.mark.parametrize("kind", KINDS)
def test_marginal_is_the_composition_of_the_single_steps(kind):
    # x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) z, composed t times from x_0
    s = NoiseSchedule(kind, 1000)
    coef, var = torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    for t in range(1000):
        coef = coef * s.alphas[t].sqrt()
        var = s.alphas[t] * var + s.betas[t]
        if t in (0, 10, 500, 999):
            mean_coef, marginal_var = s.marginal(t)
            torch.testing.assert_close(mean_coef, coef, rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(marginal_var, var, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_add_noise_has_the_moments_of_q_xt_given_x0(kind):
    s = NoiseSchedule(kind, 1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.tensor([0.8, -0.4, 0.0], dtype=torch.float64)
    for t in (0, 100, 600, 999):
        eps = torch.randn(200_000, 3, generator=g, dtype=torch.float64)
        xt = s.add_noise(x0.expand(200_000, 3), eps, torch.full((200_000,), t))
        mean_coef, var = s.marginal(t)
        torch.testing.assert_close(xt.mean(0), mean_coef * x0, atol=0.01, rtol=0)
        torch.testing.assert_close(xt.var(0), var.expand(3), atol=0.01, rtol=0.02)


@pytest.mark.parametrize("kind", KINDS)
def test_posterior_matches_gaussian_conditioning(kind):
    # q(x_s | x_t, x_0) ∝ q(x_s | x_0) q(x_t | x_s): precision-weighted, for s = t-1 and jumps
    s = NoiseSchedule(kind, 1000)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(6, 2, dtype=torch.float64, generator=g)
    xt = torch.randn(6, 2, dtype=torch.float64, generator=g)
    t = torch.tensor([1, 5, 50, 400, 900, 999])
    for src in (t - 1, t // 2, torch.full_like(t, -1)):
        a_t, a_s = s.ab(t), s.ab(src)
        jump_coef, jump_var = (a_t / a_s).sqrt(), 1 - a_t / a_s
        prec = 1 / (1 - a_s) + jump_coef**2 / jump_var
        var = 1 / prec
        mean = var[:, None] * (
            (a_s.sqrt() / (1 - a_s))[:, None] * x0 + (jump_coef / jump_var)[:, None] * xt
        )
        got_mean, got_var = s.posterior(x0, xt, t, None if src is t - 1 else src)
        clean = src < 0  # the clean image: the posterior is x0 itself, with no variance
        torch.testing.assert_close(got_mean[~clean], mean[~clean], rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(got_var[~clean], var[~clean], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(got_mean[clean], x0[clean])
        assert (got_var[clean] == 0).all()
    # s = t - 1 gives the textbook variance beta_t (1 - a_{t-1}) / (1 - a_t)
    _, var = s.posterior(x0, xt, t)
    expect = s.betas[t] * (1 - s.ab(t - 1)) / (1 - s.ab(t))
    torch.testing.assert_close(var, expect)


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_targets_and_split_invert_each_other(prediction):
    s = NoiseSchedule("cosine", 1000)
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(5, 1, 4, 4, dtype=torch.float64, generator=g)
    eps = torch.randn(5, 1, 4, 4, dtype=torch.float64, generator=g)
    t = torch.tensor([0, 10, 300, 700, 990])
    xt = s.add_noise(x0, eps, t)
    x0_hat, eps_hat = s.split(s.target(x0, eps, t, prediction), xt, t, prediction)
    torch.testing.assert_close(x0_hat, x0, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(eps_hat, eps, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_min_snr_weights_every_target_as_min_snr_times_the_x0_error(prediction):
    # Hang et al. 2023: the weighted loss equals min(SNR, gamma) * |x0_hat - x0|^2 whatever
    # the network predicts
    s = NoiseSchedule("cosine", 1000)
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(4, 16, dtype=torch.float64, generator=g)
    eps = torch.randn(4, 16, dtype=torch.float64, generator=g)
    t = torch.tensor([5, 100, 500, 950])
    xt = s.add_noise(x0, eps, t)
    target = s.target(x0, eps, t, prediction)
    out = target + 0.1 * torch.randn(4, 16, dtype=torch.float64, generator=g)
    x0_hat, _ = s.split(out, xt, t, prediction)
    w = s.loss_weight(t, prediction, "min_snr", gamma=5.0)
    lhs = w * (out - target).pow(2).sum(1)
    rhs = s.snr(t).clamp(max=5.0) * (x0_hat - x0).pow(2).sum(1)
    torch.testing.assert_close(lhs, rhs)
    assert (s.loss_weight(t, prediction, "uniform") == 1).all()


def test_timesteps_span_the_schedule():
    assert timesteps(1000, 1000) == list(range(999, -1, -1))
    # trailing: equal strides from T-1, none spent at t=0 (diffusers' "trailing" spacing)
    assert timesteps(1000, 50) == list(range(999, 0, -20))
    assert timesteps(1000, 4) == [999, 749, 499, 249]
    ts = timesteps(1000, 30)  # strides of 33.3, rounded
    assert len(ts) == 30 and ts[:4] == [999, 966, 932, 899] and ts[-1] == 32
    assert timesteps(1000, 1) == [999]
    by_snr = timesteps(1000, 20, NoiseSchedule("cosine", 1000))
    assert by_snr[0] == 999 and by_snr[-1] == 0 and len(by_snr) == 20
    with pytest.raises(ValueError):
        timesteps(1000, 1001)


@pytest.mark.parametrize(
    "sampler,steps,kind",
    [
        ("ddim", 200, "cosine"),
        ("dpm++2m", 20, "cosine"),
        ("dpm++2m", 20, "linear"),
        ("ddpm", 1000, "linear"),
    ],
)
def test_samplers_turn_noise_into_the_data_distribution(sampler, steps, kind):
    s = NoiseSchedule(kind, 1000)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(20_000, 1, dtype=torch.float64, generator=g)
    out = sample(gaussian_denoiser(s), s, x, sampler=sampler, steps=steps, clip=False, generator=g)
    assert abs(out.mean().item() - MU) < 0.02
    assert abs(out.std().item() - SD) < 0.025


@pytest.mark.parametrize("kind", KINDS)
def test_the_second_order_sampler_beats_ddim_at_equal_steps(kind):
    s = NoiseSchedule(kind, 1000)
    x = torch.randn(20_000, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    err = {
        name: abs(
            sample(gaussian_denoiser(s), s, x, sampler=name, steps=20, clip=False).std() - SD
        ).item()
        for name in ("ddim", "dpm++2m")
    }
    assert err["dpm++2m"] < 0.6 * err["ddim"], err


def test_ddim_eta0_is_deterministic_and_eta1_is_not():
    s = NoiseSchedule("cosine", 1000)
    x = torch.randn(64, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    runs = [
        sample(
            gaussian_denoiser(s),
            s,
            x,
            sampler="ddim",
            steps=30,
            eta=eta,
            clip=False,
            generator=torch.Generator().manual_seed(seed),
        )
        for eta, seed in ((0.0, 1), (0.0, 2), (1.0, 1), (1.0, 2))
    ]
    assert torch.equal(runs[0], runs[1])
    assert not torch.allclose(runs[2], runs[3])


@pytest.mark.parametrize("kind", KINDS)
def test_ddim_inversion_recovers_the_noise(kind):
    s = NoiseSchedule(kind, 1000)
    denoise = gaussian_denoiser(s)
    x_T = torch.randn(256, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    x0 = sample(denoise, s, x_T, sampler="ddim", steps=50, clip=False)
    back = ddim_invert(denoise, s, x0, steps=50)
    assert (back - x_T).abs().max().item() < 2e-3
    again = sample(denoise, s, back, sampler="ddim", steps=50, clip=False)
    assert (again - x0).abs().max().item() < 1e-3
    # the round trip is not trivially the identity: x0 is far from the noise, and the
    # plain one-pass inversion (no fixed-point refinement) is far less exact
    assert (x0 - x_T).abs().mean().item() > 0.3
    rough = ddim_invert(denoise, s, x0, steps=50, refine=0)
    assert (rough - x_T).abs().max().item() > 0.05
