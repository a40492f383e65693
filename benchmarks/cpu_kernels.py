"""The CPU kernel choices genlab's models make, each timed against the alternative it turned
down, so that the reasons the code gives can be re-checked on this PyTorch and this CPU.

    python benchmarks/cpu_kernels.py [--repeats N] [--only NAME[,NAME]] [--threads N]
        [--min-time S] [--gpt-width W]

Cases (NAME: the choice, where it lives; what it is timed against):

- ``attention_gpt``, ``attention_unet``: ``models/layers.attention`` runs attention in
  float32 while training under CPU bf16 autocast (the bf16 flash-attention backward was
  the slower); forward and backward of ``attention()`` on bf16 q, k, v against
  ``scaled_dot_product_attention`` left in bf16, and against a float32 run's attention.
  The shapes and layouts are those the GPT's and the U-Net's training forward pass call
  ``attention()`` with (recorded from the real builds), one timing per distinct shape.
- ``adam``: ``fusable`` (models/base.py) gives Adam/AdamW ``fused=True``: one ``step()``
  of the GPT's ``model.optimizers()`` against the same AdamW with PyTorch's default
  implementation on this device (``fused=None``, ``foreach=None``) and with ``foreach``.
- ``gelu``: the GPT's MLP uses the exact (erf) GELU, not the tanh approximation: forward
  and backward, float32, on a training batch's MLP activations (batch x block x 4 n_embd).
- ``gru``: ``models/ar/rnn.py`` runs the GRU in float32 under CPU bf16 autocast (no fused
  bf16 CPU kernel): a training step of the rnn family's default preset with
  ``model.cell=gru`` in bf16 as the code runs it, in bf16 with the GRU under autocast too,
  and in float32.
- ``unet``: the same float32-attention rule seen from a whole training step: the
  diffusion family's default preset on digits, in bf16 with ``attention()`` as it is, in
  bf16 with plain bf16 attention in its place, and in float32.
- ``generate``: ``models/ar/generate.generate`` runs under ``torch.inference_mode()``, not
  ``torch.no_grad()``: ms per generated token, greedy, batch 1 (the two must give the same
  tokens).

The GPT of every GPT case is the ``cpu`` preset at ``--gpt-width`` (default 128: nanoGPT's
CPU model, 0.8M parameters, the one ``benchmarks/gpt_vs_nanogpt.py`` trains; 256 is the
preset as it stands), vocabulary 65 (Tiny Shakespeare's characters). A training step is the
trainer's (``training/trainer.py``): forward under ``training.precision.autocast`` (that is
``torch.autocast("cpu", dtype=torch.bfloat16)`` for bf16), backward, ``step_all`` (clip,
AdamW, zero_grad), on fixed batches. Weights are untrained: speed does not depend on them.

Timing: each variant is warmed up (3 calls), then timed ``--repeats`` times, each repeat a
loop of enough calls to last ``--min-time`` seconds, the variants interleaved (their order
rotating each repeat) so that load on a shared machine hits them alike; the figure is the
median ms per call. ``ratio`` is the alternative's time over the code's choice's: above 1,
the choice is the faster here. bf16 figures mean most on a CPU with AMX tiles (``machine``
says whether this one has them); elsewhere PyTorch emulates bf16 matrix products. Prints
one JSON object; about a minute on two cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import sys
import time
import types
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

import genlab.models.ar.gpt as gpt_module
import genlab.models.diffusion.unet as unet_module
from genlab.data import TensorData, data_info, load_data
from genlab.models.ar.generate import generate
from genlab.models.base import DataInfo
from genlab.models.layers import attention
from genlab.rundir import RunConfig, build_model
from genlab.training.precision import autocast
from genlab.training.stepper import step_all

CPU = torch.device("cpu")
VOCAB = 65  # Tiny Shakespeare's characters
CASES = ("attention_gpt", "attention_unet", "adam", "gelu", "gru", "unet", "generate")
WARMUP = 3


def say(msg: str) -> None:
    print(f"cpu_kernels: {msg}", file=sys.stderr, flush=True)


def bench(fns: dict[str, Callable[[], object]], repeats: int, min_time: float) -> dict:
    """Median ms per call of each function, interleaved over ``repeats`` timed loops."""
    number = {}
    for name, fn in fns.items():
        for _ in range(WARMUP):
            fn()
        t0 = time.perf_counter()
        fn()
        number[name] = max(1, math.ceil(min_time / max(time.perf_counter() - t0, 1e-6)))
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            fn, n = fns[name], number[name]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            times[name].append((time.perf_counter() - t0) * 1e3 / n)
    return {name: statistics.median(ts) for name, ts in times.items()}


def ms(t: float) -> float:
    return round(t, 4) if t < 1 else round(t, 3)


def ratio(alternative: float, chosen: float) -> float:
    return round(alternative / chosen, 3)


@contextlib.contextmanager
def patched(module: types.ModuleType, name: str, value) -> Iterator[None]:
    """``module.name`` replaced by ``value`` for the duration (the code itself unchanged)."""
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


def sdpa_bf16(q, k, v, *, is_causal: bool = False, p: float = 0.0) -> torch.Tensor:
    """The alternative to ``attention()``: scaled_dot_product_attention in the inputs' dtype
    (bf16 under autocast) while training too."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal, dropout_p=p)


