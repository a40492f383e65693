"""How often genlab's FID bootstrap interval covers the FID expected at its n, on Gaussians.

    python benchmarks/fid_interval_coverage.py [--trials 60] [--n 300] [--dim 16] [--n-boot 50]

Each trial draws a "real" and a "generated" set of n points in d dimensions (standard
normal; the generated one shifted by 0.5 along one axis, so the population FID is 0.25)
and computes ``fid_bootstrap_ci`` at level 0.95, bias-corrected (genlab's default, what
``genlab eval`` reports) and as the plain percentile interval. The target is the FID
expected at this n: the mean FID over all trials' draws (FID is biased upward at finite n).
tests/test_metrics_image.py asserts the same at a smaller scale. Prints one JSON object;
a few seconds on a CPU.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from genlab.metrics.image import fid, fid_bootstrap_ci


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=60)
    p.add_argument("--n", type=int, default=300, help="points in each set (default 300)")
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--n-boot", type=int, default=50, help="bootstrap replicates (default 50)")
    p.add_argument("--level", type=float, default=0.95)
    args = p.parse_args()
    t0 = time.perf_counter()
    rng = np.random.default_rng(1)
    shift = np.zeros(args.dim)
    shift[0] = 0.5
    draws = [
        (rng.standard_normal((args.n, args.dim)), rng.standard_normal((args.n, args.dim)) + shift)
        for _ in range(args.trials)
    ]
    expected = float(np.mean([fid(r, f) for r, f in draws]))

    def coverage(corrected: bool) -> float:
        hits = 0
        for t, (r, f) in enumerate(draws):
            low, high = fid_bootstrap_ci(
                r, f, n_boot=args.n_boot, seed=t, level=args.level, bias_corrected=corrected
            )
            hits += low <= expected <= high
        return hits / args.trials

    record = {
        "benchmark": "fid_interval_coverage",
        "trials": args.trials,
        "n": args.n,
        "dim": args.dim,
        "n_boot": args.n_boot,
        "level": args.level,
        "population_fid": 0.25,
        "expected_fid_at_n": round(expected, 4),
        "coverage_bias_corrected": coverage(True),
        "coverage_plain_percentile": coverage(False),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
