"""Helpers shared by benchmarks/serve_attacks.py and tests/test_serve_*.py: a plain-stdlib
HTTP client for `genlab serve`, a Server-Sent Events reader, the planted secret, and the
table of attacks the studio must refuse.

    reply = request(base, "POST", "/api/generate", {"run": "vae", "n": 4})
    reply.status, reply.json(), reply.headers["content-security-policy"]
    with EventStream(base, reply.json()["events"]) as stream:
        for kind, data in stream: ...
    marker = plant_secret(tmp / "runs", studio_runs)   # tmp/secret.txt and a linked run
    for attack in attacks(port, "secret.txt"): outcome = attack.run(base)

No httpx, no requests: http.client sends exactly the bytes asked for (a Host header, a
path with "..", a chunked body), which is the point of an attack.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

MIB = 1024 * 1024
_NO_BODY = object()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes
    raw_headers: list[tuple[str, str]] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def detail(self) -> str:
        try:
            d = self.json()
        except ValueError:
            return self.body[:200].decode("utf-8", "replace")
        return str(d.get("detail", "")) if isinstance(d, dict) else ""

    def text(self) -> str:
        """Everything the client received (headers and body), for leak checks."""
        head = "\n".join(f"{k}: {v}" for k, v in self.raw_headers)
        return head + "\n\n" + self.body.decode("utf-8", "replace")


def _conn(base: str, timeout: float) -> http.client.HTTPConnection:
    u = urlsplit(base)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)


def request(
    base: str,
    method: str,
    path: str,
    body: Any = _NO_BODY,
    *,
    raw: bytes | Callable[[], Iterator[bytes]] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Reply:
    """One request, exactly as given. ``body``: JSON (Content-Type application/json unless
    ``headers`` says otherwise); ``raw``: bytes, or a function giving chunks (sent with
    Transfer-Encoding: chunked and no Content-Length)."""
    h: dict[str, str] = {}
    data: Any = None
    if body is not _NO_BODY:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    elif raw is not None:
        data = raw() if callable(raw) else raw
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}
    c = _conn(base, timeout)
    try:
        try:
            c.request(method, path, body=data, headers=h)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (413) before reading all of a large body
        r = c.getresponse()
        out = r.read()
        pairs = [(k.lower(), v) for k, v in r.getheaders()]
        return Reply(r.status, dict(pairs), out, pairs)
    finally:
        c.close()


class EventStream:
    """GET a Server-Sent Events stream; iterate (event, data) pairs; close to hang up."""

    def __init__(
        self, base: str, path: str, headers: dict[str, str] | None = None, timeout: float = 60.0
    ):
        self.conn = _conn(base, timeout)
        self.conn.request("GET", path, headers=headers or {})
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = {k.lower(): v for k, v in self.response.getheaders()}
        self.seen: list[str] = []  # every raw line, for leak checks

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        kind, data = "message", []
        while True:
            line = self.response.readline()
            if not line:
                return
            text = line.decode("utf-8").rstrip("\r\n")
            self.seen.append(text)
            if text == "":
                if data:
                    payload = "\n".join(data)
                    try:
                        value = json.loads(payload)
                    except ValueError:
                        value = payload
                    yield kind, value
                kind, data = "message", []
            elif text.startswith("event:"):
                kind = text[6:].strip()
            elif text.startswith("data:"):
                data.append(text[5:].lstrip())

    def close(self) -> None:
        try:
            self.response.close()
        finally:
            self.conn.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def events(base: str, path: str, headers: dict[str, str] | None = None) -> list[tuple[str, Any]]:
    """Every event of a stream, to its end."""
    with EventStream(base, path, headers) as s:
        return list(s)


def copy_runs(src: Path, dst: Path) -> Path:
    """A private copy of a folder of runs (without what a studio wrote into it)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("judgements.jsonl", "studio"))
    return dst