# -- the models ----------------------------------------------------------------------------
def gpt_config(width: int) -> RunConfig:
    return RunConfig.new("gpt", "cpu", [f"model.n_embd={width}"])


def build(cfg: RunConfig, info) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(cfg, info).to(CPU)


def text_batches(cfg: RunConfig, n: int = 4) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    shape = (cfg.train.batch_size, cfg.model.block_size + 1)
    return [{"x": torch.randint(0, VOCAB, shape, generator=g)} for _ in range(n)]


def digit_batches(cfg: RunConfig, n: int = 4) -> tuple[list[dict], DataInfo]:
    images = load_data(cfg.data, "train", progress=False)
    data = TensorData.from_images(images)
    g = torch.Generator().manual_seed(1)
    batches = []
    for step in range(n):
        idx = torch.randint(0, len(data), (cfg.train.batch_size,), generator=g)
        batches.append({**data.batch(idx, CPU), "step": step})
    return batches, data_info(images)


def trainer_step(model, optimizers, batches: list[dict], precision: str, clip: float):
    """The trainer's step: forward under its autocast, backward, clip and step every
    optimizer; cycles through ``batches``."""
    it = iter(())

    def step() -> None:
        nonlocal it
        batch = next(it, None)
        if batch is None:
            it = iter(batches)
            batch = next(it)
        with autocast(CPU, precision):
            out = model(batch)
        out["loss"].backward()
        step_all(optimizers, clip)

    return step


def attention_calls(module: types.ModuleType, model, batch: dict) -> list[dict]:
    """The (shape, is_causal) of every ``attention()`` call in one bf16 training forward."""
    calls = []

    def record(q, k, v, *, is_causal: bool = False, p: float = 0.0):
        calls.append({"shape": list(q.shape), "is_causal": is_causal, "dropout": p})
        return attention(q, k, v, is_causal=is_causal, p=p)

    with patched(module, "attention", record), autocast(CPU, "bf16"):
        model(batch)
    model.zero_grad(set_to_none=True)
    return calls


# -- the cases -----------------------------------------------------------------------------
def attention_pass(fn, qkv: torch.Tensor, grad: torch.Tensor, causal: bool, p: float):
    """Forward and backward of attention ``fn`` on the q, k, v of ``qkv`` (B, T, 3, heads,
    head_dim), under bf16 autocast when they are bf16."""

    def call() -> None:
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        with autocast(CPU, "bf16" if qkv.dtype == torch.bfloat16 else "fp32"):
            y = fn(q, k, v, is_causal=causal, p=p)
        y.backward(grad)
        qkv.grad = None

    return call


