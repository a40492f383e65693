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


# -- loopback HTTP: a file server standing in for a mirror URL or an official site ----------
def dead_url() -> str:
    """An http URL on a local port nobody listens on: connection refused at once."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def file_server(tmp_path):
    """A loopback HTTP server over tmp_path/served (links followed); `requests` records the
    paths asked for, `url` is its base ("http://127.0.0.1:PORT/")."""
    import http.server
    import threading
    import urllib.parse
    from types import SimpleNamespace

    root = tmp_path / "served"
    root.mkdir()
    state = SimpleNamespace(root=root, requests=[])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            rel = urllib.parse.unquote(self.path.split("?")[0]).lstrip("/")
            state.requests.append(rel)
            path = root / rel
            if not path.is_file():
                self.send_error(404)
                return
            body = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 64  # many clients at once (parallel downloads) are not turned away
        daemon_threads = True

    httpd = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_port}/"
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


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


@pytest.fixture(scope="session")
def prompt_runs(tmp_path_factory) -> Path:
    """A folder of a tiny txt2img run ("t2i": 16x16 shapes drawn from captions such as "a
    small red circle, top left", 50 timesteps) and a run that takes no prompt ("vae")."""
    from genlab.training.launch import train

    root = tmp_path_factory.mktemp("prompts") / "runs"
    train("txt2img", root / "t2i", preset="tiny", progress=False)
    train("vae", root / "vae", preset="tiny", overrides=["train.steps=10"], progress=False)
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


# -- sound ----------------------------------------------------------------------------------
def write_wav(path: Path, x, rate: int = 8000, width: int = 2, channels: int = 1) -> Path:
    """A PCM WAV of float samples ``x`` in [-1, 1] (1-D, or (frames, channels))."""
    import wave

    import numpy as np

    a = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    a = np.repeat(a, channels, axis=1) if a.shape[1] == 1 and channels > 1 else a
    if width == 1:
        raw = np.clip(np.round(a * 128 + 128), 0, 255).astype(np.uint8).tobytes()
    else:
        full = 2 ** (8 * width - 1)  # the scale readers divide by
        ints = np.clip(np.round(a * full), -full, full - 1).astype(np.int64)
        raw = b"".join(
            int(v).to_bytes(width, "little", signed=True) for v in ints.reshape(-1)
        ) if width == 3 else ints.astype({2: "<i2", 4: "<i4"}[width]).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(a.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(raw)
    return path


def tone_clips(root: Path, per_class: int = 12, rate: int = 8000) -> Path:
    """A folder of short labelled clips named like FSDD's ({label}_{speaker}_{i}.wav): class
    k is a decaying tone at 300 * (k + 1) Hz with a little noise, 0.2-0.45 s long."""
    import numpy as np

    rng = np.random.default_rng(0)
    for k in range(3):
        for i in range(per_class):
            n = int(rate * rng.uniform(0.2, 0.45))
            t = np.arange(n) / rate
            x = 0.5 * np.sin(2 * np.pi * 300 * (k + 1) * t) * np.exp(-3 * t)
            x += 0.01 * rng.standard_normal(n)
            write_wav(root / f"{k}_tone_{i}.wav", x, rate)
    return root


@pytest.fixture(scope="session")
def tone_folder(tmp_path_factory) -> Path:
    """36 labelled tone clips in three classes, FSDD's naming (see tone_clips)."""
    return tone_clips(tmp_path_factory.mktemp("tones") / "tones")
