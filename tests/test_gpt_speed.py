"""What genlab's GPT does to train as fast as nanoGPT: fused optimizers, the `fast` preset,
time-stamped validations, and the side-by-side benchmark (float32 attention under CPU bf16:
tests/test_precision.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import genlab
from genlab.data import DataInfo
from genlab.rundir import RunConfig, build_model

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = ROOT.parent / "shared" / "anchors" / "nanoGPT"
TEXT = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


def test_adam_and_adamw_are_fused_on_cpu():
    info = DataInfo.text(65)
    gpt = build_model(RunConfig.new("gpt", "tiny"), info)
    assert gpt.optimizers(RunConfig.new("gpt", "tiny").train)["main"].defaults["fused"]
    images = DataInfo.images((1, 8, 8), [str(i) for i in range(10)])
    gan = build_model(RunConfig.new("gan", "tiny"), images)
    for opt in gan.optimizers(RunConfig.new("gan", "tiny").train).values():
        assert opt.defaults["fused"]
        assert len(opt.param_groups[0]["params"]) > 0  # the parameter lists were not used up


def test_fast_preset_is_nanogpts_cpu_model():
    cfg = RunConfig.new("gpt", "fast")
    model = build_model(cfg, DataInfo.text(65))
    m = cfg.model
    assert (m.n_layer, m.n_head, m.n_embd, m.block_size, m.dropout) == (4, 4, 128, 64, 0.0)
    # nanoGPT's count (0.80M) leaves out the position embeddings
    n = sum(p.numel() for p in model.parameters()) - model.wpe.weight.numel()
    assert round(n / 1e6, 2) == 0.80
    assert (
        cfg.train.precision == "auto"
        and cfg.train.steps * cfg.train.batch_size * 64 < 2000 * 12 * 64
    )


def test_validation_records_carry_the_training_clock(tmp_path):
    genlab.train("gpt", tmp_path / "r", preset="tiny", progress=False)
    recs = [json.loads(s) for s in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    train = {r["step"]: r["elapsed_s"] for r in recs if "loss" in r}
    val = [(r["step"], r["val_elapsed_s"]) for r in recs if "val_loss" in r]
    assert len(val) >= 2
    assert [s for s, _ in val] == sorted(s for s, _ in val)
    for step, t in val:  # after that step's training record, before the next one's
        assert train[step] <= t
        later = [u for s, u in train.items() if s > step]
        assert not later or t <= min(later)


@pytest.mark.skipif(not (ANCHOR / "train.py").exists() or not TEXT.exists(), reason="no anchor")
def test_benchmark_runs_both_and_scores_them_by_one_protocol(tmp_path):
    """A short run of benchmarks/gpt_vs_nanogpt.py: both programs train, both final models
    are scored over the whole validation split, and genlab's score there is the one its
    own validation logged (the protocol is the same)."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpt_vs_nanogpt.py"), "--steps", "80"]
        + ["--no-fast", "--work", str(tmp_path / "w")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout)
    nano, gen = res["nanogpt"], res["genlab"]
    assert nano["steps"] == gen["steps"] == 80 and nano["val_loss_at_step"] == 80
    assert gen["val_loss_whole_split"] == pytest.approx(gen["val_curve"]["80"], abs=2e-4)
    # 80 steps from a uniform start (ln 65 = 4.17): both have learned, to about the same
    assert max(nano["val_loss_whole_split"], gen["val_loss_whole_split"]) < 3.3
    assert abs(res["val_loss_delta"]) < 0.25
    assert nano["tokens_per_s"] > 0 and gen["tokens_per_s"] > 0 and nano["peak"]["rss_mb"] > 0