def attention_case(module, model, batch, repeats: int, min_time: float) -> dict:
    calls = attention_calls(module, model, batch)
    shapes: dict[tuple, dict] = {}
    for c in calls:
        key = (tuple(c["shape"]), c["is_causal"])
        shapes.setdefault(key, {**c, "calls_per_step": 0})["calls_per_step"] += 1
    out = []
    for (shape, causal), info in shapes.items():
        b, h, t, d = shape
        g = torch.Generator().manual_seed(2)
        # the models' layout: one (B, T, 3, heads, head_dim) projection, permuted
        qkv32 = torch.randn(b, t, 3, h, d, generator=g).requires_grad_()
        qkv16 = qkv32.detach().bfloat16().requires_grad_()
        grad32 = torch.randn(b, h, t, d, generator=g)
        grad16 = grad32.bfloat16()

        p = info["dropout"]
        t_ = bench(
            {
                "genlab": attention_pass(attention, qkv16, grad16, causal, p),
                "bf16": attention_pass(sdpa_bf16, qkv16, grad16, causal, p),
                "fp32": attention_pass(attention, qkv32, grad32, causal, p),
            },
            repeats,
            min_time,
        )
        out.append(
            {
                "shape_b_heads_t_headdim": list(shape),
                "is_causal": causal,
                "calls_per_step": info["calls_per_step"],
                "bf16_attention_ms": ms(t_["bf16"]),
                "genlab_float32_attention_ms": ms(t_["genlab"]),
                "fp32_run_attention_ms": ms(t_["fp32"]),
                "ratio": ratio(t_["bf16"], t_["genlab"]),
            }
        )
    return out


def case_attention_gpt(args) -> dict:
    cfg = gpt_config(args.gpt_width)
    model = build(cfg, DataInfo.text(VOCAB)).train()
    shapes = attention_case(gpt_module, model, text_batches(cfg, 1)[0], args.repeats, args.min_time)
    return {
        "what": "forward + backward of attention() on bf16 q, k, v under bf16 autocast (genlab: "
        "float32 inside) vs scaled_dot_product_attention left in bf16; fp32_run: a float32 "
        "run's attention() at the same shape",
        "model": f"gpt, cpu preset, model.n_embd={args.gpt_width}",
        "shapes": shapes,
    }


def case_attention_unet(args) -> dict:
    cfg = RunConfig.new("diffusion", "default")
    batches, info = digit_batches(cfg, 1)
    model = build(cfg, info).train()
    shapes = attention_case(unet_module, model, batches[0], args.repeats, args.min_time)
    return {
        "what": "as attention_gpt, at the U-Net's attention shapes (not causal)",
        "model": f"diffusion, default preset, digits {list(info.shape)}",
        "shapes": shapes,
    }


def case_adam(args) -> dict:
    cfg = gpt_config(args.gpt_width)
    model = build(cfg, DataInfo.text(VOCAB))
    fused = model.optimizers(cfg.train)["main"]
    if not fused.defaults.get("fused"):
        raise RuntimeError("model.optimizers() did not give a fused AdamW on this CPU")
    g = torch.Generator().manual_seed(3)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g) * 1e-3
    groups = [
        {"params": gr["params"], "weight_decay": gr["weight_decay"]} for gr in fused.param_groups
    ]
    kw = {"lr": cfg.train.lr, "betas": tuple(cfg.train.betas)}
    default = torch.optim.AdamW(groups, **kw)
    foreach = torch.optim.AdamW(groups, **kw, foreach=True)
    impl = "for-loop"
    with contextlib.suppress(Exception):  # a private helper: how torch picks its default
        from torch.optim.optimizer import _default_to_fused_or_foreach

        params = [p for gr in groups for p in gr["params"]]
        _, use_foreach = _default_to_fused_or_foreach(params, differentiable=False)
        impl = "foreach" if use_foreach else "for-loop"
    t = bench(
        {"fused": fused.step, "default": default.step, "foreach": foreach.step},
        args.repeats,
        args.min_time,
    )
    return {
        "what": "one AdamW step() of the GPT's parameters (model.optimizers(): fused=True) vs "
        f"PyTorch's default on this device ({impl}) and foreach=True",
        "model": f"gpt, cpu preset, model.n_embd={args.gpt_width}",
        "parameters": sum(p.numel() for p in model.parameters()),
        "fused_ms": ms(t["fused"]),
        "default_ms": ms(t["default"]),
        "default_is": impl,
        "foreach_ms": ms(t["foreach"]),
        "ratio": ratio(t["default"], t["fused"]),
        "ratio_foreach": ratio(t["foreach"], t["fused"]),
    }


