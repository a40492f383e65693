"""Every attack on the studio is refused, each with its status, and nothing outside the
served folders is ever read.

The served folder is a copy of the studio runs with a secret planted where a server must
never reach (benchmarks/_studio.plant_secret): ``secret.txt`` beside the served folder, a
run outside it linked in, a gallery file linked out. Every response any test here receives
is checked for the secret's marker, and for a Content-Security-Policy and nosniff.
Also: the token (cookie, Bearer), a non-loopback bind with a generated token, one clear
line and exit status 2 for bad CLI input, and judgements surviving a SIGKILL.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import start_studio
from PIL import Image, PngImagePlugin

from genlab.metrics import human

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import _studio as S  # noqa: E402

MARKERS: list[str] = []  # the planted secret of this module
TOKEN = "x" * 24


def check(reply: S.Reply | S.EventStream, secured: bool = True) -> None:
    """The marker never appears; every response carries the CSP and nosniff."""
    text = reply.text() if isinstance(reply, S.Reply) else "\n".join(reply.seen)
    for m in MARKERS:
        assert m not in text, f"the planted secret leaked: {text[:300]}"
    if secured:
        h = reply.headers
        assert h.get("content-security-policy", "").startswith("default-src 'self'"), h
        assert "frame-ancestors 'none'" in h["content-security-policy"]
        assert h.get("x-content-type-options") == "nosniff", h


def call(base: str, method: str, path: str, body=S._NO_BODY, **kw) -> S.Reply:
    r = S.request(base, method, path, body, **kw)
    check(r)
    return r


@pytest.fixture(scope="module")
def planted(studio_runs, tmp_path_factory) -> Path:
    """tmp/runs (served: a copy of the studio runs), tmp/secret.txt beside it, a run
    outside linked in."""
    served = tmp_path_factory.mktemp("guarded") / "runs"
    MARKERS.append(S.plant_secret(served, studio_runs))
    return served


@pytest.fixture(scope="module")
def guarded(planted):
    s = start_studio([planted])
    yield s
    s.stop()


def _refused(outcomes: list[S.Outcome]) -> None:
    for o in outcomes:
        check(o.reply)
    bad = [o.line() for o in outcomes if not o.refused]
    assert not bad, "attacks not refused as they should be:\n" + "\n".join(bad)


# -- the attacks ---------------------------------------------------------------------------
def test_host_origin_content_type_size_and_method_attacks_are_refused(guarded):
    port = int(guarded.base.rsplit(":", 1)[1])
    _refused([a.run(guarded.base) for a in S.request_attacks(port)])


def test_run_ids_that_are_paths_and_static_traversal_are_refused(guarded):
    _refused([a.run(guarded.base) for a in S.traversal_attacks()])


def test_negative_huge_and_nan_values_are_refused_naming_the_field(guarded):
    _refused([a.run(guarded.base) for a in S.value_attacks()])


def test_the_linked_run_outside_is_not_served_and_the_gallery_stays_inside(guarded):
    ids = [r["id"] for r in call(guarded.base, "GET", "/api/runs").json()["runs"]]
    assert ids == ["diffusion", "gan", "lstm", "vae"]
    models = call(guarded.base, "GET", "/v1/models").json()["data"]
    assert [m["id"] for m in models] == ["lstm"]
    gallery = call(guarded.base, "GET", "/api/runs/vae/gallery")
    assert gallery.status == 200 and gallery.json()["items"] == []  # only the linked file


def test_a_png_naming_a_path_as_its_run_is_not_followed(guarded):
    info = PngImagePlugin.PngInfo()
    info.add_itxt(
        "genlab",
        json.dumps(
            {"run": "../secret.txt", "weights": "model", "weights_sha256": "0" * 64, "seed": 0}
        ),
    )
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "PNG", pnginfo=info)
    r = call(
        guarded.base, "POST", "/api/provenance", {"png": base64.b64encode(buf.getvalue()).decode()}
    )
    assert r.status == 200
    assert r.json()["run_known"] is False and r.json()["weights_match"] is False


def test_no_state_changes_on_get(guarded, planted):
    def state():
        return sorted(
            p.name
            for p in planted.rglob("*")
            if "studio" in p.parts or p.name == "judgements.jsonl"
        )

    before = state()
    assert call(guarded.base, "GET", "/api/generate?run=gan&n=1&save=true").status == 405
    trial = call(
        guarded.base, "POST", "/api/trials", {"kind": "real_or_generated", "run": "gan"}
    ).json()["trial"]
    r = call(guarded.base, "GET", f"/api/judgements?trial={trial}&answer=real&runs=gan")
    assert r.status == 200 and r.json()["hype"]["gan"]["n"] == 0  # a read, not an answer
    job = call(guarded.base, "POST", "/api/generate", {"run": "vae", "n": 1, "save": False})
    jid = job.json()["job"]
    assert call(guarded.base, "GET", f"/api/jobs/{jid}/cancel").status == 405
    with S.EventStream(guarded.base, f"/api/jobs/{jid}/events") as stream:
        kinds = [k for k, _ in stream]
    check(stream)
    assert "result" in kinds and "cancelled" not in kinds
    assert state() == before
    # the trial is still open: only the POST answers it
    assert (
        call(guarded.base, "POST", "/api/judgements", {"trial": trial, "answer": "real"}).json()[
            "recorded"
        ]
        is True
    )


def test_every_response_has_the_policy_and_nosniff(guarded):
    b = guarded.base
    for method, path, body, status in [
        ("GET", "/", S._NO_BODY, 200),
        ("GET", "/static/app.js", S._NO_BODY, 200),
        ("GET", "/static/style.css", S._NO_BODY, 200),
        ("GET", "/docs", S._NO_BODY, 200),
        ("GET", "/openapi.json", S._NO_BODY, 200),
        ("GET", "/api/runs", S._NO_BODY, 200),
        ("GET", "/api/health", S._NO_BODY, 200),
        ("GET", "/nowhere", S._NO_BODY, 404),
        ("GET", "/api/runs/nope", S._NO_BODY, 404),
        ("GET", "/api/generate", S._NO_BODY, 405),
        ("POST", "/api/generate", {"run": "vae", "n": -1}, 400),
        ("POST", "/api/generate", {"run": "vae", "n": 1, "save": False}, 202),
    ]:
        r = call(b, method, path, body)
        assert r.status == status, (path, r.status, r.body[:200])
    page = call(b, "GET", "/")
    assert page.headers["content-type"].startswith("text/html")
    assert call(b, "GET", "/static/app.js").headers["content-type"].startswith("text/javascript")
    job = call(
        b,
        "POST",
        "/api/generate",
        {"run": "lstm", "n": 1, "save": False, "controls": {"max_new_tokens": 3}},
    ).json()
    with S.EventStream(b, job["events"]) as stream:
        list(stream)
    check(stream)
    assert stream.headers["content-type"].startswith("text/event-stream")


def test_the_page_never_writes_html_from_data(guarded):
    """Generated text goes in as text nodes: no innerHTML, no inline scripts or handlers
    (the CSP forbids them anyway)."""
    js = call(guarded.base, "GET", "/static/app.js").body.decode()
    code = "\n".join(line.split("//", 1)[0] for line in js.splitlines())
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ):
        assert sink not in code, sink
    html = call(guarded.base, "GET", "/").body.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\son[a-z]+\s*=", html)
    assert "http://" not in html and "https://" not in html  # no CDN


def test_the_secret_beside_the_served_folder_is_never_read(guarded, planted):
    """Whatever was sent above, the marker is in every planted file and in no reply."""
    marker = MARKERS[0]
    assert marker in (planted.parent / "secret.txt").read_text()
    assert marker in (planted / "linked" / "secret.txt").read_text()
    for path in ("/api/runs/linked", "/api/runs/linkdir~vae", "/api/runs/linked/gallery"):
        assert call(guarded.base, "GET", path).status == 404
    r = call(guarded.base, "POST", "/api/trials", {"kind": "real_or_generated", "run": "linked"})
    assert r.status == 404


# -- the token -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def token_studio(planted):
    s = start_studio([planted], "--host", "127.0.0.1", "--token", TOKEN)
    yield s
    s.stop()


def test_a_token_server_refuses_requests_without_it(token_studio):
    assert token_studio.token == TOKEN and token_studio.url.endswith(f"/?token={TOKEN}")
    outcomes = [a.run(token_studio.base, h) for a, h in S.token_attacks(TOKEN)]
    _refused(outcomes)
    assert all(
        o.reply.headers.get("www-authenticate") == "Bearer"
        for o in outcomes
        if o.reply.status == 401
    )


def test_the_start_up_url_sets_a_cookie_and_bearer_works(token_studio):
    b = token_studio.base
    port = b.rsplit(":", 1)[1]
    r = call(b, "GET", f"/?token={TOKEN}")
    assert r.status == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"genlab_token_{port}={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    jar = {"Cookie": cookie.split(";", 1)[0]}
    assert call(b, "GET", "/", headers=jar).status == 200
    assert call(b, "GET", "/api/runs", headers=jar).status == 200
    gen = call(b, "POST", "/api/generate", {"run": "vae", "n": 1, "save": False}, headers=jar)
    assert gen.status == 202
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert call(b, "GET", "/api/runs", headers=bearer).status == 200
    wrong = call(b, "GET", f"/?token={'y' * 24}")
    assert wrong.status == 401 and "set-cookie" not in wrong.headers
    # the token does not excuse a cross-site request
    evil = call(
        b,
        "POST",
        "/api/generate",
        {"run": "vae", "n": 1},
        headers={**jar, "Origin": "http://evil.example"},
    )
    assert evil.status == 403


def test_a_non_loopback_bind_generates_a_token_and_needs_it(planted):
    s = start_studio([planted], "--host", "0.0.0.0")
    try:
        assert s.token and len(s.token) >= 16 and re.fullmatch(r"[A-Za-z0-9_-]+", s.token)
        assert s.url.startswith("http://127.0.0.1:")
        for method, path, body in [
            ("GET", "/", S._NO_BODY),
            ("GET", "/api/runs", S._NO_BODY),
            ("GET", "/static/app.js", S._NO_BODY),
            ("GET", "/v1/models", S._NO_BODY),
            ("POST", "/api/generate", {"run": "vae", "n": 1}),
            ("POST", "/v1/completions", {"model": "lstm", "prompt": "a"}),
        ]:
            r = call(s.base, method, path, body)
            assert r.status in (401, 403), (path, r.status)
            bad = call(s.base, method, path, body, headers={"Authorization": "Bearer " + "z" * 32})
            assert bad.status in (401, 403), (path, bad.status)
        ok = call(s.base, "GET", "/api/runs", headers={"Authorization": f"Bearer {s.token}"})
        assert ok.status == 200
        assert call(s.base, "GET", f"/?token={s.token}").status == 303
    finally:
        s.stop()


# -- the command line ----------------------------------------------------------------------
@pytest.mark.parametrize("case", S.CLI_CASES)
def test_bad_cli_input_gives_one_clear_line_and_status_2(case, studio_runs, tmp_path):
    sock = S.busy_socket()
    try:
        args, words = S.cli_args(case, studio_runs, tmp_path, sock.getsockname()[1])
        p = S.serve_cli(args)
    finally:
        sock.close()
    assert S.cli_refusal(p, words) == "", (p.returncode, p.stdout, p.stderr)


# -- a crash during judgements -------------------------------------------------------------
def test_sigkill_during_a_stream_of_judgements_loses_at_most_one(studio_runs, tmp_path):
    runs = S.copy_runs(studio_runs, tmp_path / "runs")
    s = start_studio([runs])
    ok = [0, 0]
    stop = threading.Event()

    def fire(k: int) -> None:
        while not stop.is_set():
            try:
                t = S.request(
                    s.base,
                    "POST",
                    "/api/trials",
                    {"kind": "real_or_generated", "run": "vae"},
                    timeout=10,
                )
                if t.status != 200:
                    return
                r = S.request(
                    s.base,
                    "POST",
                    "/api/judgements",
                    {"trial": t.json()["trial"], "answer": "generated"},
                    timeout=10,
                )
            except (OSError, http.client.HTTPException):
                return
            if r.status == 200:
                ok[k] += 1

    threads = [threading.Thread(target=fire, args=(k,), daemon=True) for k in (0, 1)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 30
        while sum(ok) < 25 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(s.proc.pid, signal.SIGKILL)
        s.proc.wait(10)
    finally:
        stop.set()
        s.stop()
    for t in threads:
        t.join(15)
    answered = sum(ok)
    assert answered >= 25
    data = (runs / "vae" / "judgements.jsonl").read_bytes()
    whole, _, torn = data.rpartition(b"\n")
    records = [json.loads(line) for line in whole.split(b"\n")]  # every whole line parses
    assert len(records) >= answered  # each answer that got a 200 was on disk first
    assert all(r["kind"] == "real_or_generated" and r["answer"] == "generated" for r in records)
    if torn:
        with pytest.raises(ValueError):
            json.loads(torn)
    assert len(human.read(runs / "vae")) == len(records)
    # and a restarted server appends after a torn tail as if nothing happened
    s = start_studio([runs])
    try:
        t = call(s.base, "POST", "/api/trials", {"kind": "real_or_generated", "run": "vae"})
        r = call(s.base, "POST", "/api/judgements", {"trial": t.json()["trial"], "answer": "real"})
        assert r.status == 200 and r.json()["summary"]["hype"]["vae"]["n"] == len(records) + 1
    finally:
        s.stop()
