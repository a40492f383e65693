"""The diffusion quality benchmark: standard Inception FID on MNIST, 10k samples vs the
test set, with a sampling-steps-vs-FID curve.

    GENLAB_DATA_MIRROR=../shared/data python benchmarks/diffusion_mnist.py \\
        --out runs/bench-diffusion-mnist [--steps 20000] [--minutes M] [--until STEP] \\
        [--resume] [--n 10000] [--curve] [--extractor inception|classifier] \\
        [--inception PATH] [--device auto] [key=value ...]

Trains the class-conditional diffusion model with its "mnist" preset (a 28x28 U-Net,
v-prediction, cosine schedule, min-SNR weighting, EMA), then scores --n samples of the
EMA weights (the default sampler: DPM-Solver++(2M), 20 steps, guidance 2) against all 10,000 test images with
the standard FID Inception network, beside the real-vs-real floor, with the bootstrap
interval, precision/recall and the rest of genlab's sample metrics. ``--curve`` adds the
FID of --n samples at each sampler and step count in CURVE and at each guidance scale
in GUIDANCE (point estimates; the real features are shared). Prints one JSON object and
writes it to OUT/benchmark.json.

GPU commands are time-limited: ``--until STEP`` ends a session at STEP with a
checkpoint and ``--resume`` continues it; the evaluation runs once the run has reached
its --steps (or its --minutes). No standard published FID exists for diffusion models on
MNIST; genlab sets its own target: FID <= 3.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mnist_session import next_command, session_parser, train_session  # noqa: E402

import genlab  # noqa: E402
from genlab.data import load_data  # noqa: E402
from genlab.errors import GenlabError  # noqa: E402
from genlab.evaluate import protocol_key  # noqa: E402
from genlab.fsutil import write_json  # noqa: E402
from genlab.metrics.cache import cached_features  # noqa: E402
from genlab.metrics.image import fid  # noqa: E402
from genlab.metrics.protocol import evaluate_samples, generate, get_extractor  # noqa: E402
from genlab.outputs.images import save_images  # noqa: E402

TARGET_FID = 3.0
CURVE = [
    ("ddim", 10),
    ("ddim", 20),
    ("ddim", 50),
    ("ddim", 100),
    ("dpm++2m", 10),
    ("ddpm", 250),
]
GUIDANCE = [1.0, 1.5, 3.0]


def curve(run, n: int, extractor: str, inception, seed: int, progress: bool) -> list[dict]:
    """FID at each CURVE sampler/steps and GUIDANCE scale (default sampler) for n samples."""
    splits = tuple(load_data(run.config.data, s) for s in ("train", "test"))
    ex = get_extractor(extractor, run.config.data, splits, inception=inception, progress=progress)
    f_real = cached_features(ex, splits[1].x)  # uint8 test images, cached by content
    steps = run.config.model.timesteps
    points = [({"sampler": s, "sampling_steps": k}, f"{s} {k}") for s, k in CURVE if k <= steps]
    points += [({"guidance": g}, f"dpm++2m 20, guidance {g}") for g in GUIDANCE]
    out = []
    for controls, name in points:
        t0 = time.perf_counter()
        fake, _ = generate(run, n, seed=seed, controls=controls, progress=progress)
        sample_s = time.perf_counter() - t0
        value = fid(f_real, ex.features(fake))
        out.append(
            {
                "setting": name,
                **controls,
                "fid": round(value, 3),
                "sample_seconds": round(sample_s, 1),
            }
        )
        print(f"curve: {name}: FID {value:.3f} ({sample_s:.0f} s sampling)", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    p = session_parser(__doc__, "runs/bench-diffusion-mnist", "20000")
    p.add_argument("--n", type=int, default=10_000, help="generated samples (default 10000)")
    p.add_argument("--curve", action="store_true", help="also the steps/guidance FID curve")
    p.add_argument("--extractor", default="inception", choices=["inception", "classifier"])
    p.add_argument("--inception", help="the TorchScript file (default: the fetch chain)")
    args = p.parse_args(argv)
    try:
        session = train_session("diffusion", args, p, new_run=("model.conditional=true",))
        out, device, cfg, info = session.out, session.device, session.config, session.info
        record: dict = session.record("diffusion_mnist")
        if session.complete:
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
            save_images(
                run.sample(100, seed=0, label=list(range(10)) * 10), out / "grid.png", nrow=10
            )
            full = args.n >= 10_000 and args.extractor == "inception"
            record.update(
                fid=round(ev["fid"], 3),
                fid_ci=[round(v, 3) for v in ev["fid_ci"]],
                floor_fid=round(ev["floor"]["fid"], 3),
                precision=round(ev["precision"], 4),
                recall=round(ev["recall"], 4),
                class_consistency=ev.get("class_consistency"),
                copy_share=ev["copy_share"],
                sampling=ev["protocol"]["controls"],
                n=args.n,
                extractor=ev["protocol"]["extractor"],
                eval_seconds=round(time.perf_counter() - t0, 1),
                full_protocol=full,
                target_fid=TARGET_FID,
                meets_target=(ev["fid"] <= TARGET_FID) if full else None,
            )
            if args.curve:  # the headline first, in case a time limit cuts the curve
                write_json(out / "benchmark.json", record)
                record["curve"] = curve(
                    run, args.n, args.extractor, args.inception, 0, not args.quiet
                )
        else:
            record["next"] = next_command("diffusion_mnist.py", out)
        record.update(
            data=cfg.data.name,
            image_shape=list(info.shape),
            preset=cfg.preset,
            model=cfg.to_dict()["model"],
            batch_size=cfg.train.batch_size,
            lr=cfg.train.lr,
            precision=cfg.train.precision,
            compile=cfg.train.compile,
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