def case_gelu(args) -> dict:
    cfg = gpt_config(args.gpt_width)
    model = build(cfg, DataInfo.text(VOCAB))
    chosen = model.blocks[0].approximate  # the MLP's GELU as the model builds it
    other = "tanh" if chosen == "none" else "none"
    shape = (cfg.train.batch_size, cfg.model.block_size, 4 * cfg.model.n_embd)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(shape, generator=g).requires_grad_()
    grad = torch.randn(shape, generator=g)

    def run(approximate: str):
        def call() -> None:
            F.gelu(x, approximate=approximate).backward(grad)
            x.grad = None

        return call

    t = bench({"chosen": run(chosen), "other": run(other)}, args.repeats, args.min_time)
    label = {"none": "erf", "tanh": "tanh"}
    return {
        "what": "forward + backward of F.gelu, float32, on a training batch's MLP activations",
        "model": f"gpt, cpu preset, model.n_embd={args.gpt_width} (model.activation="
        f"{cfg.model.activation!r})",
        "shape": list(shape),
        "chosen": label[chosen],
        f"{label[chosen]}_ms": ms(t["chosen"]),
        f"{label[other]}_ms": ms(t["other"]),
        "ratio": ratio(t["other"], t["chosen"]),
    }


def _gru_under_autocast(self, idx: torch.Tensor, state=None):
    """RNN.forward_logits without its float32 rule: the GRU under bf16 autocast too."""
    x = self.drop(self.embed(idx))
    h, state = self.rnn(x, state)
    return F.linear(self.drop(h), self.embed.weight, self.bias), state


def case_gru(args) -> dict:
    cfg = RunConfig.new("rnn", "default", ["model.cell=gru"])
    batches = text_batches(cfg)
    fns = {}
    for name, precision, rule in (
        ("genlab", "bf16", True),
        ("bf16", "bf16", False),
        ("fp32", "fp32", True),
    ):
        model = build(cfg, DataInfo.text(VOCAB)).train()
        if not rule:
            model.forward_logits = types.MethodType(_gru_under_autocast, model)
        fns[name] = trainer_step(
            model, model.optimizers(cfg.train), batches, precision, cfg.train.grad_clip
        )
    t = bench(fns, args.repeats, args.min_time)
    return {
        "what": "a training step in bf16 with the GRU kept float32 (genlab) vs the GRU under "
        "bf16 autocast too, and a float32 step",
        "model": f"rnn, default preset, model.cell=gru ({cfg.model.layers} x "
        f"{cfg.model.hidden}), batch {cfg.train.batch_size} x {cfg.model.block_size}",
        **step_figures(t, "bf16_gru_float32_ms", "bf16_gru_bf16_ms"),
    }


def step_figures(t: dict, chosen: str, other: str) -> dict:
    """A training step's three timings (genlab's bf16, the alternative bf16, float32), in ms,
    and the two ratios over genlab's."""
    return {
        chosen: ms(t["genlab"]),
        other: ms(t["bf16"]),
        "fp32_ms": ms(t["fp32"]),
        "ratio": ratio(t["bf16"], t["genlab"]),
        "ratio_fp32": ratio(t["fp32"], t["genlab"]),
    }


def case_unet(args) -> dict:
    cfg = RunConfig.new("diffusion", "default")
    batches, info = digit_batches(cfg)
    fns = {}
    for name, precision in (("genlab", "bf16"), ("bf16", "bf16"), ("fp32", "fp32")):
        model = build(cfg, info).train()
        fns[name] = trainer_step(
            model, model.optimizers(cfg.train), batches, precision, cfg.train.grad_clip
        )
    genlab_bf16 = fns["bf16"]

    def bf16_attention() -> None:  # the U-Net's attention() swapped for plain bf16 SDPA
        with patched(unet_module, "attention", sdpa_bf16):
            genlab_bf16()

    fns["bf16"] = bf16_attention
    t = bench(fns, args.repeats, args.min_time)
    return {
        "what": "a training step in bf16 with attention() (float32 attention) vs plain bf16 "
        "attention in its place, and a float32 step",
        "model": f"diffusion, default preset (width {cfg.model.width}, blocks "
        f"{cfg.model.blocks}), digits {list(info.shape)}, batch {cfg.train.batch_size}",
        **step_figures(t, "bf16_attention_float32_ms", "bf16_attention_bf16_ms"),
    }


