"""genlab's command line: train | sample | eval | info | data | compare | serve | demo.

One module per command, each adding its own sub-parser (``add_parser(sub)``) and holding
its ``cmd_*`` function(s); ``common.py`` holds what several commands share. Heavy modules
(torch, genlab.run, ...) are imported inside the commands, so ``genlab --help`` stays fast.

Bad input prints one line (``genlab: error: ...``) and exits with status 2;
a bug exits with status 1 and its traceback.
"""

from __future__ import annotations

import argparse
import sys

from genlab.cli import compare, data, demo, export, info, sample, serve, train
from genlab.cli import eval as evaluate
from genlab.errors import GenlabError

# in the order of --help
COMMANDS = (train, sample, evaluate, info, data, compare, export, serve, demo)


def build_parser() -> argparse.ArgumentParser:
    from genlab.version import __version__

    p = argparse.ArgumentParser(
        prog="genlab",
        description="Train, sample and measure generative models.",
        epilog="Start with `genlab demo`; every command has --help.",
    )
    p.add_argument("--version", action="version", version=f"genlab {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def _split_overrides(extra: list[str], parser: argparse.ArgumentParser) -> list[str]:
    bad = [a for a in extra if a.startswith("-") or "=" not in a]
    if bad:
        parser.error(f"unrecognized argument {bad[0]!r} (config overrides look like key=value)")
    return extra


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    overrides = _split_overrides(extra, parser) if args.command == "train" else extra
    if args.command != "train" and extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args, overrides)
    except GenlabError as e:
        print(f"genlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        after = {
            "train": " (the latest checkpoint is intact; --resume continues)",
            "sample": " (a file --out is written whole or not at all; a folder/ keeps what came)",
        }
        print(f"genlab: interrupted{after.get(args.command, '')}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
