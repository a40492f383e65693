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
