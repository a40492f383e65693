"""`genlab compare`: one self-contained HTML report comparing runs."""

from __future__ import annotations

import sys

from genlab.cli.common import _add_extractor, check_counts


def add_parser(sub) -> None:
    c = sub.add_parser(
        "compare",
        help="one self-contained HTML report comparing runs",
        description="Write one HTML page, readable offline: a leaderboard under one protocol "
        "with the real-vs-real floor, sample grids, training curves, and each family's main "
        "knobs swept (VAE: temperature; GAN: truncation; diffusion: sampling steps and "
        "guidance; text: temperature and top-p) with 95% intervals, and, for runs judged in "
        "`genlab serve`, the human judgements (HYPE error rate, Bradley-Terry ranking). "
        "Every figure names the training step of the weights it measured. Sweep points are "
        "cached in each run's eval/ folder by the sha256 of the weights, so a second compare "
        "is fast and a run trained further is measured again.",
    )
    c.add_argument("runs", nargs="+", help="run directories")
    c.add_argument("--out", default="report.html", help="the page (default: %(default)s)")
    c.add_argument(
        "--n", type=int, default=500, help="samples per sweep point (default: %(default)s)"
    )
    c.add_argument("--seed", type=int, default=0)
    _add_extractor(c)
    c.set_defaults(func=cmd_compare)


def cmd_compare(args, overrides: list[str]) -> int:
    from genlab.report.html import build_report

    check_counts(args, n=(10, 1_000_000), seed=(0, 2**63 - 1))
    path = build_report(
        args.runs,
        args.out,
        n=args.n,
        seed=args.seed,
        extractor=args.extractor,
        inception=args.inception,
    )
    print(f"genlab: wrote {path}", file=sys.stderr)
    return 0
