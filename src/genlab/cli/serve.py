"""`genlab serve`: the studio in the browser, over the runs under the given folders."""

from __future__ import annotations

import argparse
import errno
import socket
from pathlib import Path

from genlab.errors import GenlabError


def add_parser(sub) -> None:
    s = sub.add_parser(
        "serve",
        help="the live studio in the browser: generate, explore, compare, judge",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve every run under the given folders (runs still training too: "
        "their curves update live) in a studio page: generate with every control the "
        "family declares and watch it happen (text token by token, diffusion step by "
        "step), see each sample beside its nearest training example with a copy verdict, "
        "interpolate latents, compare two runs on the same seeds, and judge: a blind "
        "real-or-generated test (HYPE) and pairwise preferences (Bradley-Terry), stored "
        "in each run's judgements.jsonl and shown by `genlab compare`. The same API is "
        "documented at /docs; text runs also answer OpenAI's /v1/completions, and runs that "
        "draw what a prompt says (txt2img) its /v1/images/generations.\n\n"
        "Security: binds 127.0.0.1 by default. Any other --host needs a token (one is "
        "generated and printed in the URL when --token is not given); requests from "
        "other sites, other Host names and without the token are refused.",
        epilog="examples:\n  genlab serve runs/demo\n  genlab serve runs --port 8080\n"
        "  genlab serve runs --host 0.0.0.0            # on the network, with a token\n"
        "  python -c \"import openai; c = openai.OpenAI(base_url='http://127.0.0.1:8000/v1',"
        " api_key='-'); print(c.completions.create(model='lstm', prompt='Once', "
        "max_tokens=40).choices[0].text)\"",
    )
    s.add_argument("paths", nargs="*", default=["runs"], metavar="PATH",
                   help="folders holding runs, or runs themselves (default: runs)")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: %(default)s, this machine only)")
    s.add_argument("--port", type=int, default=8000,
                   help="port (default: %(default)s; 0 picks a free one)")
    s.add_argument("--token", help="the access token (at least 16 characters); required "
                   "off loopback, generated when not given")
    s.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="another Host name the server may be reached by (repeatable)")
    s.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    s.add_argument("--workers", type=int, default=1,
                   help="jobs run at once (default: %(default)s; on a GPU, 2-4)")
    s.add_argument("--queue", type=int, default=32,
                   help="jobs that may wait; more get 429 with Retry-After (default: %(default)s)")
    s.add_argument("--no-browser", action="store_true", help="accepted for scripts; "
                   "genlab never opens a browser itself")
    s.set_defaults(func=cmd_serve)


def cmd_serve(args, overrides: list[str]) -> int:
    import secrets

    from genlab.cli.common import _device, check_counts
    from genlab.serve.runs import find_runs
    from genlab.serve.security import MIN_TOKEN, allowed_hosts, is_loopback

    check_counts(args, port=(0, 65535), workers=(1, 64), queue=(1, 10_000))
    folders = []
    for p in args.paths:
        path = Path(p)
        if not path.exists():
            raise GenlabError(f"{p} does not exist; give a folder of runs (e.g. runs/demo)")
        if not path.is_dir():
            raise GenlabError(f"{p} is not a folder; give a folder of runs (e.g. runs/demo)")
        folders.append(path)
    runs = find_runs(folders)
    if not runs:
        raise GenlabError(
            f"no genlab runs under {', '.join(args.paths)}; train one (genlab train vae "
            "--out runs/vae) or run `genlab demo`, then serve its folder"
        )
    token = args.token
    if token is not None and len(token) < MIN_TOKEN:
        raise GenlabError(
            f"--token must be at least {MIN_TOKEN} characters (it guards the server); "
            "leave it out to have one generated"
        )
    if token is None and not is_loopback(args.host):
        token = secrets.token_urlsafe(24)
    sock = _bind(args.host, args.port)
    port = sock.getsockname()[1]

    import uvicorn

    from genlab.serve.app import create_app
    from genlab.serve.security import Guard

    device = str(_device(args.device))
    app = create_app(folders, workers=args.workers, max_pending=args.queue, device=device)
    hosts = allowed_hosts(args.host, args.allow_host)
    guarded = Guard(app, hosts=hosts, token=token, port=port)
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"genlab serve: {len(runs)} run(s) ({', '.join(list(runs)[:6])}"
          f"{', ...' if len(runs) > 6 else ''}) at {url}", flush=True)
    print(f"genlab serve: API docs at http://{shown}:{port}/docs; Ctrl-C stops", flush=True)
    config = uvicorn.Config(guarded, log_level="warning", timeout_keep_alive=5,
                            server_header=False, date_header=False)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        app.state.jobs.close()
    return 0


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, or one clear line on why there cannot be one."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise GenlabError(f"--host {host}: not an address of this machine") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise GenlabError(
                f"port {port} is in use (another genlab serve?); pick another with --port "
                "(0: any free one)"
            ) from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise GenlabError(f"--host {host}: not an address of this machine") from None
        if e.errno == errno.EACCES:
            raise GenlabError(f"port {port} needs privileges; use a port above 1023") from None
        raise GenlabError(f"cannot listen on {host}:{port} ({e.strerror})") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