def plant_secret(served: Path, runs: Path) -> str:
    """Copy ``runs`` to ``served`` and plant a random marker where a server must never
    reach: ``served/../secret.txt`` (beside the served folder), a run outside the served
    folder linked into it (``served/linked`` and ``served/linkdir/vae``), and a gallery
    file linked out of a served run. Returns the marker."""
    marker = "SECRET-" + secrets.token_hex(16)
    copy_runs(runs, served)
    outside = served.parent / "outside"
    copy_runs(runs / "vae", outside / "vae")
    (served.parent / "secret.txt").write_text(marker + "\n")
    (served.parent / "secret.json").write_text(json.dumps({"text": marker, "prompt": marker}))
    (outside / "vae" / "secret.txt").write_text(marker + "\n")
    (served / "linked").symlink_to(outside / "vae", target_is_directory=True)
    (served / "linkdir").symlink_to(outside, target_is_directory=True)
    gallery = served / "vae" / "studio"
    gallery.mkdir(exist_ok=True)
    (gallery / "099999.json").symlink_to(served.parent / "secret.json")
    return marker


# -- the attacks --------------------------------------------------------------------------
@dataclass
class Attack:
    """One hostile request and what refusing it looks like: a status in ``expect`` and,
    where given, a detail naming ``field``."""

    name: str
    method: str
    path: str
    body: Any = _NO_BODY
    raw: bytes | Callable[[], Iterator[bytes]] | None = None
    headers: dict[str, str] | None = None
    expect: tuple[int, ...] = (400,)
    field: str | None = None

    def run(self, base: str, headers: dict[str, str] | None = None) -> Outcome:
        h = {**(headers or {}), **(self.headers or {})}
        reply = request(base, self.method, self.path, self.body, raw=self.raw, headers=h)
        refused = reply.status in self.expect
        detail = reply.detail
        why = ""
        if not refused:
            why = f"status {reply.status}, expected {'/'.join(map(str, self.expect))}"
        elif not detail:
            refused, why = False, "no detail"
        elif "\n" in detail:
            refused, why = False, "detail is not one line"
        elif self.field is not None and self.field.lower() not in detail.lower():
            refused, why = False, f"detail does not name {self.field!r}"
        return Outcome(self, reply, refused, why)


@dataclass
class Outcome:
    attack: Attack
    reply: Reply
    refused: bool
    why: str  # what was wrong when not refused

    def line(self) -> str:
        return (
            f"{self.attack.name:<58} {self.reply.status:>3}  "
            f"refused={'yes' if self.refused else 'NO '}  {self.reply.detail[:110]}"
            + (f"  <- {self.why}" if self.why else "")
        )


TRAVERSAL = (  # run ids a client might send instead of one GET /api/runs listed
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e/%2e%2e/secret.txt",
    "../secret.txt",
    "/etc/passwd",
    "vae/../../secret.txt",
    "vae/../vae",
    "~",
    "~/secret.txt",
    "..",
    "linked",
    "linkdir~vae",
    "C:\\Windows\\win.ini",
)


def _path_id(x: str) -> str:
    return quote(x, safe="/%~")


def traversal_attacks() -> list[Attack]:
    out = []
    for x in TRAVERSAL:
        p = _path_id(x)
        bad = (400, 404)
        out += [
            Attack(f"GET /api/runs/{x}", "GET", f"/api/runs/{p}", expect=bad),
            Attack(f"GET /api/runs/{x}/gallery", "GET", f"/api/runs/{p}/gallery", expect=bad),
            Attack(
                f"GET /api/judgements?runs={x}",
                "GET",
                f"/api/judgements?runs={quote(x, safe='')}",
                expect=bad,
            ),
            Attack(f"generate run={x}", "POST", "/api/generate", {"run": x, "n": 1}, expect=bad),
            Attack(
                f"trial run={x}",
                "POST",
                "/api/trials",
                {"kind": "real_or_generated", "run": x},
                expect=bad,
            ),
            Attack(
                f"pairwise runs=[vae, {x}]",
                "POST",
                "/api/trials",
                {"kind": "pairwise", "runs": ["vae", x]},
                expect=bad,
            ),
            Attack(
                f"completions model={x}",
                "POST",
                "/v1/completions",
                {"model": x, "prompt": "a", "max_tokens": 2},
                expect=bad,
            ),
        ]
    for p in (
        "/static/../secret.txt",
        "/static/..%2Fsecret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/..%2f..%2fsecret.txt",
        "/static/../../secret.txt",
        "/static/..",
        "/static/%2e%2e",
        "/static/.%2e/.%2e/secret.txt",
        "/static//etc/passwd",
        "/static/app.js/../../secret.txt",
        "/static/%2fetc%2fpasswd",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/secret.txt",
        "/runs/vae/config.json",
        "/vae/ema.safetensors",
    ):
        out.append(Attack(f"GET {p}", "GET", p, expect=(404,)))
    return out


