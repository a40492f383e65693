"""Attack `genlab serve`: every hostile request the studio must refuse, one line each.

    python benchmarks/serve_attacks.py              # the demo runs (runs/demo)
    python benchmarks/serve_attacks.py runs         # another folder with vae, gan,
                                                    # diffusion and lstm runs in it

The runs are copied into a temporary folder (the real one is never touched) and a secret
is planted where the server must never reach: ``secret.txt`` beside the served folder, a
run outside it linked in, a gallery file linked out (benchmarks/_studio.plant_secret).
Without the four runs at PATH, tiny ones are trained first (seconds, like the tests).

Then: a studio on a free loopback port gets the Host, Origin, content-type, body-size and
method attacks, run ids that are paths, static-file traversal, and negative, huge and
not-a-number settings; a second studio with --token gets requests without it, with a
wrong one, with it in the wrong place; `genlab serve` itself gets bad input (a folder
with no runs, a port in use, an empty or short token). Each prints a line: the attack,
the status (exit status for the CLI), refused yes/no and the server's detail. Every
answer is searched for the secret. The last line is JSON:
{"attacks": N, "refused": N, "secret_leaked": false, "seconds": ...}; the exit status is 0
only when every attack was refused and the secret never leaked.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import _studio as S  # noqa: E402

NEEDED = ("vae", "gan", "diffusion", "lstm")
TOKEN = "t0ken-" + "k" * 20


def tiny_runs(root: Path) -> Path:
    """The conftest's tiny runs (conditional 8x8 digits and a text run), trained here."""
    from conftest import STUDIO_RUNS

    from genlab.training.launch import train

    for name, family, overrides in STUDIO_RUNS:
        print(f"training a tiny {name} run ...", flush=True)
        train(family, root / name, preset="tiny", overrides=overrides, progress=False)
    return root


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "path",
        nargs="?",
        default="runs/demo",
        help="a folder holding vae, gan, diffusion and lstm runs (default: "
        "%(default)s; trained tiny when absent)",
    )
    args = ap.parse_args()
    from conftest import start_studio

    from genlab.rundir import is_run

    t0 = time.monotonic()
    outcomes: list[tuple[str, int, bool, str]] = []  # name, status, refused, detail
    leaks: list[str] = []
    with tempfile.TemporaryDirectory(prefix="genlab-attacks-") as tmp:
        tmp = Path(tmp)
        src = Path(args.path)
        if not all(is_run(src / n) for n in NEEDED):
            print(f"{src}: no {'/'.join(NEEDED)} runs there; training tiny ones", flush=True)
            src = tiny_runs(tmp / "trained")
        served = tmp / "served" / "runs"
        marker = S.plant_secret(served, src)

        def record(o: S.Outcome) -> None:
            if marker in o.reply.text():
                leaks.append(o.attack.name)
            secured = (
                "content-security-policy" in o.reply.headers
                and o.reply.headers.get("x-content-type-options") == "nosniff"
            )
            refused = o.refused and secured and marker not in o.reply.text()
            detail = o.reply.detail[:110] + (f"  <- {o.why}" if o.why else "")
            if not secured:
                detail += "  <- no CSP/nosniff"
            outcomes.append((o.attack.name, o.reply.status, refused, detail))
            print(
                f"{o.attack.name:<58} {o.reply.status:>3}  "
                f"refused={'yes' if refused else 'NO '}  {detail}",
                flush=True,
            )

        studio = start_studio([served])
        try:
            port = int(studio.base.rsplit(":", 1)[1])
            print(f"# a studio at {studio.base} over {served}", flush=True)
            for attack in S.attacks(port):
                record(attack.run(studio.base))
            for path in ("/api/runs", "/v1/models", "/api/runs/vae/gallery"):
                r = S.request(studio.base, "GET", path)
                if marker in r.text():
                    leaks.append(f"GET {path}")
            ids = [d["id"] for d in S.request(studio.base, "GET", "/api/runs").json()["runs"]]
            linked = any(i.startswith("link") for i in ids)
            outcomes.append(
                (
                    "a run linked in from outside is listed",
                    200,
                    not linked,
                    f"served ids: {', '.join(ids)}",
                )
            )
            print(
                f"{outcomes[-1][0]:<58} 200  refused={'yes' if not linked else 'NO '}  "
                f"{outcomes[-1][3]}",
                flush=True,
            )
        finally:
            studio.stop()

        studio = start_studio([served], "--host", "127.0.0.1", "--token", TOKEN)
        try:
            print(f"# a studio with --token at {studio.base}", flush=True)
            for attack, headers in S.token_attacks(TOKEN):
                record(attack.run(studio.base, headers))
        finally:
            studio.stop()

        print("# genlab serve with bad input", flush=True)
        for case in S.CLI_CASES:
            sock = S.busy_socket()
            try:
                argv, words = S.cli_args(case, served, tmp, sock.getsockname()[1])
                p = S.serve_cli(argv)
            finally:
                sock.close()
            why = S.cli_refusal(p, words)
            if marker in p.stdout + p.stderr:
                leaks.append(f"cli {case}")
            line = (p.stderr.strip().splitlines() or [""])[-1][:110]
            outcomes.append((f"cli: {case}", p.returncode, not why, line))
            print(
                f"{'cli: ' + case:<58} {p.returncode:>3}  refused={'NO ' if why else 'yes'}"
                f"  {line}" + (f"  <- {why}" if why else ""),
                flush=True,
            )

    refused = sum(1 for o in outcomes if o[2])
    summary = {
        "attacks": len(outcomes),
        "refused": refused,
        "secret_leaked": bool(leaks),
        "seconds": round(time.monotonic() - t0, 1),
    }
    if leaks:
        summary["leaked_by"] = leaks
    print(json.dumps(summary), flush=True)
    return 0 if refused == len(outcomes) and not leaks else 1


if __name__ == "__main__":
    sys.exit(main())
