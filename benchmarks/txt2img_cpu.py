"""What a txt2img training step costs on this CPU, for the choices its CPU preset makes:
the U-Net seeing 2x2 pixel blocks as one position (``model.patch=2``) against full
resolution, and cross-attention at every level against the coarse ones only. Prints
seconds per step of each variant and its speed-up over the preset as ratios measured in
one run, variants interleaved so that load on a shared machine hits them alike.

    python benchmarks/txt2img_cpu.py [--repeats 3] [--threads 2] [--batch 64]

A step is the trainer's: the loss of a batch of 32x32 RGB images with caption ids (14
tokens of 32, the emoji captions' typical length), backward, fused AdamW. Weights are
untrained: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from genlab.data import DataInfo
from genlab.models.diffusion import TextDiffusion
from genlab.rundir import RunConfig

VARIANTS = {
    "preset (patch 2)": {},
    "full resolution (patch 1)": {"patch": 1},
    "patch 2, cross-attention at 8 and below": {"cross_attention_res": 8},
}


def build(overrides: dict) -> TextDiffusion:
    cfg = RunConfig.new("txt2img").model  # the default (CPU) preset's model config
    for k, v in overrides.items():
        setattr(cfg, k, v)
    torch.manual_seed(0)
    return TextDiffusion(cfg, DataInfo.images((3, 32, 32), vocab_size=1024)).train()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=3, help="steps timed per repeat")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, 32, 32, generator=g) * 2 - 1
    ids = torch.randint(0, 1000, (args.batch, 32), generator=g)
    ids[:, 14:] = -1
    models = {name: build(kw) for name, kw in VARIANTS.items()}
    opts = {n: torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True) for n, m in models.items()}

    def step(name: str) -> None:
        loss = models[name].loss({"x": x, "text": ids})["loss"]
        loss.backward()
        opts[name].step()
        opts[name].zero_grad(set_to_none=True)

    for name in models:
        step(name)  # warm-up
    times = {name: [] for name in models}
    order = list(models)
    for r in range(args.repeats):
        for name in order[r % len(order) :] + order[: r % len(order)]:
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(name)
            times[name].append((time.perf_counter() - t0) / args.steps)
    best = {name: min(ts) for name, ts in times.items()}
    base = best["preset (patch 2)"]
    out = {}
    for name, t in best.items():
        params = sum(q.numel() for q in models[name].parameters()) / 1e6
        out[name] = {"s_per_step": round(t, 4), "x_preset_time": round(t / base, 2),
                     "params_M": round(params, 2)}
        print(f"{name:<42} {t:7.3f} s/step  {t / base:5.2f}x the preset's time  "
              f"{params:.2f}M parameters")
    print(json.dumps({"threads": args.threads, "batch": args.batch, "variants": out}))


if __name__ == "__main__":
    main()