def request_attacks(port: int) -> list[Attack]:
    """Host, Origin, content type, body size and method attacks."""
    gen = {"run": "vae", "n": 1, "save": False}
    big = b'{"run": "vae", "x": "' + b"a" * (3 * MIB) + b'"}'

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(big), 64 * 1024):
            yield big[i : i + 64 * 1024]

    return [
        Attack(
            "Host: evil.example",
            "GET",
            "/api/runs",
            headers={"Host": "evil.example"},
            expect=(403,),
        ),
        Attack(
            "Host: evil.example:PORT",
            "GET",
            "/api/runs",
            headers={"Host": f"evil.example:{port}"},
            expect=(403,),
        ),
        Attack(
            "Host: 127.0.0.1.evil.example:PORT",
            "GET",
            "/",
            headers={"Host": f"127.0.0.1.evil.example:{port}"},
            expect=(403,),
        ),
        Attack(
            "Host: localhost.evil.example (POST)",
            "POST",
            "/api/generate",
            gen,
            headers={"Host": "localhost.evil.example"},
            expect=(403,),
        ),
        Attack("no Host header", "GET", "/api/runs", headers={"Host": ""}, expect=(400, 403)),
        Attack(
            "Origin: http://evil.example",
            "POST",
            "/api/generate",
            gen,
            headers={"Origin": "http://evil.example"},
            expect=(403,),
        ),
        Attack(
            "Origin: null", "POST", "/api/generate", gen, headers={"Origin": "null"}, expect=(403,)
        ),
        Attack(
            "Origin: another local port",
            "POST",
            "/api/generate",
            gen,
            headers={"Origin": f"http://127.0.0.1:{port + 1 if port < 65535 else 1}"},
            expect=(403,),
        ),
        Attack(
            "Origin: http://127.0.0.1.evil.example:PORT",
            "POST",
            "/api/generate",
            gen,
            headers={"Origin": f"http://127.0.0.1.evil.example:{port}"},
            expect=(403,),
        ),
        Attack(
            "Sec-Fetch-Site: cross-site",
            "POST",
            "/api/generate",
            gen,
            headers={"Sec-Fetch-Site": "cross-site"},
            expect=(403,),
        ),
        Attack(
            "form body (x-www-form-urlencoded)",
            "POST",
            "/api/generate",
            raw=b"run=vae&n=1",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            expect=(415,),
        ),
        Attack(
            "text/plain body (a CORS-simple request)",
            "POST",
            "/api/generate",
            raw=json.dumps(gen).encode(),
            headers={"Content-Type": "text/plain"},
            expect=(415,),
        ),
        Attack(
            "multipart body",
            "POST",
            "/api/judgements",
            raw=b"--b\r\nContent-Disposition: form-data; name=trial\r\n\r\nx\r\n--b--\r\n",
            headers={"Content-Type": "multipart/form-data; boundary=b"},
            expect=(415,),
        ),
        Attack(
            "no Content-Type",
            "POST",
            "/api/generate",
            raw=json.dumps(gen).encode(),
            headers={"Content-Type": None},
            expect=(415,),
        ),
        Attack("body of 3 MiB (Content-Length)", "POST", "/api/generate", raw=big, expect=(413,)),
        Attack(
            "body of 3 MiB (chunked, no Content-Length)",
            "POST",
            "/api/generate",
            raw=chunks,
            expect=(413,),
        ),
        Attack(
            "a 10 MB prompt",
            "POST",
            "/v1/completions",
            {"model": "lstm", "prompt": "a" * (10 * MIB)},
            expect=(413,),
        ),
        Attack("GET /api/generate", "GET", "/api/generate?run=vae&n=1", expect=(405,)),
        Attack(
            "GET /api/trials", "GET", "/api/trials?kind=real_or_generated&run=vae", expect=(405,)
        ),
        Attack("GET /api/provenance", "GET", "/api/provenance", expect=(405,)),
        Attack("GET /v1/completions", "GET", "/v1/completions?model=lstm&prompt=a", expect=(405,)),
        Attack("GET /api/jobs/JOB/cancel", "GET", "/api/jobs/0/cancel", expect=(404, 405)),
        Attack(
            "PUT /api/judgements",
            "PUT",
            "/api/judgements",
            {"trial": "x", "answer": "real"},
            expect=(405,),
        ),
    ]


