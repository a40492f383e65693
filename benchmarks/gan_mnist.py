"""The GAN quality benchmark: standard Inception FID on MNIST, 10k samples vs the test set.

    GENLAB_DATA_MIRROR=../shared/data python benchmarks/gan_mnist.py --out runs/bench-gan-mnist \
        [--steps 30000] [--minutes M] [--until STEP] [--resume] [--n 10000] \
        [--extractor inception|classifier] [--inception PATH] [--device auto] [key=value ...]

Trains the GAN with its "mnist" preset (non-saturating loss, DCGAN-style networks, EMA
generator), then scores --n samples of the EMA generator against all 10,000 test images
with the standard FID Inception network (p/128-1, bilinear resize to 299, gray to 3
channels), beside the real-vs-real floor (n training images scored the same way), with
the bootstrap interval, precision/recall and the rest of genlab's sample metrics. Prints
one JSON object and writes it to OUT/benchmark.json.

GPU commands are time-limited: ``--until STEP`` ends a session at STEP with a checkpoint
and ``--resume`` continues it; the evaluation runs once the run has reached its --steps.
On a 2-core CPU the Inception network runs at ~4 images/s, so the test split's features
alone take ~45 minutes (cached afterwards); ``--extractor classifier`` gives a CPU figure
that is not comparable with papers.

Published FID on MNIST, common architecture (Lucic et al. 2018): non-saturating GAN 6.8,
WGAN 6.7. Target: <= 5.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vae_mnist import default_mirror, device_description  # noqa: E402

import genlab  # noqa: E402
from genlab.errors import GenlabError  # noqa: E402
from genlab.metrics.protocol import evaluate_samples, protocol_key  # noqa: E402
from genlab.run import read_config  # noqa: E402
from genlab.training.checkpoint import write_json  # noqa: E402
from genlab.training.distributed import pick_device  # noqa: E402

PUBLISHED = {"ns_gan": 6.8, "wgan": 6.7}
TARGET_FID = 5.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench-gan-mnist", help="run directory")
    p.add_argument("--steps", type=int, help="optimizer steps (default: the preset's 30000)")
    p.add_argument("--minutes", type=float, help="training time budget (train.minutes)")
    p.add_argument("--until", type=int, metavar="STEP", help="end this session at STEP")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--n", type=int, default=10_000, help="generated samples (default 10000)")
    p.add_argument("--extractor", default="inception", choices=["inception", "classifier"])
    p.add_argument("--inception", help="the TorchScript file (default: the fetch chain)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("overrides", nargs="*", help="extra key=value config overrides (new run)")
    args = p.parse_args(argv)

    mirror = default_mirror()
    if mirror:
        os.environ["GENLAB_DATA_MIRROR"] = mirror
    out = Path(args.out)
    try:
        device = pick_device(args.device)
        overrides = [f"train.device={device}"]
        if args.steps is not None:
            overrides.append(f"train.steps={args.steps}")
        if args.minutes is not None:
            overrides.append(f"train.minutes={args.minutes}")
        if not args.resume:
            overrides = ["data.name=mnist", *overrides, *args.overrides]
        elif args.overrides:
            p.error("--resume continues the run as it was: give no key=value overrides")
        summary = genlab.train(
            "gan",
            out,
            preset="mnist",
            overrides=overrides,
            resume=args.resume,
            progress=not args.quiet,
            until=args.until,
        )
        cfg, info = read_config(out)
        complete = summary["step"] >= cfg.train.steps or summary["stopped_by_time"]
        record: dict = {
            "benchmark": "gan_mnist",
            "complete": bool(complete),
            "steps": summary["step"],
            "steps_target": cfg.train.steps,
            "train_seconds": round(summary["elapsed_s"], 1),
            "device": device_description(device),
        }
        if complete:
            run = genlab.load(out, device=device)
            t0 = time.perf_counter()
            ev = evaluate_samples(
                run,
                n=args.n,
                extractor=args.extractor,
                inception=args.inception,
                progress=not args.quiet,
            )
            (out / "eval").mkdir(exist_ok=True)
            write_json(out / "eval" / f"{protocol_key(ev)}.json", ev)
            full = args.n >= 10_000 and args.extractor == "inception"
            record.update(
                fid=round(ev["fid"], 3),
                fid_ci=[round(v, 3) for v in ev["fid_ci"]],
                floor_fid=round(ev["floor"]["fid"], 3),
                precision=round(ev["precision"], 4),
                recall=round(ev["recall"], 4),
                copy_share=ev["copy_share"],
                n=args.n,
                extractor=ev["protocol"]["extractor"],
                eval_seconds=round(time.perf_counter() - t0, 1),
                full_protocol=full,
                target_fid=TARGET_FID,
                meets_target=(ev["fid"] <= TARGET_FID) if full else None,
                published_fid=PUBLISHED,
            )
        else:
            record["next"] = f"python benchmarks/gan_mnist.py --out {out} --resume [--until STEP]"
        record.update(
            data=cfg.data.name,
            image_shape=list(info.shape),
            preset=cfg.preset,
            model=cfg.to_dict()["model"],
            batch_size=cfg.train.batch_size,
            lr=cfg.train.lr,
            run=str(out),
            genlab=genlab.__version__,
            torch=torch.__version__,
            time=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
    except GenlabError as e:
        print(f"genlab: error: {e}", file=sys.stderr)
        return 2
    write_json(out / "benchmark.json", record)
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
