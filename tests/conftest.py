"""Shared fixtures: the real data beside the checkout, and one thread per process.

`../shared/data` (MNIST, Tiny Shakespeare, ...) stands in for the official
downloads. Tests that need it skip on a user's machine where it is absent;
`.ci/run` refuses to start without it, so CI never skips them.
"""

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GENLAB_TEST_DATA", REPO.parent / "shared" / "data"))

# Two cores: pytest and any subprocess it starts each get one thread.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder laid out like the mirror (mnist/, tinyshakespeare/, stories/)."""
    if not (SHARED_DATA / "SHA256SUMS").exists():
        pytest.skip(f"real data not found at {SHARED_DATA} (set GENLAB_TEST_DATA)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets an empty genlab cache and no mirror unless it sets one."""
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("GENLAB_DATA_MIRROR", raising=False)


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory) -> Path:
    """One genlab cache for a whole test module."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def use_module_cache(module_cache, monkeypatch):
    """A module that trains the domain classifier once says
    ``pytestmark = pytest.mark.usefixtures("use_module_cache")``."""
    monkeypatch.setenv("GENLAB_CACHE", str(module_cache))


# -- the studio (genlab serve) --------------------------------------------------------------
STUDIO_RUNS = (  # (name, family, overrides): conditional image runs and a text run, seconds each
    ("vae", "vae", ["model.conditional=true", "train.steps=30"]),
    ("gan", "gan", ["model.conditional=true", "train.steps=20", "train.ema_decay=0.9"]),
    # 1000 timesteps (as the default preset): enough sampling steps to watch previews
    ("diffusion", "diffusion", ["model.conditional=true", "train.steps=20", "model.width=16",
                                "model.timesteps=1000"]),
    ("lstm", "rnn", ["data.name=grimms", "train.steps=20"]),
)


@pytest.fixture(scope="session")
def studio_runs(tmp_path_factory) -> Path:
    """A folder of tiny trained runs, one per family kind (trained once per session)."""
    from genlab.training.launch import train

    root = tmp_path_factory.mktemp("studio") / "runs"
    for name, family, overrides in STUDIO_RUNS:
        train(family, root / name, preset="tiny", overrides=overrides, progress=False)
    return root


class Studio:
    """A `genlab serve` subprocess: ``url`` (with the token, when there is one), ``base``."""

    def __init__(self, proc, url: str):
        import re

        self.proc, self.url = proc, url
        self.base = re.match(r"(http://[^/]+)", url).group(1)
        self.token = url.split("token=", 1)[1] if "token=" in url else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:
                self.proc.kill()


def start_studio(paths, *extra: str, env: dict | None = None, timeout: float = 60.0) -> Studio:
    """Start `genlab serve PATHS --port 0 EXTRA...` and wait for the URL it prints."""
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "genlab", "serve", *map(str, paths), "--port", "0", *extra]
    e = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read()
            raise RuntimeError(f"genlab serve exited ({proc.wait()}): {err[-2000:]}")
        if " at http://" in line:
            return Studio(proc, line.rsplit(" at ", 1)[1].strip())
    proc.kill()
    raise RuntimeError("genlab serve printed no URL in time")


@pytest.fixture(scope="module")
def studio(studio_runs):
    """`genlab serve` over the studio runs on a free loopback port, for a test module."""
    s = start_studio([studio_runs])
    yield s
    s.stop()
