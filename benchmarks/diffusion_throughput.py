"""Training images/s of genlab's diffusion model against diffusers' UNet2DModel +
DDPMScheduler, built to the same architecture, measured in one process.

    pip install diffusers        # for this benchmark only; genlab does not depend on it
    python benchmarks/diffusion_throughput.py [--size 32] [--channels 3] [--width 64]
        [--batch 32] [--device auto] [--precision fp32|bf16] [--compile] [--rounds 5]

Both sides run the same training step on the same batch: draw t and the noise, make
x_t, predict v with the U-Net (class-conditional), mean-squared error, backward, AdamW.
The diffusers U-Net is configured to genlab's: the same channels per level, residual
blocks per level, attention at the same resolutions with the same head width, scale-
shift timestep conditioning, a class embedding. The JSON reports both parameter counts
and both forward FLOPs per image (torch's FLOP counter), so the match can be checked;
data loading is left out of both. Rounds alternate the order and the medians of
images/s are compared. Target: ratio >= 1.0 on the CPU, >= 1.5 on a GPU with
--precision bf16 --compile.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import genlab
from genlab.models.base import DataInfo
from genlab.models.diffusion import Diffusion, DiffusionConfig
from genlab.models.layers import resolution_levels
from genlab.training.distributed import pick_device


def build_genlab(args, classes: int) -> torch.nn.Module:
    cfg = DiffusionConfig(
        width=args.width,
        max_width=args.max_width,
        blocks=args.blocks,
        attention_res=args.attention_res,
        conditional=True,
        prediction="v",
    )
    info = DataInfo.images((args.channels, args.size, args.size), [str(i) for i in range(classes)])
    return Diffusion(cfg, info)


def build_diffusers(args, classes: int):
    from diffusers import DDPMScheduler, UNet2DModel

    levels = resolution_levels(args.size)
    widths = [min(args.width * 2**i, args.max_width) for i in range(len(levels))]
    attn = [r <= args.attention_res for r in levels]
    net = UNet2DModel(
        sample_size=args.size,
        in_channels=args.channels,
        out_channels=args.channels,
        block_out_channels=tuple(widths),
        layers_per_block=args.blocks,
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn),
        up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)),
        attention_head_dim=32,
        norm_num_groups=min(32, args.width),
        resnet_time_scale_shift="scale_shift",
        num_class_embeds=classes + 1,
    )
    sched = DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction"
    )
    return net, sched


def genlab_step(model, x, y, opt, autocast):
    with autocast():
        loss = model.loss({"x": x, "y": y})["loss"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def diffusers_step(net, sched, x, y, opt, autocast):
    noise = torch.randn_like(x)
    t = torch.randint(0, 1000, (len(x),), device=x.device)
    noisy = sched.add_noise(x, noise, t)
    target = sched.get_velocity(x, noise, t)
    with autocast():
        out = net(noisy, t, class_labels=y).sample
    loss = F.mse_loss(out.float(), target.float())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def forward_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=32, help="image size (a power of two)")
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--width", type=int, default=64, help="U-Net channels at full size")
    p.add_argument("--max-width", type=int, default=256)
    p.add_argument("--blocks", type=int, default=2, help="residual blocks per level")
    p.add_argument("--attention-res", type=int, default=16)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10, help="timed training steps per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--compile", action="store_true", help="torch.compile both U-Nets")
    p.add_argument("--threads", type=int, help="torch threads on the CPU")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        import diffusers
    except ImportError:
        print(
            "genlab: error: this benchmark needs diffusers: pip install diffusers", file=sys.stderr
        )
        return 2
    device = pick_device(args.device)
    torch.manual_seed(0)
    ours = build_genlab(args, args.classes).to(device)
    theirs, sched = build_diffusers(args, args.classes)
    theirs = theirs.to(device)
    x = torch.rand(args.batch, args.channels, args.size, args.size, device=device) * 2 - 1
    y = torch.randint(0, args.classes, (args.batch,), device=device)
    t = torch.randint(0, 1000, (args.batch,), device=device)

    params = {
        "genlab": sum(q.numel() for q in ours.parameters()),
        "diffusers": sum(q.numel() for q in theirs.parameters()),
    }
    with torch.no_grad():
        flops = {
            "genlab": forward_flops(lambda: ours.net(x[:1], t[:1], y[:1])),
            "diffusers": forward_flops(lambda: theirs(x[:1], t[:1], class_labels=y[:1])),
        }
    if args.compile:
        ours.net = torch.compile(ours.net)
        theirs = torch.compile(theirs)

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    opt_a = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    opt_b = torch.optim.AdamW(theirs.parameters(), lr=1e-4)
    steps = {
        "genlab": lambda: genlab_step(ours, x, y, opt_a, autocast),
        "diffusers": lambda: diffusers_step(theirs, sched, x, y, opt_b, autocast),
    }
    ours.train()
    theirs.train()
    warm = {}
    for name, step in steps.items():  # warm-up (and compilation), untimed
        t0 = time.perf_counter()
        for _ in range(3):
            step()
        sync(device)
        warm[name] = round(time.perf_counter() - t0, 1)
    rates: dict[str, list[float]] = {"genlab": [], "diffusers": []}
    for r in range(args.rounds):
        order = list(steps) if r % 2 == 0 else list(reversed(steps))
        for name in order:
            sync(device)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                steps[name]()
            sync(device)
            rates[name].append(args.steps * args.batch / (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in rates.items()}
    record = {
        "benchmark": "diffusion_throughput",
        "ratio": round(med["genlab"] / med["diffusers"], 3),
        "images_per_s": {k: round(v, 1) for k, v in med.items()},
        "rounds": {k: [round(v, 1) for v in vs] for k, vs in rates.items()},
        "params": params,
        "forward_gflops_per_image": {k: round(v / 1e9, 4) for k, v in flops.items()},
        "warmup_s": warm,
        "image": [args.channels, args.size, args.size],
        "batch": args.batch,
        "width": args.width,
        "blocks": args.blocks,
        "attention_res": args.attention_res,
        "precision": args.precision,
        "compile": args.compile,
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        "genlab": genlab.__version__,
        "diffusers": diffusers.__version__,
        "torch": torch.__version__,
        "target": ">= 1.0 on the CPU, >= 1.5 on a GPU with bf16 and compile",
    }
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