def case_generate(args) -> dict:
    cfg = gpt_config(args.gpt_width)
    model = build(cfg, DataInfo.text(VOCAB)).eval()
    prompt_len = 16
    new = cfg.model.block_size - prompt_len  # fills the context once: no cache refill
    prompt = [torch.randint(0, VOCAB, (prompt_len,), generator=torch.Generator().manual_seed(5))]
    prompts = [prompt[0].tolist()]
    outputs = {}

    def with_inference_mode() -> None:
        outputs["inference_mode"] = generate(model, prompts, max_new_tokens=new, temperature=0)

    def with_no_grad() -> None:
        with torch.no_grad():  # generate's body, under no_grad instead of inference_mode
            outputs["no_grad"] = generate.__wrapped__(
                model, prompts, max_new_tokens=new, temperature=0
            )

    t = bench(
        {"inference_mode": with_inference_mode, "no_grad": with_no_grad},
        args.repeats,
        args.min_time,
    )
    return {
        "what": "ms per generated token of generate() (torch.inference_mode) vs its body "
        "under torch.no_grad; greedy, batch 1, KV cache",
        "model": f"gpt, cpu preset, model.n_embd={args.gpt_width}",
        "prompt_tokens": prompt_len,
        "new_tokens": new,
        "identical_tokens": outputs["inference_mode"] == outputs["no_grad"],
        "inference_mode_ms_per_token": ms(t["inference_mode"] / new),
        "no_grad_ms_per_token": ms(t["no_grad"] / new),
        "ratio": ratio(t["no_grad"], t["inference_mode"]),
    }


RUN = {
    "attention_gpt": case_attention_gpt,
    "attention_unet": case_attention_unet,
    "adam": case_adam,
    "gelu": case_gelu,
    "gru": case_gru,
    "unet": case_unet,
    "generate": case_generate,
}


def machine() -> dict:
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            cpu = next((s.split(":", 1)[1].strip() for s in f if s.startswith("model name")), cpu)
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cores_available": len(os.sched_getaffinity(0)),
        "amx": bool(probe()) if probe is not None else None,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu": cpu,
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    cores = len(os.sched_getaffinity(0))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7, help="timed loops per variant (default 7)")
    p.add_argument("--only", default=",".join(CASES), help="comma-separated cases (default all)")
    p.add_argument(
        "--threads", type=int, default=cores, help=f"torch CPU threads (default all: {cores})"
    )
    p.add_argument(
        "--min-time", type=float, default=0.2, help="seconds each timed loop lasts (default 0.2)"
    )
    p.add_argument(
        "--gpt-width", type=int, default=128, help="the GPT's model.n_embd (default 128)"
    )
    args = p.parse_args(argv)
    only = [c for c in args.only.split(",") if c]
    unknown = sorted(set(only) - set(CASES))
    if unknown:
        p.error(f"unknown cases {unknown}; choose from {', '.join(CASES)}")
    if args.repeats < 1 or args.threads < 1 or args.min_time <= 0:
        p.error("--repeats and --threads must be >= 1, --min-time > 0")
    torch.set_num_threads(args.threads)

    t0, load_before = time.perf_counter(), os.getloadavg()
    cases = {}
    for name in CASES:
        if name in only:
            say(name)
            cases[name] = RUN[name](args)
    result = {
        "cases": cases,
        "ratio": "the alternative's ms over the code's choice's: above 1, the choice is faster",
        "timing": f"median of {args.repeats} interleaved loops of >= {args.min_time} s each, "
        f"after {WARMUP} warm-up calls",
        "machine": machine(),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "seconds": round(time.perf_counter() - t0),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
