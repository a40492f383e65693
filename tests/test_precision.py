"""train.precision: what "auto" picks (bf16 only on a CPU with bf16 matrix units, only for the
families measured faster there at equal quality by benchmarks/cpu_bf16.py), explicit settings
obeyed, the families switched on training under bf16, and what runs in float32 under CPU bf16
because its bf16 kernel is the slower: attention (the GPT's and the U-Net's), the GRU."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import genlab
from genlab import registry
from genlab.data import DataInfo
from genlab.models.ar import gpt as gpt_module
from genlab.models.base import GenerativeModel
from genlab.models.diffusion import unet as unet_module
from genlab.models.vae import VAE
from genlab.rundir import RunConfig, build_model
from genlab.training import precision as precision_module
from genlab.training.precision import resolve_precision

BUILTIN = ("diffusion", "gan", "gpt", "rnn", "vae")
# what benchmarks/cpu_bf16.py measured faster in bf16 (speed ratio >= 1.1) at equal quality
# on a 2-core Xeon with AMX; change this only with a new measurement
CPU_BF16 = {"diffusion", "gan", "gpt", "rnn", "vae"}
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture
def bf16_units(monkeypatch):
    """Set whether the trainer sees a CPU with bf16 matrix units: ``bf16_units(True)``."""
    return lambda present: monkeypatch.setattr(
        precision_module, "cpu_has_bf16_units", lambda: present
    )


def test_the_families_switched_on_are_the_measured_ones():
    assert {f for f in BUILTIN if registry.get(f).cpu_bf16} == CPU_BF16


class UsersVAE(VAE):
    """A family of a user's own, built on a switched-on one, that does not opt in."""

    family = "users-vae"
    cpu_bf16 = False


class UsersFamily(GenerativeModel):
    """A family of a user's own that leaves cpu_bf16 as the base class has it."""

    family = "users-family"


CLASSES = [*BUILTIN, UsersFamily]


@pytest.mark.parametrize("family", CLASSES, ids=str)
def test_auto_is_bf16_only_on_a_cpu_with_bf16_units_for_a_family_that_sets_cpu_bf16(
    family, bf16_units
):
    cls = registry.get(family) if isinstance(family, str) else family
    if cls is UsersFamily:
        assert not cls.cpu_bf16  # a family is measured before it trains in bf16 by default
    bf16_units(True)
    assert resolve_precision("auto", CPU, cls) == ("bf16" if cls.cpu_bf16 else "fp32")
    assert resolve_precision("auto", CUDA, cls) == "fp32"  # autocast on CUDA: asked for only
    bf16_units(False)  # bf16 emulated: slower than float32
    assert resolve_precision("auto", CPU, cls) == "fp32"


@pytest.mark.parametrize("family", CLASSES, ids=str)
@pytest.mark.parametrize("units", [True, False])
def test_explicit_precision_is_obeyed(family, units, bf16_units):
    bf16_units(units)
    cls = registry.get(family) if isinstance(family, str) else family
    for device in (CPU, CUDA):
        assert resolve_precision("fp32", device, cls) == "fp32"
        assert resolve_precision("bf16", device, cls) == "bf16"


def _records(run) -> list[dict]:
    return [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("family", sorted(CPU_BF16))
def test_a_family_switched_on_trains_in_bf16_by_default_with_float32_weights(
    family, bf16_units, tmp_path
):
    bf16_units(True)
    steps = ["train.steps=6", "train.log_every=2", "train.eval_every=3"]
    summary = genlab.train(family, tmp_path / "r", preset="tiny", overrides=steps, progress=False)
    assert summary["precision"] == "bf16"
    recs = _records(tmp_path / "r")
    losses = [r["loss"] for r in recs if "loss" in r] + [
        r["val_loss"] for r in recs if "val_loss" in r
    ]
    assert len(losses) >= 5 and all(math.isfinite(x) for x in losses)
    for name in ("model.safetensors", "ema.safetensors"):
        path = tmp_path / "r" / name
        if path.exists():
            assert {t.dtype for t in load_file(path).values() if t.is_floating_point()} == {
                torch.float32
            }, name
    run = genlab.load(tmp_path / "r")
    assert all(p.dtype == torch.float32 for p in run.model.parameters())


def test_auto_trains_in_float32_without_bf16_units_or_for_a_family_not_switched_on(
    bf16_units, monkeypatch, tmp_path
):
    monkeypatch.setitem(registry._FAMILIES, UsersVAE.family, UsersVAE)
    two = ["train.steps=2"]

    def precision(name: str, family: str, overrides: list[str]) -> str:
        out = tmp_path / name
        return genlab.train(family, out, preset="tiny", overrides=overrides, progress=False)[
            "precision"
        ]

    bf16_units(False)
    assert precision("no-units", "vae", two) == "fp32"
    bf16_units(True)
    assert precision("fp32-asked", "vae", [*two, "train.precision=fp32"]) == "fp32"
    assert precision("users", UsersVAE.family, two) == "fp32"
    assert precision("users-bf16-asked", UsersVAE.family, [*two, "train.precision=bf16"]) == "bf16"


def _gpt_attention():
    return gpt_module.CausalSelfAttention(
        gpt_module.GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=16)
    ), torch.randn(3, 16, 32, generator=torch.Generator().manual_seed(0))


def _unet_attention():
    attn = unet_module.Attention(32)
    torch.nn.init.normal_(attn.out.weight, std=0.1)  # zero-initialised: let attention show
    return attn, torch.randn(4, 32, 8, 8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("build", [_gpt_attention, _unet_attention], ids=["gpt", "unet"])
def test_attention_trains_in_float32_under_cpu_bf16_and_matches_float32(build, monkeypatch):
    """PyTorch's bf16 flash-attention backward on a CPU is 4-17x slower than float32's at
    these models' sizes: under bf16 autocast with gradients on, attention (models/layers.py)
    gets float32 inputs; without gradients (sampling, validation) it stays in bf16, where
    the forward kernel is the faster. Outputs and gradients match float32's."""
    attn, x = build()
    seen = []
    sdpa = F.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        seen.append(q.dtype)
        return sdpa(q, k, v, **kw)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
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
    torch.testing.assert_close(got.float(), want, atol=3e-2, rtol=3e-2)
    cos = F.cosine_similarity(attn.qkv.weight.grad.flatten(), want_grad.flatten(), dim=0)
    assert cos > 0.99


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_gru_runs_in_float32_under_cpu_bf16_and_the_lstm_in_bf16(cell):
    """The CPU GRU has no fused bf16 kernel and trains slower under bf16 autocast at the
    default batch; the LSTM has oneDNN's, 2x faster in bf16."""
    cfg = RunConfig.new("rnn", "tiny", [f"model.cell={cell}", "model.hidden=32"])
    model = build_model(cfg, DataInfo.text(20))
    autocast_in_rnn = []
    model.rnn.register_forward_pre_hook(
        lambda *_: autocast_in_rnn.append(torch.is_autocast_enabled("cpu"))
    )
    ids = torch.randint(0, 20, (3, 17), generator=torch.Generator().manual_seed(0))
    want = model.loss({"x": ids})["loss"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = model.loss({"x": ids})["loss"]
    got.backward()
    assert autocast_in_rnn == [False, cell == "lstm"]
    assert got.item() == pytest.approx(want.item(), rel=2e-2)
    assert all(p.grad is not None and p.grad.isfinite().all() for p in model.parameters())
