"""Spectrogram: waveform <-> (1, 64, 64) image, and Griffin-Lim back to sound."""

import io
import json
import math
import re
import tarfile
import wave

import numpy as np
import pytest
import torch

from genlab.data.spectrogram import Spectrogram, griffin_lim, spectral_convergence
from genlab.errors import ConfigError

SR, N_FFT, HOP, SAMPLES = 8000, 128, 64, 4096


def stft_magnitude(x: torch.Tensor) -> torch.Tensor:
    """The original's full magnitude (N, 65, 65): what a rebuilt wave is judged against."""
    window = torch.hann_window(N_FFT, device=x.device)
    return torch.stft(x, N_FFT, HOP, window=window, return_complex=True).abs()


def tone(freq: float, n: int = 1) -> torch.Tensor:
    t = torch.arange(SAMPLES) / SR
    return (0.5 * torch.sin(2 * math.pi * freq * t)).repeat(n, 1)


def harmonic(n: int, seed: int) -> torch.Tensor:
    """(n, 4096): 8 harmonics of a random 150-400 Hz pitch under a swell-and-decay envelope."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(SAMPLES) / SR
    f0 = 150 + 250 * torch.rand(n, 1, generator=g)
    env = torch.sin(math.pi * t / t[-1]) ** 2 * torch.exp(-3 * t)
    x = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 9))
    return (0.3 * env * x).float()


def uint8_round_trip(image: torch.Tensor) -> torch.Tensor:
    """As the data layer stores images: [-1, 1] -> uint8 -> [-1, 1]."""
    return ((image + 1) * 127.5).round().to(torch.uint8).float() / 127.5 - 1


@pytest.fixture(scope="module")
def synthetic():
    return Spectrogram().fit(harmonic(32, seed=1)), harmonic(16, seed=0)


@pytest.fixture(scope="module")
def fsdd(shared_data):
    """FSDD clips cropped / zero-padded to 4096: 100 training clips (index 5-49) to fit on,
    100 held-out test clips (index 0-4), spread over digits and speakers."""
    train, test = [], []
    path = shared_data / "fsdd" / "free-spoken-digit-dataset-v1.0.10.tar.gz"
    with tarfile.open(path) as tar:
        for member in tar:
            m = re.search(r"recordings/\d_\w+_(\d+)\.wav$", member.name)
            if not m:
                continue
            with wave.open(io.BytesIO(tar.extractfile(member).read())) as w:
                assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (SR, 2, 1)
                x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
            x = np.pad(x[:SAMPLES], (0, max(0, SAMPLES - len(x))))
            (test if int(m.group(1)) < 5 else train).append(x)
    assert (len(train), len(test)) == (2700, 300)
    train, test = torch.tensor(np.stack(train)), torch.tensor(np.stack(test))
    return train[::27][:100], test[::3][:100]


def test_shape_and_range(synthetic):
    spec, _ = synthetic
    img = spec.to_image(torch.randn(3, SAMPLES) * 0.1)
    assert spec.shape == (1, 64, 64)
    assert img.shape == (3, 1, 64, 64) and img.dtype == torch.float32
    assert img.min() >= -1 and img.max() <= 1
    assert spec.to_wave(img, iters=2).shape == (3, SAMPLES)


@pytest.mark.parametrize("freq, bin_", [(1000, 16), (2500, 40)])
def test_pure_tone_peaks_in_its_bin(freq, bin_):
    assert bin_ == round(freq / (SR / N_FFT))
    logmag = Spectrogram().log_magnitude(tone(freq, n=2))  # (2, 64, 64)
    assert logmag.shape == (2, 64, 64)
    assert (logmag[:, :, 1:-1].argmax(dim=1) == bin_).all()


def test_griffin_lim_improves_on_zero_phase(synthetic):
    spec, x = synthetic
    ref, img = stft_magnitude(x), spec.to_image(x)
    sc0 = spectral_convergence(ref, spec.to_wave(img, iters=0), N_FFT, HOP)
    sc32 = spectral_convergence(ref, spec.to_wave(img, iters=32), N_FFT, HOP)
    # measured 0.82 -> 0.089
    assert sc32 < 0.15 and sc32 < sc0 / 4, (sc0, sc32)


def test_uint8_images_lose_little(synthetic):
    spec, x = synthetic
    ref, img = stft_magnitude(x), spec.to_image(x)
    sc = spectral_convergence(ref, spec.to_wave(img), N_FFT, HOP)
    sc_q = spectral_convergence(ref, spec.to_wave(uint8_round_trip(img)), N_FFT, HOP)
    assert abs(sc_q - sc) < 0.02, (sc, sc_q)


def test_round_trip_on_speech(fsdd):
    train, test = fsdd
    spec = Spectrogram().fit(train)
    ref, img = stft_magnitude(test), spec.to_image(test)
    sc = {it: spectral_convergence(ref, spec.to_wave(img, iters=it), N_FFT, HOP) for it in (0, 32)}
    sc_q = spectral_convergence(ref, spec.to_wave(uint8_round_trip(img)), N_FFT, HOP)
    print(
        f"FSDD spectral convergence: 0 iters {sc[0]:.3f}, 32 iters {sc[32]:.3f}, uint8 {sc_q:.3f}"
    )
    # measured: 0.83 (zero phase), 0.055 (32 iterations), 0.062 (32, uint8 images)
    assert sc[32] < 0.1 and sc[0] > 0.5
    assert abs(sc_q - sc[32]) < 0.02


def test_deterministic_given_a_seed(synthetic):
    spec, x = synthetic
    img = spec.to_image(x[:2])

    def rebuild(seed):
        g = None if seed is None else torch.Generator().manual_seed(seed)
        return spec.to_wave(img, iters=4, generator=g)

    assert torch.equal(rebuild(0), rebuild(0))
    assert torch.equal(rebuild(None), rebuild(None))
    assert not torch.equal(rebuild(0), rebuild(1))


def test_dict_round_trip(synthetic):
    spec, _ = synthetic
    d = json.loads(json.dumps(spec.to_dict()))
    assert Spectrogram.from_dict(d) == spec
    assert Spectrogram.from_dict(Spectrogram().to_dict()) == Spectrogram()
    with pytest.raises(ConfigError, match="unknown"):
        Spectrogram.from_dict({**d, "hopp": 32})


def test_errors():
    with pytest.raises(ConfigError, match="fit the transform on training clips first"):
        Spectrogram().to_image(tone(1000))
    with pytest.raises(ConfigError, match="fit the transform"):
        Spectrogram().to_wave(torch.zeros(1, 1, 64, 64))
    with pytest.raises(ConfigError, match="mean has 3 values"):
        Spectrogram(mean=(0.0,) * 3, std=(1.0,) * 3)
    spec = Spectrogram().fit(tone(1000))
    with pytest.raises(ConfigError, match="pad or crop"):
        spec.to_image(torch.zeros(1, 4000))
    with pytest.raises(ConfigError, match="does not fit"):
        griffin_lim(torch.ones(1, 65, 64), N_FFT, HOP, SAMPLES)


def test_constant_bins_do_not_divide_by_zero():
    spec = Spectrogram().fit(torch.zeros(4, SAMPLES))  # every bin log(eps), std 0
    img = spec.to_image(torch.zeros(2, SAMPLES))
    assert torch.isfinite(img).all() and (img == 0).all()
    assert torch.isfinite(spec.to_wave(img, iters=2)).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_follows_the_input(synthetic):
    spec, x = synthetic
    img = spec.to_image(x.cuda())
    assert img.device.type == "cuda"
    torch.testing.assert_close(img.cpu(), spec.to_image(x), atol=1e-4, rtol=0)
    g = torch.Generator().manual_seed(0)  # a CPU generator: the same phase on either device
    w = spec.to_wave(img, iters=32, generator=g)
    assert w.device.type == "cuda"
    assert spectral_convergence(stft_magnitude(x), w, N_FFT, HOP) < 0.15
