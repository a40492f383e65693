"""Exact resume: a run killed with SIGKILL and continued with --resume ends
bit-identical to one that never stopped; a kill during a checkpoint write
leaves the previous checkpoint current and loadable."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import genlab
from genlab.training import trainer as trainer_mod
from genlab.training.checkpoint import CheckpointDir

# shuffling (always), dropout and EMA on; log every step so the test sees progress
ARGS = [
    "vae",
    "--preset",
    "tiny",
    "--steps",
    "60",
    "--checkpoint-every",
    "20",
    "--quiet",
    "model.dropout=0.2",
    "train.ema_decay=0.9",
    "train.eval_every=0",
    "train.sample_every=0",
    "model.width=16",
    "train.log_every=1",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _genlab(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "genlab", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


def _last_step(run: Path) -> int:
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    steps = [json.loads(line)["step"] for line in lines if line.endswith("}")]
    return max(steps, default=0)


def _final_tensors(run: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the final checkpoint: model, EMA, optimizer (and RNG)."""
    folder = CheckpointDir(run).latest()
    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update({f"{f.stem}/{k}": v for k, v in load_file(f).items()})
    return out


def _assert_identical(a: dict, b: dict):
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("ref") / "run"
    r = _genlab("train", *ARGS, "--out", str(run))
    assert r.returncode == 0, r.stderr
    return run


def test_sigkill_then_resume_is_bit_identical(reference, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "genlab", "train", *ARGS, "--out", str(run)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    while _last_step(run) < 27 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _last_step(run)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert 20 < killed_at < 60 and killed_at % 20 != 0, killed_at
    assert CheckpointDir(run).latest().name == "step-00000020"

    r = _genlab("train", "--out", str(run), "--resume", "--quiet")
    assert r.returncode == 0, r.stderr
    _assert_identical(_final_tensors(run), _final_tensors(reference))
    for f in ("model.safetensors", "ema.safetensors"):
        _assert_identical(load_file(run / f), load_file(reference / f))
    # the curve has each step once: records past the checkpoint were dropped and redone
    steps = [
        json.loads(x)["step"]
        for x in (run / "metrics.jsonl").read_text().splitlines()
        if "val_loss" not in x
    ]
    assert steps == list(range(1, 61))


@pytest.mark.parametrize("sabotage", ["rng", "data_position"])
def test_resume_depends_on_rng_and_data_position(reference, tmp_path, monkeypatch, sabotage):
    """The check above has teeth: without restoring the RNG state or the data
    position, the resumed run no longer matches the uninterrupted one."""
    run = tmp_path / "run"
    base = [a for a in ARGS[3:] if a not in ("--quiet",)]  # after "vae --preset tiny"
    overrides = [a for a in base if "=" in a] + ["train.steps=60", "train.checkpoint_every=20"]
    genlab.train("vae", run, preset="tiny", overrides=overrides, progress=False, until=20)
    if sabotage == "rng":
        monkeypatch.setattr(trainer_mod, "set_rng_state", lambda state, device: None)
    else:
        monkeypatch.setattr(trainer_mod.Batcher, "load_state_dict", lambda self, state: None)
    genlab.train(None, run, resume=True, progress=False)
    a, b = _final_tensors(run), _final_tensors(reference)
    model_keys = [k for k in a if k.startswith("model/")]
    assert any(not torch.equal(a[k], b[k]) for k in model_keys)


KILL_DURING_WRITE = """
import os, signal, sys
import genlab.training.checkpoint as ck
real = ck.save_tensors
def dying(path, tensors, atomic=True):
    real(path, tensors, atomic)
    if ".tmp-step-00000040" in str(path):  # the 2nd checkpoint, after its first file
        os.kill(os.getpid(), signal.SIGKILL)
ck.save_tensors = dying
from genlab.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_kill_during_checkpoint_write_keeps_previous_checkpoint(reference, tmp_path):
    run = tmp_path / "run"
    script = tmp_path / "dying.py"
    script.write_text(KILL_DURING_WRITE)
    r = subprocess.run(
        [sys.executable, str(script), "train", *ARGS, "--out", str(run)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == -signal.SIGKILL
    state = run / "state"
    assert [p.name for p in state.glob(".tmp-*")], "the half-written checkpoint should be there"
    assert CheckpointDir(run).latest().name == "step-00000020"
    genlab.load(run).sample(2)  # the weights beside it still load

    r = _genlab("train", "--out", str(run), "--resume", "--quiet")
    assert r.returncode == 0, r.stderr
    assert not list(state.glob(".tmp-*")), "leftovers of the killed write are cleaned up"
    _assert_identical(_final_tensors(run), _final_tensors(reference))
