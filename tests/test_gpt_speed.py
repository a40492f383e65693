"""What genlab's GPT does to train as fast as nanoGPT: fused optimizers, float32 attention
under CPU bf16, the `fast` preset, time-stamped validations, and the side-by-side benchmark."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import genlab
from genlab.data import DataInfo
from genlab.models.ar import gpt as gpt_module
from genlab.run import RunConfig, build_model

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


def test_attention_trains_in_float32_under_cpu_bf16_and_matches_float32(monkeypatch):
    """PyTorch's bf16 flash-attention backward on a CPU is 4-8x slower than float32's: under
    bf16 autocast with gradients on, attention gets float32 inputs; without gradients
    (sampling, validation) it stays in bf16, where the forward kernel is the faster one."""
    cfg = gpt_module.GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=16)
    attn = gpt_module.CausalSelfAttention(cfg)
    seen = []
    sdpa = F.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        seen.append(q.dtype)
        return sdpa(q, k, v, **kw)

    monkeypatch.setattr(gpt_module.F, "scaled_dot_product_attention", spy)
    x = torch.randn(3, 16, 32, generator=torch.Generator().manual_seed(0))
    want = attn(x)
    want.pow(2).sum().backward()
    want_grad = attn.qkv.weight.grad.clone()
    attn.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = attn(x)
        with torch.no_grad():
            attn(x)
    got.float().pow(2).sum().backward()
    assert seen == [torch.float32, torch.float32, torch.bfloat16]
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, atol=3e-2, rtol=3e-2)
    cos = F.cosine_similarity(attn.qkv.weight.grad.flatten(), want_grad.flatten(), dim=0)
    assert cos > 0.99


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
    val = [(r["step"], r["elapsed_s"]) for r in recs if "val_loss" in r]
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