def value_attacks() -> list[Attack]:
    """Negative, huge and not-a-number settings: 400 with a detail naming the field."""

    def gen(run: str, **kw) -> dict:
        return {"run": run, "save": False, **kw}

    def ctl(run: str, **c) -> dict:
        return gen(run, n=1, controls=c)

    a = [
        ("n=-1", gen("vae", n=-1), "n"),
        ("n=0", gen("vae", n=0), "n"),
        ("n=10**9", gen("vae", n=10**9), "n"),
        ("n=9 texts", gen("lstm", n=9), "n"),
        ("n='many'", gen("vae", n="many"), "n"),
        ("seed=-5", gen("vae", seed=-5), "seed"),
        ("seed=2**64", gen("vae", seed=2**64), "seed"),
        ("seed=1.5", gen("vae", seed=1.5), "seed"),
        ("sampling_steps=10**9", ctl("diffusion", sampling_steps=10**9), "sampling_steps"),
        ("sampling_steps=5000", ctl("diffusion", sampling_steps=5000), "sampling_steps"),
        ("sampling_steps=-1", ctl("diffusion", sampling_steps=-1), "sampling_steps"),
        ("sampling_steps='nan'", ctl("diffusion", sampling_steps="nan"), "sampling_steps"),
        ("guidance=1e308*10 ('inf')", ctl("diffusion", guidance="inf"), "guidance"),
        ("sampler='rm -rf'", ctl("diffusion", sampler="rm -rf"), "sampler"),
        ("max_new_tokens=10**7", ctl("lstm", max_new_tokens=10**7), "max_new_tokens"),
        ("max_new_tokens=5000", ctl("lstm", max_new_tokens=5000), "max_new_tokens"),
        ("max_new_tokens=-1", ctl("lstm", max_new_tokens=-1), "max_new_tokens"),
        ("temperature='nan'", ctl("lstm", temperature="nan"), "temperature"),
        ("temperature='inf'", ctl("vae", temperature="inf"), "temperature"),
        ("temperature=-1", ctl("lstm", temperature=-1), "temperature"),
        ("top_p=5", ctl("lstm", top_p=5), "top_p"),
        ("prompt of 5000 characters", ctl("lstm", prompt="a" * 5000), "prompt"),
        ("stop: 100 strings", ctl("lstm", stop=["x"] * 100), "stop"),
        ("label=99", ctl("vae", label=99), "label"),
        ("label=-3", ctl("gan", label=-3), "label"),
        ("an undeclared control", ctl("vae", bogus=1), "bogus"),
        ("frames=10**6", gen("vae", mode="interpolate", frames=10**6), "frames"),
        ("count=10**6", gen("gan", mode="variations", count=10**6), "count"),
        ("a=10**6", gen("vae", mode="interpolate", a=10**6), "a"),
        ("index=8 of n=4", gen("vae", mode="variations", n=4, index=8), "index"),
        ("spread=-1", gen("vae", mode="variations", spread=-1), "spread"),
        (
            "strip of 10**9 steps",
            gen("diffusion", n=1, mode="strip", vary={"name": "sampling_steps", "values": [10**9]}),
            "sampling_steps",
        ),
        (
            "strip of 1000 values",
            gen("diffusion", n=1, mode="strip", vary={"name": "guidance", "values": [1.0] * 1000}),
            "values",
        ),
        ("mode='shell'", gen("vae", mode="shell"), "mode"),
        ("an unknown field", gen("vae", path="/etc/passwd"), "path"),
    ]
    out = [
        Attack(f"generate {name}", "POST", "/api/generate", body, field=f) for name, body, f in a
    ]
    out.append(
        Attack(
            "generate temperature=1e999",
            "POST",
            "/api/generate",
            raw=b'{"run": "lstm", "n": 1, "controls": {"temperature": 1e999}}',
            field="temperature",
        )
    )
    out.append(
        Attack(
            "generate seed=NaN (bare)",
            "POST",
            "/api/generate",
            raw=b'{"run": "vae", "n": 1, "seed": NaN}',
            field="seed",
        )
    )

    def v1(**kw) -> dict:
        return {"model": "lstm", "prompt": "a", **kw}

    c = [
        ("max_tokens=10**7", v1(max_tokens=10**7), "max_tokens"),
        ("max_tokens=-1", v1(max_tokens=-1), "max_tokens"),
        ("temperature='nan'", v1(temperature="nan"), "temperature"),
        ("temperature=-1", v1(temperature=-1), "temperature"),
        ("top_p=0", v1(top_p=0), "top_p"),
        ("n=10**6", v1(n=10**6), "n"),
        ("seed=-5", v1(seed=-5), "seed"),
        ("stop: 100 strings", v1(stop=["x"] * 100), "stop"),
        ("prompt of 5000 characters", v1(prompt="a" * 5000), "prompt"),
        ("best_of=10 (not taken)", v1(best_of=10), "best_of"),
        ("logprobs=5 (not taken)", v1(logprobs=5), "logprobs"),
        ("model=vae (an image run)", v1(model="vae"), "vae"),
    ]
    out += [
        Attack(f"completions {name}", "POST", "/v1/completions", body, field=f)
        for name, body, f in c
    ]
    out.append(
        Attack(
            "completions temperature=1e999",
            "POST",
            "/v1/completions",
            raw=b'{"model": "lstm", "prompt": "a", "temperature": 1e999}',
            field="temperature",
        )
    )
    out += [
        Attack(
            "trial seed=-1",
            "POST",
            "/api/trials",
            {"kind": "pairwise", "runs": ["vae", "gan"], "seed": -1},
            field="seed",
        ),
        Attack(
            "trial kind='rm'", "POST", "/api/trials", {"kind": "rm", "run": "vae"}, field="kind"
        ),
        Attack(
            "judgement answer='maybe'",
            "POST",
            "/api/judgements",
            {"trial": "x", "answer": "maybe"},
            field="answer",
        ),
        Attack(
            "judgement rater of 1000 characters",
            "POST",
            "/api/judgements",
            {"trial": "x", "answer": "real", "rater": "r" * 1000},
            field="rater",
        ),
        Attack("provenance png='!!!'", "POST", "/api/provenance", {"png": "!!!"}, field="png"),
        Attack(
            "provenance of a text file",
            "POST",
            "/api/provenance",
            {"png": "aGVsbG8gd29ybGQ="},
            field="PNG",
        ),
    ]
    return out


