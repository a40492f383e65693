"""The VAE quality benchmark: test IWAE NLL on dynamically binarized MNIST.

    GENLAB_DATA_MIRROR=../shared/data python benchmarks/vae_mnist.py --out runs/bench-vae-mnist \
        [--steps 20000] [--minutes M] [--until STEP] [--resume] [--n 10000] [--k 1000] \
        [--device auto] [key=value overrides ...]

Trains the VAE with its "mnist" preset on MNIST (a Bernoulli decoder: every training batch
is binarized afresh by Bernoulli sampling with p = intensity, so an image is re-binarized
each time it is seen), then reports the test negative log-likelihood by the importance-
weighted bound with k >= 1000 samples (``model.evaluate``: the test set is binarized once,
with a fixed seed) on all 10,000 test images, or on the first --n of them (a stated subset,
for the CPU), with its standard error, bits/dim, the training time, the steps and the
device. Prints one JSON object and writes it to OUT/benchmark.json.

GPU commands are time-limited: ``--until STEP`` ends a session at STEP with a checkpoint
(the LR schedule still spans --steps) and ``--resume`` continues the run in --out exactly;
the evaluation runs once the run has reached its --steps (or its --minutes).

Data comes through genlab's fetch chain (cache, then $GENLAB_DATA_MIRROR, then the official
URLs); when $GENLAB_DATA_MIRROR is unset and a ``shared/data`` folder lies beside or inside
the checkout, that folder is used as the mirror.

Published test NLL on dynamically binarized MNIST (nats per image, lower is better):

    VAE, Gaussian prior and posterior (as usually reported)     89.9
    pythae benchmark VAE                                         89.78
    IWAE (Burda et al., 2016)                                    86.8
    VampPrior VAE (Tomczak & Welling, 2018)                      85.6

Target: <= 86 nats on the full test set with k >= 1000.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mnist_session import next_command, session_parser, train_session  # noqa: E402

import genlab  # noqa: E402
from genlab.data import TensorData, load_data  # noqa: E402
from genlab.errors import GenlabError  # noqa: E402
from genlab.fsutil import write_json  # noqa: E402

PUBLISHED = {"vae": 89.9, "pythae_vae": 89.78, "iwae": 86.8, "vampprior": 85.6}
TARGET_NATS = 86.0
TEST_IMAGES = 10_000


def evaluate(
    out: Path,
    device: torch.device,
    n: int | None,
    k: int,
    batch_size: int,
    seed: int,
    progress: bool,
) -> dict:
    """IWAE NLL of the run's sampling weights (EMA when kept) on the first n test images."""
    run = genlab.load(out, weights="auto", device=device)
    test = TensorData.from_images(load_data(run.config.data, "test", progress=progress))
    n = min(n or len(test), len(test))
    subset = TensorData(test.x[:n], test.y[:n] if test.y is not None else None)
    done = 0
    t0 = time.perf_counter()

    def tick(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            print(f"\reval: {done}/{n} images (k={k})", end="", file=sys.stderr, flush=True)

    result = run.model.evaluate(subset.batches(batch_size, device), k=k, seed=seed, progress=tick)
    if progress:
        print(file=sys.stderr)
    return {
        **result,
        "n_test_total": len(test),
        "weights": run.weights,
        "eval_seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = session_parser(__doc__, "runs/bench-vae-mnist", "20000")
    p.add_argument("--n", type=int, help="first N test images (default: all 10,000)")
    p.add_argument("--k", type=int, default=1000, help="importance samples (default 1000)")
    p.add_argument(
        "--eval-batch-size",
        type=int,
        help="test images per IWAE batch (default: 16 on the CPU, 64 on a GPU)",
    )
    p.add_argument("--eval-seed", type=int, default=0, help="test binarization and noise seed")
    args = p.parse_args(argv)
    if args.k < 1 or (args.n is not None and args.n < 1):
        p.error("--k and --n must be >= 1")
    try:
        t0 = time.perf_counter()
        session = train_session("vae", args, p)
        out, device, cfg, info = session.out, session.device, session.config, session.info
        record: dict = {
            **session.record("vae_mnist"),
            "session_seconds": round(time.perf_counter() - t0, 1),
        }
        if session.complete:
            bs = args.eval_batch_size or (16 if device.type == "cpu" else 64)
            ev = evaluate(out, device, args.n, args.k, bs, args.eval_seed, not args.quiet)
            full = ev["n"] == TEST_IMAGES and args.k >= 1000
            record = {
                **record,
                "iwae_nll": round(ev["iwae_nll"], 3),
                "iwae_nll_sem": round(ev["iwae_nll_sem"], 3),
                "bits_per_dim": round(ev["bits_per_dim"], 4),
                "unit": "nats per image",
                "k": ev["k"],
                "n": ev["n"],
                "n_test_total": ev["n_test_total"],
                "subset": None if ev["n"] == ev["n_test_total"] else f"first {ev['n']} test images",
                "weights": ev["weights"],
                "eval_seconds": ev["eval_seconds"],
                "eval_seed": args.eval_seed,
                "full_protocol": full,
                "target_nats": TARGET_NATS,
                "meets_target": (ev["iwae_nll"] <= TARGET_NATS) if full else None,
                "published_nats": PUBLISHED,
            }
        else:
            record["next"] = next_command("vae_mnist.py", out)
        record.update(
            {
                "data": f"{cfg.data.name}, dynamically binarized in training; the test split "
                f"binarized once (seed {args.eval_seed})",
                "data_mirror": os.environ.get("GENLAB_DATA_MIRROR"),
                "image_shape": list(info.shape),
                "family": cfg.family,
                "preset": cfg.preset,
                "model": cfg.to_dict()["model"],
                "batch_size": cfg.train.batch_size,
                "lr": cfg.train.lr,
                "ema_decay": cfg.train.ema_decay,
                "run": str(out),
                "genlab": genlab.__version__,
                "torch": torch.__version__,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
        )
    except GenlabError as e:
        print(f"genlab: error: {e}", file=sys.stderr)
        return 2
    write_json(out / "benchmark.json", record)
    print(json.dumps(record, indent=2))
    if "iwae_nll" in record and not math.isfinite(record["iwae_nll"]):
        print("genlab: error: the test NLL is not finite", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
