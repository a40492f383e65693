"""`genlab data list|fetch`: show the named data sets, or download and verify one."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    d = sub.add_parser(
        "data",
        help="list or fetch named data sets",
        description="Named sets resolve in order: embedded, cache ($GENLAB_CACHE, "
        "default ~/.cache/genlab), mirror ($GENLAB_DATA_MIRROR: folder or http(s) "
        "URL), official URL; every file is checked by sha256.",
    )
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="list|fetch")
    dl = dsub.add_parser("list", help="show named sets, licences and where each is found")
    dl.set_defaults(func=cmd_data_list)
    df = dsub.add_parser("fetch", help="download and verify a named set into the cache")
    df.add_argument("name")
    df.set_defaults(func=cmd_data_fetch)


def cmd_data_list(args, overrides: list[str]) -> int:
    from genlab.data.fetch import list_sets

    print(f"{'name':<17}{'kind':<8}{'found':<10}description")
    for r in list_sets():
        where = f" ({r['path']})" if r.get("path") else ""
        print(
            f"{r['name']:<17}{r['kind']:<8}{r['found']:<10}{r['description']}\n"
            f"{'':<35}licence: {r['licence']}{where}"
        )
    return 0


def cmd_data_fetch(args, overrides: list[str]) -> int:
    from genlab.data.archive_sets import verify_cached
    from genlab.data.catalogue import named_set
    from genlab.data.fetch import fetch

    path = fetch(args.name)
    s = named_set(args.name)
    if s.archives:  # checked when fetched; hashed again here, so that this line is true now
        n = verify_cached(s, path)
        print(
            f"genlab: {args.name}: all {n:,} files verified (sha256, against genlab's manifests)",
            file=sys.stderr,
        )
    if args.name == "emoji":
        _emoji_summary(path)
    print(f"genlab: {args.name} is ready in {path}", file=sys.stderr)
    return 0


def _emoji_summary(path) -> None:
    """The emoji set's images and split counts, per style (a table on stdout)."""
    from genlab.data.emoji import split_counts

    counts = split_counts(path)
    total = {v: sum(row[v] for row in counts.values()) for v in ("google", "twitter", "all")}
    notes = {
        "train": "",
        "val": "  a fixed slice of the training images",
        "test_a": "  twitter drawings held out (their google drawings are in train)",
        "test_b": "  the 1F3FE (medium-dark) variations of some emoji, both styles",
    }
    print(
        f"emoji: {total['all']:,} images, every one verified by sha256 ({total['google']:,} "
        f"google, {total['twitter']:,} twitter)"
    )
    print(f"{'split':<8}{'google':>8}{'twitter':>9}{'all':>8}")
    for name, row in counts.items():
        label = name.replace("_", " ")
        print(f"{label:<8}{row['google']:>8,}{row['twitter']:>9,}{row['all']:>8,}{notes[name]}")
