"""DDP on the CPU: two gloo ranks under torchrun train through the same CLI as one process,
write one run directory, and average their gradients (two ranks at a global batch B reach
the weights one process reaches at B; one process at B/2, an un-averaged rank, does not).

    pytest tests/test_ddp.py
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed
from safetensors.torch import load_file

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="this torch build has no torch.distributed"
)

SRC = Path(__file__).resolve().parents[1] / "src"
HANG_S = 300  # only against a hung rendezvous; a run takes seconds

# genlab's CLI with one extra family registered first: a deterministic conv autoencoder
# (no sampling noise, dropout or batch statistics), so that what two ranks compute can
# be compared with what one process computes, weight for weight.
PROBE_LAUNCHER = Path(__file__).resolve().parents[1] / "benchmarks" / "ddp_probe_launch.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list[str], cwd: Path, nproc: int | None = None) -> subprocess.CompletedProcess:
    """Run ``python [torchrun --nproc_per_node=nproc] ARGS``, one torch thread per process."""
    cmd = [sys.executable]
    if nproc:
        cmd += [
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={nproc}",
            "--master_addr=127.0.0.1",
            f"--master_port={_free_port()}",
        ]
    cmd += args
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)}\nexited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
        f"\n--- stderr\n{proc.stderr[-4000:]}"
    )
    return proc


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _checkpoint_meta(run: Path) -> dict:
    (folder,) = sorted((run / "state").glob("step-*"))
    return json.loads((folder / "trainer.json").read_text())


def test_torchrun_trains_the_vae_through_the_cli_into_one_run(tmp_path):
    out = tmp_path / "run"
    args = ["-m", "genlab", "train", "vae", "--out", str(out), "--steps", "6", "--quiet"]
    _run(args + ["train.batch_size=32", "train.log_every=1"], tmp_path, nproc=2)

    # one run directory, written by rank 0 alone: nothing beside it, no leftovers in it
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    for name in ("config.json", "model.safetensors", "metrics.jsonl"):
        assert (out / name).is_file(), name
    assert [p.name for p in (out / "state").iterdir()] == ["step-00000006"]
    assert not list(out.rglob(".*tmp*"))
    meta = _checkpoint_meta(out)
    assert meta["step"] == 6 and meta["world_size"] == 2
    assert set(load_file(out / "state" / "step-00000006" / "rng.safetensors")) == {
        "rank0",
        "rank1",
    }

    # each step logged once (not once per rank), counting the global batch of 32
    train_recs = [r for r in _records(out) if "loss" in r]
    assert [r["step"] for r in train_recs] == [1, 2, 3, 4, 5, 6]
    assert train_recs[-1]["examples"] == 6 * 32
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in train_recs)
    assert json.loads((out / "config.json").read_text())["train"]["batch_size"] == 32
    weights = load_file(out / "model.safetensors")
    assert weights and all(torch.isfinite(w).all() for w in weights.values())


@pytest.mark.parametrize("family", ["ddp_probe", "ddp_probe_step"])
def test_two_ranks_average_gradients_exactly_like_one_process(tmp_path, family):
    launcher = PROBE_LAUNCHER
    batch = 32
    # no warm-up and a large LR, so that a wrong gradient moves the weights visibly;
    # Adam (the default) and gradient clipping (on by default, after the all-reduce)
    common = ["--steps", "5", "--seed", "3", "--data", "digits", "--quiet"]
    common += ["train.ema_decay=0", "train.warmup_steps=0", "train.lr=0.01", "train.log_every=1"]

    def train(name: str, batch_size: int, nproc: int | None = None) -> dict:
        out = tmp_path / name
        args = [str(launcher), "train", family, "--out", str(out), *common]
        _run(args + [f"train.batch_size={batch_size}"], tmp_path, nproc=nproc)
        assert _checkpoint_meta(out)["world_size"] == (nproc or 1)
        return load_file(out / "model.safetensors")

    ddp = train("ddp", batch, nproc=2)  # each rank: 16 examples a step
    one = train("one", batch)
    half = train("half", batch // 2)  # what one rank alone, un-averaged, would do

    assert set(ddp) == set(one) == set(half) and len(one) == 6
    for name in one:
        torch.testing.assert_close(ddp[name], one[name], atol=1e-5, rtol=1e-4, msg=name)
    # the comparison has teeth: half the batch lands far outside the tolerance
    gap = max((half[k] - one[k]).abs().max().item() for k in one)
    assert gap > 1e-3, f"batch {batch // 2} differs from batch {batch} by only {gap:.2e}"
