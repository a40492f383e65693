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

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mnist_session import next_command, session_parser, train_session  # noqa: E402

import genlab  # noqa: E402
from genlab.errors import GenlabError  # noqa: E402
from genlab.evaluate import protocol_key  # noqa: E402
from genlab.fsutil import write_json  # noqa: E402
from genlab.metrics.protocol import evaluate_samples  # noqa: E402

PUBLISHED = {"ns_gan": 6.8, "wgan": 6.7}
TARGET_FID = 5.0


def main(argv: list[str] | None = None) -> int:
    p = session_parser(__doc__, "runs/bench-gan-mnist", "30000")
    p.add_argument("--n", type=int, default=10_000, help="generated samples (default 10000)")
    p.add_argument("--extractor", default="inception", choices=["inception", "classifier"])
    p.add_argument("--inception", help="the TorchScript file (default: the fetch chain)")
    args = p.parse_args(argv)
    try:
        session = train_session("gan", args, p)
        out, device, cfg, info = session.out, session.device, session.config, session.info
        record: dict = session.record("gan_mnist")
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
            record["next"] = next_command("gan_mnist.py", out)
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
