"""The VAE's math: proper discrete likelihoods, the IWAE bound, KL warm-up, labels."""

import math

import pytest
import torch

from genlab.models.base import DataInfo
from genlab.models.vae import VAE, VAEConfig, discretized_log_prob

LEVELS = torch.arange(256, dtype=torch.float64) / 127.5 - 1  # every 8-bit pixel value


@pytest.mark.parametrize("kind", ["logistic", "gaussian"])
@pytest.mark.parametrize("mean, log_scale", [(0.0, -3.0), (0.9, -1.0), (-1.2, -5.0), (0.3, 1.0)])
def test_discretized_likelihood_sums_to_one_over_the_256_levels(kind, mean, log_scale):
    m = torch.full_like(LEVELS, mean)
    s = torch.full_like(LEVELS, log_scale)
    p = discretized_log_prob(LEVELS, m, s, kind).exp()
    assert p.sum().item() == pytest.approx(1.0, abs=2e-3)
    assert (p >= 0).all()


def _vae(likelihood="bernoulli", conditional=False, shape=(1, 8, 8)):
    torch.manual_seed(0)
    cfg = VAEConfig(latent_dim=4, width=8, blocks=0, likelihood=likelihood, conditional=conditional)
    return VAE(cfg, DataInfo.images(shape, [str(i) for i in range(10)])).eval()


def test_iwae_with_one_sample_is_the_elbo_and_more_samples_tighten_it():
    vae = _vae()
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(16, 1, 8, 8, generator=g) > 0.5).float() * 2 - 1  # binary images
    # k = 1 is the negative ELBO in expectation
    nelbo = torch.stack([vae.iwae_nll(x, k=1) for _ in range(400)]).mean(0)
    torch.manual_seed(1)
    mu, logvar = vae.encode(x)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
    z = mu + torch.randn(2000, *mu.shape) * (0.5 * logvar).exp()
    rec = -torch.stack([vae.log_px(x, vae.decode(zi)) for zi in z]).mean(0)
    torch.testing.assert_close(nelbo, rec + kl, rtol=0.02, atol=0.2)
    # the bound tightens monotonically in expectation: NLL_k1 >= NLL_k10 >= NLL_k200
    nll = [
        vae.iwae_nll(x, k=k, generator=torch.Generator().manual_seed(2)).mean().item()
        for k in (1, 10, 200)
    ]
    assert nll[0] > nll[1] > nll[2]


def test_evaluate_reports_nats_bits_per_dim_and_its_standard_error():
    vae = _vae()
    x = torch.rand(12, 1, 8, 8) * 2 - 1
    r = vae.evaluate([{"x": x[:6]}, {"x": x[6:]}], k=5)
    assert r["n"] == 12 and r["k"] == 5 and r["binarized"]
    assert r["bits_per_dim"] == pytest.approx(r["iwae_nll"] / (64 * math.log(2)))
    assert 0 < r["iwae_nll_sem"] < r["iwae_nll"]
    assert vae.evaluate([{"x": x}], k=5, seed=3) == vae.evaluate([{"x": x}], k=5, seed=3)


def test_kl_warmup_ramps_beta():
    vae = _vae()
    vae.config.kl_warmup_steps = 100
    x = torch.rand(8, 1, 8, 8) * 2 - 1
    torch.manual_seed(0)
    early = vae.loss({"x": x, "step": 0})
    torch.manual_seed(0)
    late = vae.loss({"x": x, "step": 1000})
    assert early["kl"] == late["kl"]  # same noise, same KL ...
    assert early["loss"].item() == pytest.approx((early["rec"] + 0.01 * early["kl"]).item())
    assert late["loss"].item() == pytest.approx(
        (late["rec"] + late["kl"]).item()
    )  # ... beta 0.01 vs 1


def test_labels_condition_the_samples_and_are_checked():
    vae = _vae(conditional=True)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    threes, sevens = vae.sample(4, generator=g(), label=3), vae.sample(4, generator=g(), label=7)
    assert not torch.equal(threes, sevens)
    assert torch.equal(vae.sample(4, generator=g(), label=[3, 3, 3, 3]), threes)
    with pytest.raises(Exception, match="out of range"):
        vae.sample(2, label=10)
    with pytest.raises(Exception, match="not conditional"):
        _vae().sample(2, label=1)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64), (1, 12, 12)])
def test_architecture_adapts_to_image_size_and_channels(shape):
    vae = _vae("logistic" if shape[0] == 3 else "bernoulli", shape=shape)
    assert vae.sample(2).shape == (2, *shape)
    x = torch.rand(2, *shape) * 2 - 1
    assert torch.isfinite(vae.loss({"x": x, "step": 0})["loss"])
    assert vae.reconstruct(x).shape == x.shape
    assert vae.interpolate(2, 3).shape == (6, *shape)
