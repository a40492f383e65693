"""Samplers: from noise to images with one denoiser, by DDPM, DDIM or DPM-Solver++(2M).

A sampler knows the schedule and a ``denoise(x_t, t) -> (x0_hat, eps_hat)`` function (the
network with guidance and its prediction type already applied); it has no parameters.

    x = torch.randn(16, 1, 8, 8)
    x = sample(denoise, schedule, x, sampler="ddim", steps=50)            # eta=0: an ODE
    x = sample(denoise, schedule, x, sampler="dpm++2m", steps=20)
    x_T = ddim_invert(denoise, schedule, x0, steps=50)                    # back to the noise

- ``ddpm``: ancestral sampling (Ho et al. 2020), x_s ~ q(x_s | x_t, x0_hat); at fewer steps
  than the schedule it jumps between the chosen timesteps with the matching posterior.
- ``ddim``: Song et al. 2021; eta=0 deterministic, eta=1 the DDPM posterior's variance.
- ``dpm++2m``: DPM-Solver++ multistep, second order, data prediction (Lu et al. 2022);
  about 20 steps match DDIM's 50 or more. Its steps are spread evenly in log-SNR.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from genlab.models.diffusion.schedule import NoiseSchedule

Denoiser = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
SAMPLERS = ("ddpm", "ddim", "dpm++2m")


def timesteps(total: int, steps: int, schedule: NoiseSchedule | None = None) -> list[int]:
    """``steps`` timesteps from total-1 down (all of them at steps=total), after which
    every sampler lands on the clean image.

    Without a ``schedule`` they trail evenly from total-1 in strides of total/steps, so the
    last is total/steps - 1 (1000 timesteps, 50 steps: 999, 979, ..., 19): each step
    covers an equal share of the schedule and none is spent at t=0, where x_t is already
    the clean image (Lin et al. 2024's "trailing" spacing; diffusers'
    ``timestep_spacing="trailing"``, so an exported DDIM takes the same steps whenever
    ``steps`` divides ``total``). Given the ``schedule``, they spread evenly in log-SNR
    down to t=0 (what DPM-Solver wants at low resolution: equal steps h in lambda keep
    its second-order correction stable)."""
    if not 1 <= steps <= total:
        raise ValueError(f"sampling steps must be in [1, {total}], got {steps}")
    if steps == 1:
        return [total - 1]
    if schedule is None:
        stride = torch.arange(steps, dtype=torch.float64) * (total / steps)
        ts = ((total - stride).round() - 1).long().tolist()
    else:
        # the first step starts at pure noise (t = total-1); the rest spread evenly in
        # lambda from sigma/alpha = 80 (Karras et al.'s sigma_max) down to t = 0
        lam = 0.5 * torch.log(schedule.snr(torch.arange(total)))
        low = max(lam[-1].item(), -math.log(80.0))
        wanted = torch.linspace(low, lam[0].item(), steps - 1, dtype=torch.float64)
        ts = [total - 1, *(lam[None, :] - wanted[:, None]).abs().argmin(1).tolist()]
        for i in range(steps - 2, 0, -1):  # strictly decreasing: no evaluation wasted
            ts[i] = max(ts[i], ts[i + 1] + 1)
        if ts[1] >= ts[0]:  # too many steps to spread this way: evenly in t instead
            return timesteps(total, steps)
    return sorted(set(ts), reverse=True)


def _batched(t: int, x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)


@torch.no_grad()
def sample(
    denoise: Denoiser,
    schedule: NoiseSchedule,
    x: torch.Tensor,
    *,
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 0.0,
    clip: bool = True,
    generator: torch.Generator | None = None,
    progress: Callable[[int], None] | None = None,
    preview: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Run ``sampler`` from x = x_T (standard normal) to the clean image x_{-1}.

    ``clip`` keeps x0_hat inside the data range [-1, 1] at every step (for images);
    ``progress(i)`` is called after each network evaluation, ``preview(i, x0_hat)`` with the
    predicted clean image of that step (what the studio shows as the image forms).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}: one of {', '.join(SAMPLERS)}")
    ts = timesteps(schedule.timesteps, steps, schedule if sampler == "dpm++2m" else None)
    nexts = [*ts[1:], -1]
    x0_prev, h_prev = None, None
    for i, (t, s) in enumerate(zip(ts, nexts)):
        x0, eps = denoise(x, _batched(t, x))
        if clip:
            x0 = x0.clamp(-1, 1)
            if sampler != "dpm++2m":  # keep eps consistent with the clipped x0
                a_t = schedule.ab(t).item()
                eps = (x - a_t**0.5 * x0) / (1 - a_t) ** 0.5
        a_s = schedule.ab(s).item()
        if sampler == "ddpm" or (sampler == "ddim" and eta > 0):
            a_t = schedule.ab(t).item()
            var = (1 - a_s) / (1 - a_t) * (1 - a_t / a_s)
            if sampler == "ddpm":
                mean, _ = schedule.posterior(x0, x, _batched(t, x), _batched(s, x))
                x = mean
            else:
                var = eta**2 * var
                x = a_s**0.5 * x0 + max(1 - a_s - var, 0.0) ** 0.5 * eps
            if s >= 0 and var > 0:
                x = x + var**0.5 * torch.randn(
                    x.shape, generator=generator, device=x.device, dtype=x.dtype
                )
        elif sampler == "ddim":
            x = a_s**0.5 * x0 + (1 - a_s) ** 0.5 * eps
        else:
            x, x0_prev, h_prev = _dpmpp_2m_step(schedule, x, x0, t, s, x0_prev, h_prev)
        if progress:
            progress(i + 1)
        if preview:
            preview(i + 1, x0)
    return x


def _lambda(schedule: NoiseSchedule, t: int) -> float:
    """log(alpha / sigma): half the log-SNR."""
    return 0.5 * torch.log(schedule.snr(t)).item()


def _dpmpp_2m_step(schedule, x, x0, t, s, x0_prev, h_prev):
    """One DPM-Solver++(2M) step from t to s; first order at the first and the last step."""
    a_t, a_s = schedule.ab(t).item(), schedule.ab(s).item()
    if s < 0:  # the clean image: sigma_s = 0, so x_s is the data prediction itself
        return x0, x0, None
    sig_t, sig_s, alpha_s = (1 - a_t) ** 0.5, (1 - a_s) ** 0.5, a_s**0.5
    h = _lambda(schedule, s) - _lambda(schedule, t)
    d = x0
    if x0_prev is not None:
        r = h_prev / h
        d = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * x0_prev
    x = (sig_s / sig_t) * x - alpha_s * torch.expm1(torch.tensor(-h)).item() * d
    return x, x0, h


@torch.no_grad()
def ddim_invert(
    denoise: Denoiser,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    *,
    steps: int = 50,
    refine: int = 3,
) -> torch.Tensor:
    """The noise that deterministic DDIM (eta=0, no clipping) maps to ``x0``.

    Each downward step is x_s = c_x x_t + c_e eps_hat(x_t, t), so going up x_t solves
    x_t = (x_s - c_e eps_hat(x_t, t)) / c_x. The first guess takes eps_hat at the known,
    less noisy end (the usual DDIM inversion, exact only as steps shrink); ``refine``
    fixed-point iterations then solve the step itself, so sampling the result with the
    same steps gives ``x0`` back to tolerance.
    """
    ts = timesteps(schedule.timesteps, steps)
    starts = list(reversed([*ts[1:], -1]))  # where each upward step starts
    x = x0
    for s, t in zip(starts, reversed(ts)):
        a_s, a_t = schedule.ab(s).item(), schedule.ab(t).item()
        c_x = (a_s / a_t) ** 0.5
        c_e = (1 - a_s) ** 0.5 - (a_s * (1 - a_t) / a_t) ** 0.5
        _, eps = denoise(x, _batched(max(s, 0), x))
        x_t = (x - c_e * eps) / c_x
        for _ in range(refine):
            _, eps = denoise(x_t, _batched(t, x))
            x_t = (x - c_e * eps) / c_x
        x = x_t
    return x