def attacks(port: int) -> list[Attack]:
    """Every attack on a loopback studio serving the runs plant_secret() laid out."""
    return request_attacks(port) + traversal_attacks() + value_attacks()


def token_attacks(token: str) -> list[tuple[Attack, dict[str, str]]]:
    """Attacks on a studio started with ``--token``: (attack, extra headers)."""
    wrong = token[:-1] + ("y" if token[-1] != "y" else "z")
    return [
        (Attack("token: none", "GET", "/api/runs", expect=(401,)), {}),
        (
            Attack(
                "token: none, POST", "POST", "/api/generate", {"run": "vae", "n": 1}, expect=(401,)
            ),
            {},
        ),
        (
            Attack("token: wrong Bearer", "GET", "/api/runs", expect=(401,)),
            {"Authorization": f"Bearer {wrong}"},
        ),
        (
            Attack("token: a prefix of it", "GET", "/api/runs", expect=(401,)),
            {"Authorization": f"Bearer {token[:8]}"},
        ),
        (
            Attack("token: wrong cookie", "GET", "/api/runs", expect=(401,)),
            {"Cookie": f"genlab_token=x; other={token}"},
        ),
        (
            Attack(
                "token: in the query of an API path",
                "GET",
                f"/api/runs?token={token}",
                expect=(401,),
            ),
            {},
        ),
        (
            Attack("token: right, but Host evil.example", "GET", "/api/runs", expect=(403,)),
            {"Authorization": f"Bearer {token}", "Host": "evil.example"},
        ),
        (Attack("token: /v1/models without it", "GET", "/v1/models", expect=(401,)), {}),
        (Attack("token: the page without it", "GET", "/", expect=(401,)), {}),
        (Attack("token: /static/app.js without it", "GET", "/static/app.js", expect=(401,)), {}),
    ]


