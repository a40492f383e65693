"""The noise schedule of a discrete-time Gaussian diffusion (Ho et al. 2020): pure math,
no parameters, no network, so every formula is tested alone against its closed form.

    s = NoiseSchedule("cosine", timesteps=1000)
    x_t = s.add_noise(x0, eps, t)                       # a draw of q(x_t | x_0)
    target = s.target(x0, eps, t, "v")                  # what the network learns
    x0_hat, eps_hat = s.split(net_out, x_t, t, "v")     # and back
    mean, var = s.posterior(x0, x_t, t)                 # q(x_{t-1} | x_t, x_0)
    w = s.loss_weight(t, "eps", "min_snr")              # Hang et al. 2023

Notation: alpha_bar[t] = prod_{s<=t} (1 - beta[s]) for t = 0..T-1, so
x_t = sqrt(alpha_bar[t]) x_0 + sqrt(1 - alpha_bar[t]) eps. Index -1 stands for the clean
image (alpha_bar = 1), which is where every sampler ends.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

Kind = Literal["linear", "cosine"]
Prediction = Literal["eps", "v", "x0"]
Weighting = Literal["uniform", "min_snr"]


def _linear_betas(timesteps: int) -> torch.Tensor:
    # Ho et al.'s 1e-4..0.02 for T=1000, scaled so other T keep the same end points of SNR
    scale = 1000 / timesteps
    return torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)


def _cosine_betas(timesteps: int, s: float = 0.008) -> torch.Tensor:
    # Nichol & Dhariwal 2021: alpha_bar(t) = cos^2((t/T + s) / (1 + s) * pi/2), betas <= 0.999
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=0.999)


class NoiseSchedule:
    """alpha_bar and everything derived from it, in float64 (cast where used)."""

    def __init__(self, kind: Kind = "cosine", timesteps: int = 1000):
        if kind not in ("linear", "cosine"):
            raise ValueError(f"unknown schedule {kind!r}: linear or cosine")
        if timesteps < 2:
            raise ValueError("a schedule needs at least 2 timesteps")
        self.kind, self.timesteps = kind, timesteps
        self.betas = _linear_betas(timesteps) if kind == "linear" else _cosine_betas(timesteps)
        self.alphas = 1 - self.betas
        self.alpha_bar = torch.cumprod(self.alphas, 0)
        self._padded: dict[torch.device, torch.Tensor] = {}

    # -- per-timestep scalars ------------------------------------------------------------
    def ab(self, t: torch.Tensor | int) -> torch.Tensor:
        """alpha_bar at integer timesteps ``t`` (index -1: 1.0, the clean image)."""
        t = torch.as_tensor(t, dtype=torch.long)
        table = self._padded.get(t.device)
        if table is None:  # one copy per device, so indexing never leaves the device
            # float64 where the device has it (Apple's MPS does not)
            dtype = torch.float32 if t.device.type == "mps" else torch.float64
            table = self._padded[t.device] = torch.cat(
                [self.alpha_bar, self.alpha_bar.new_ones(1)]
            ).to(t.device, dtype)
        return table[torch.where(t < 0, self.timesteps, t)]

    def snr(self, t: torch.Tensor | int) -> torch.Tensor:
        """Signal-to-noise ratio alpha_bar / (1 - alpha_bar)."""
        ab = self.ab(t)
        return ab / (1 - ab)

    def _bcast(self, v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return v.to(like.device, like.dtype).reshape(-1, *([1] * (like.dim() - 1)))

    # -- the forward process ---------------------------------------------------------------
    def marginal(self, t: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
        """q(x_t | x_0) = N(mean_coef * x_0, var I): returns (mean_coef, var)."""
        ab = self.ab(t)
        return ab.sqrt(), 1 - ab

    def add_noise(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = self._bcast(self.ab(t), x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * eps

    def posterior(
        self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, s: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """q(x_s | x_t, x_0) for s < t (default s = t - 1): (mean, variance per sample).

        With a = alpha_bar: mean = sqrt(a_s) b / (1 - a_t) x_0 + sqrt(a_t / a_s) (1 - a_s) /
        (1 - a_t) x_t and var = (1 - a_s) / (1 - a_t) b, where b = 1 - a_t / a_s (the beta of
        the jump from s to t; for s = t - 1 it is beta_t).
        """
        t = torch.as_tensor(t, dtype=torch.long)
        s = t - 1 if s is None else torch.as_tensor(s, dtype=torch.long)
        a_t, a_s = self.ab(t), self.ab(s)
        b = 1 - a_t / a_s
        c0 = a_s.sqrt() * b / (1 - a_t)
        ct = (a_t / a_s).sqrt() * (1 - a_s) / (1 - a_t)
        var = (1 - a_s) / (1 - a_t) * b
        mean = self._bcast(c0, x0) * x0 + self._bcast(ct, xt) * xt
        return mean, var.to(x0.device, x0.dtype)

    # -- what the network predicts ------------------------------------------------------
    def target(
        self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, prediction: Prediction
    ) -> torch.Tensor:
        """The regression target: eps, x0, or v = sqrt(a) eps - sqrt(1 - a) x0
        (Salimans & Ho 2022)."""
        if prediction == "eps":
            return eps
        if prediction == "x0":
            return x0
        if prediction == "v":
            ab = self._bcast(self.ab(t), x0)
            return ab.sqrt() * eps - (1 - ab).sqrt() * x0
        raise ValueError(f"unknown prediction {prediction!r}: eps, v or x0")

    def split(
        self, out: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, prediction: Prediction
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's output turned into (x0_hat, eps_hat) consistent with x_t."""
        ab = self._bcast(self.ab(t), xt)
        a, s = ab.sqrt(), (1 - ab).sqrt()
        if prediction == "eps":
            return (xt - s * out) / a, out
        if prediction == "x0":
            return out, (xt - a * out) / s
        if prediction == "v":
            x0 = a * xt - s * out
            return x0, s * xt + a * out
        raise ValueError(f"unknown prediction {prediction!r}: eps, v or x0")

    def loss_weight(
        self, t: torch.Tensor, prediction: Prediction, weighting: Weighting, gamma: float = 5.0
    ) -> torch.Tensor:
        """Per-sample weight of the mean-squared error on ``prediction``'s target.

        min_snr (Hang et al. 2023) weights every timestep's loss, expressed as an x0 error,
        by min(SNR, gamma); on the eps target that is min(SNR, gamma) / SNR, on the v
        target min(SNR, gamma) / (SNR + 1).
        """
        if weighting == "uniform":
            return torch.ones(len(t), dtype=torch.float64, device=torch.as_tensor(t).device)
        if weighting != "min_snr":
            raise ValueError(f"unknown weighting {weighting!r}: uniform or min_snr")
        snr = self.snr(t)
        clipped = snr.clamp(max=gamma)
        return {"x0": clipped, "eps": clipped / snr, "v": clipped / (snr + 1)}[prediction]