def leaked(marker: str, *texts: str) -> bool:
    return any(marker in t for t in texts)


# -- the command line ----------------------------------------------------------------------
CLI_CASES = (
    "no runs",
    "no such path",
    "port in use",
    "empty token",
    "short token",
    "short token on loopback",
)


def cli_args(case: str, runs: Path, scratch: Path, busy_port: int) -> tuple[list[str], str]:
    """(arguments of `genlab serve`, a word its error line must hold) for a bad input.
    ``busy_port``: a port something already listens on."""
    if case == "no runs":
        (scratch / "empty" / "sub").mkdir(parents=True, exist_ok=True)
        (scratch / "empty" / "notes.json").write_text("{}")
        return [str(scratch / "empty"), "--port", "0"], "no genlab runs"
    if case == "no such path":
        return [str(scratch / "nope"), "--port", "0"], "does not exist"
    if case == "port in use":
        return [str(runs), "--port", str(busy_port)], "in use"
    if case == "empty token":
        return [str(runs), "--port", "0", "--host", "0.0.0.0", "--token", ""], "--token"
    if case == "short token":
        return [str(runs), "--port", "0", "--host", "0.0.0.0", "--token", "short"], "--token"
    if case == "short token on loopback":
        return [str(runs), "--port", "0", "--token", "short"], "--token"
    raise ValueError(case)


def serve_cli(args: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess:
    """`python -m genlab serve ARGS` to its end (a bad input must end it at once)."""
    return subprocess.run(
        [sys.executable, "-m", "genlab", "serve", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def cli_refusal(p: subprocess.CompletedProcess, words: str) -> str:
    """What is wrong with how `genlab serve` refused ("" when nothing: exit status 2 and
    exactly one line on stderr, "genlab: error: ..." holding ``words``, no traceback)."""
    lines = p.stderr.strip().splitlines()
    if p.returncode != 2:
        return f"exit status {p.returncode}, expected 2"
    if "Traceback" in p.stderr:
        return "a traceback"
    if len(lines) != 1 or not lines[0].startswith("genlab: error:"):
        return f"stderr is not one 'genlab: error:' line: {p.stderr[-300:]!r}"
    if words not in lines[0]:
        return f"the line does not say {words!r}"
    if " at http://" in p.stdout:
        return "it started serving"
    return ""


def busy_socket() -> socket.socket:
    """A socket listening on a free loopback port (close it when done)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock
