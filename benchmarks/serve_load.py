"""Load on `genlab serve`: many concurrent clients streaming text and diffusion jobs.

    python benchmarks/serve_load.py                          # 32 clients, 60 s, runs/demo
    python benchmarks/serve_load.py --clients 4 --seconds 10 # a smoke run
    python benchmarks/serve_load.py --runs runs --text-run gpt --image-run diffusion

The runs folder is copied into a temporary folder first (the studio keeps every output
in each run's studio/ gallery; the copy keeps the real folder clean while the default
path, saving, is exercised), then `genlab serve` starts on a free loopback port as a
subprocess with every core for itself (OMP_NUM_THREADS); this process stays light:
asyncio with raw sockets, no torch.

Each client loops until the deadline, alternating a text job and a diffusion job:
POST /api/generate, then the job's Server-Sent Events; one client in four asks for its
text through OpenAI's /v1/completions with stream=true instead. Measured: time to first
token (from the POST; also from the job's start event, without the queue wait), the gaps
between tokens, time to the first diffusion preview, completed jobs per second, and the
server's resident memory (VmRSS) at start, after a warm-up under the same load, and at
the end once the queue has drained. A /api/health probe every half second shows whether
the event loop ever stalls.

A 429 or 503 is "queue full": counted on its own, Retry-After is honoured, and it is
not a failure. Any other answer that is not 2xx, a dropped stream, an error or cancelled
event, a stream without its done event (or [DONE]), a result without its items, or a
request past --request-timeout is a failure. Everything is bounded: each request, each
phase (the load phase by --seconds + 60 s: jobs still running then are cancelled and
reported as "unfinished"), and the whole run (a watchdog); the server is always stopped
at the end, also on Ctrl-C or SIGTERM (and killed with this process on Linux).

The server's torch threads compete with its own event loop and with these clients: on a
small machine that other work also loads, OpenMP's threads wait on each other and
throughput can drop several-fold (--server-threads 1 then shows the difference).

Prints a table, then one JSON line (clients, seconds, requests, requests_per_s,
queue_full, failures, ttft_p50/p99 and ttfp_p50/p99 in s, inter_token_p50/p99 in ms,
tokens_per_s, rss_start_mb, rss_warm_mb, rss_end_mb, rss_end_vs_warm, the server's
settings, ...). Exits 0 when there were no failures, nothing unfinished, and
rss_end_vs_warm <= 1.10 (the acceptance at 32 clients for 60 s).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PROMPTS = ["Once upon a time", "The king said", "In a great forest there lived", "", "And"]
HOST = "127.0.0.1"


# -- a minimal HTTP/1.1 client on asyncio streams ---------------------------------------
class HTTPError(Exception):
    """A failed exchange (not a queue-full answer)."""


class Response:
    def __init__(self, status: int, headers: dict[str, str], reader, writer):
        self.status, self.headers, self.reader, self.writer = status, headers, reader, writer

    async def body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            return b"".join([c async for c in self.chunks()])
        if "content-length" in self.headers:
            return await self.reader.readexactly(int(self.headers["content-length"]))
        return await self.reader.read()

    async def chunks(self):
        """The body's pieces as they arrive (chunked transfer, or until the end)."""
        if self.headers.get("transfer-encoding", "").lower() != "chunked":
            while data := await self.reader.read(65536):
                yield data
            return
        while True:
            line = await self.reader.readline()
            if not line.endswith(b"\n"):
                raise HTTPError("the stream was dropped (no chunk header)")
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await self.reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            data = await self.reader.readexactly(size)
            await self.reader.readexactly(2)
            yield data

    def close(self) -> None:
        self.writer.close()


async def request(port: int, method: str, path: str, body: dict | None = None) -> Response:
    reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 20)
    payload = b"" if body is None else json.dumps(body).encode()
    head = [
        f"{method} {path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        "Connection: close",
        "Accept: text/event-stream, application/json",
    ]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
    await writer.drain()
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
        writer.close()
        raise HTTPError(f"{method} {path}: no response ({type(e).__name__})") from None
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return Response(status, headers, reader, writer)


async def get_json(port: int, path: str, timeout: float = 30.0) -> dict:
    async def go():
        r = await request(port, "GET", path)
        try:
            data = await r.body()
        finally:
            r.close()
        if r.status != 200:
            raise HTTPError(f"GET {path}: {r.status} {data[:200]!r}")
        return json.loads(data)

    return await asyncio.wait_for(go(), timeout)


async def sse(resp: Response):
    """(event, data-string, arrival time) for each Server-Sent Event of the response."""
    buf = b""
    async for data in resp.chunks():
        now = time.perf_counter()
        buf += data.replace(b"\r\n", b"\n")
        while b"\n\n" in buf:
            block, buf = buf.split(b"\n\n", 1)
            event, lines = "message", []
            for line in block.decode("utf-8").split("\n"):
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    lines.append(line[5:].lstrip())
            yield event, "\n".join(lines), now


# -- the clients ------------------------------------------------------------------------
class QueueFullAnswer(Exception):
    def __init__(self, retry_after: float):
        self.retry_after = retry_after


class Stats:
    def __init__(self):
        self.done = collections.Counter()  # completed jobs by kind
        self.queue_full = 0
        self.failures: list[str] = []
        self.ttft: list[float] = []  # s, POST -> first token
        self.ttft_run: list[float] = []  # s, start event -> first token (no queue wait)
        self.ttfp: list[float] = []  # s, POST -> first diffusion preview
        self.gaps: list[float] = []  # s, between tokens of one stream
        self.tokens = 0
        self.post: list[float] = []  # s, POST -> its answer (202 / 200 headers)
        self.unfinished = 0  # jobs still running when the phase's bound cut them off
        self.service_s: dict[str, list[float]] = collections.defaultdict(list)  # start -> done
        self.job_s: dict[str, list[float]] = collections.defaultdict(list)


async def _post_job(port: int, path: str, body: dict, st: Stats) -> Response:
    t0 = time.perf_counter()
    r = await request(port, "POST", path, body)
    st.post.append(time.perf_counter() - t0)
    if r.status in (429, 503):
        await r.body()
        r.close()
        raise QueueFullAnswer(float(r.headers.get("retry-after", "1") or 1))
    return r


async def text_job(port: int, run: str, args, rng: random.Random, st: Stats) -> None:
    body = {
        "run": run,
        "seed": rng.randrange(2**31),
        "n": 1,
        "controls": {"prompt": rng.choice(PROMPTS), "max_new_tokens": args.max_new_tokens},
    }
    t0 = time.perf_counter()
    r = await _post_job(port, "/api/generate", body, st)
    try:
        data = await r.body()
    finally:
        r.close()
    if r.status != 202:
        raise HTTPError(f"POST /api/generate (text): {r.status} {data[:200]!r}")
    events = json.loads(data)["events"]
    r = await request(port, "GET", events)
    try:
        if r.status != 200:
            raise HTTPError(f"GET events: {r.status} {(await r.body())[:200]!r}")
        started = last = None
        seen, gaps, result, done = 0, [], None, False
        async for ev, d, now in sse(r):
            if ev == "start":
                started = now
            elif ev == "token":
                if seen == 0:
                    st.ttft.append(now - t0)
                    if started is not None:
                        st.ttft_run.append(now - started)
                else:
                    gaps.append(now - last)
                last, seen = now, seen + 1
            elif ev == "result":
                result = json.loads(d)
            elif ev in ("error", "cancelled"):
                raise HTTPError(f"text job: {ev} {d[:200]}")
            elif ev == "done":
                done = True
                if started is not None:
                    st.service_s["text"].append(now - started)
                break
    finally:
        r.close()
    if not done:
        raise HTTPError("text job: the stream ended without its done event")
    if result is None or len(result.get("items", [])) != 1 or seen == 0:
        raise HTTPError(f"text job: result {str(result)[:120]}, {seen} tokens")
    st.gaps += gaps
    st.tokens += seen
    st.done["text"] += 1
    st.job_s["text"].append(time.perf_counter() - t0)


async def completion_job(port: int, run: str, args, rng: random.Random, st: Stats) -> None:
    body = {
        "model": run,
        "prompt": rng.choice(PROMPTS),
        "max_tokens": args.max_new_tokens,
        "seed": rng.randrange(2**31),
        "stream": True,
    }
    t0 = time.perf_counter()
    r = await _post_job(port, "/v1/completions", body, st)
    try:
        if r.status != 200:
            raise HTTPError(f"POST /v1/completions: {r.status} {(await r.body())[:200]!r}")
        last, seen, gaps, finish, done = None, 0, [], None, False
        async for _, d, now in sse(r):
            if d == "[DONE]":
                done = True
                break
            chunk = json.loads(d)
            if "error" in chunk:
                raise HTTPError(f"completion: error {chunk['error']}")
            choice = chunk["choices"][0]
            if choice["finish_reason"] is not None:
                finish = choice["finish_reason"]
            elif choice["text"]:
                if seen == 0:
                    st.ttft.append(now - t0)
                else:
                    gaps.append(now - last)
                last, seen = now, seen + 1
    finally:
        r.close()
    if not done:
        raise HTTPError("completion: the stream ended without [DONE]")
    if finish is None or seen == 0:
        raise HTTPError(f"completion: finish_reason {finish}, {seen} tokens")
    st.gaps += gaps
    st.tokens += seen
    st.done["completion"] += 1
    st.job_s["completion"].append(time.perf_counter() - t0)


async def image_job(port: int, run: str, args, rng: random.Random, st: Stats) -> None:
    body = {
        "run": run,
        "seed": rng.randrange(2**31),
        "controls": {"sampling_steps": args.sampling_steps},
    }
    if args.images:
        body["n"] = args.images
    t0 = time.perf_counter()
    r = await _post_job(port, "/api/generate", body, st)
    try:
        data = await r.body()
    finally:
        r.close()
    if r.status != 202:
        raise HTTPError(f"POST /api/generate (images): {r.status} {data[:200]!r}")
    events = json.loads(data)["events"]
    r = await request(port, "GET", events)
    try:
        if r.status != 200:
            raise HTTPError(f"GET events: {r.status} {(await r.body())[:200]!r}")
        previews, result, done, started = 0, None, False, None
        async for ev, d, now in sse(r):
            if ev == "start":
                started = now
            elif ev == "preview":
                if previews == 0:
                    st.ttfp.append(now - t0)
                previews += 1
            elif ev == "result":
                result = json.loads(d)
            elif ev in ("error", "cancelled"):
                raise HTTPError(f"image job: {ev} {d[:200]}")
            elif ev == "done":
                done = True
                if started is not None:
                    st.service_s["diffusion"].append(now - started)
                break
    finally:
        r.close()
    if not done:
        raise HTTPError("image job: the stream ended without its done event")
    want = args.images or 16
    if result is None or len(result.get("items", [])) != want or previews == 0:
        raise HTTPError(
            f"image job: {len((result or {}).get('items', []))} items, {previews} previews"
        )
    st.done["diffusion"] += 1
    st.job_s["diffusion"].append(time.perf_counter() - t0)


async def client(k: int, port: int, args, deadline: float, st: Stats) -> None:
    rng = random.Random(1000 + k)
    openai_style = k % 4 == 3
    j = 0
    while time.perf_counter() < deadline:
        if (j + k) % 2 == 0:
            kind, job = "diffusion", image_job(port, args.image_run, args, rng, st)
        elif openai_style:
            kind, job = "completion", completion_job(port, args.text_run, args, rng, st)
        else:
            kind, job = "text", text_job(port, args.text_run, args, rng, st)
        try:
            await asyncio.wait_for(job, args.request_timeout)
            j += 1
        except QueueFullAnswer as e:
            st.queue_full += 1
            await asyncio.sleep(max(0.0, min(e.retry_after, deadline - time.perf_counter())))
        except asyncio.TimeoutError:
            st.failures.append(f"client {k} {kind}: no answer in {args.request_timeout} s")
            j += 1
        except (HTTPError, OSError, asyncio.IncompleteReadError, ValueError, KeyError) as e:
            st.failures.append(f"client {k} {kind}: {type(e).__name__}: {e}"[:300])
            j += 1


async def health_probe(port: int, stop: asyncio.Event, out: list[float]) -> None:
    """Latency of GET /api/health every 0.5 s: an event loop that stalls shows here."""
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            await get_json(port, "/api/health", timeout=30)
            out.append(time.perf_counter() - t0)
        except (HTTPError, OSError, asyncio.TimeoutError, ValueError):
            out.append(float("inf"))
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except asyncio.TimeoutError:
            pass


# -- the server -------------------------------------------------------------------------
class Server:
    def __init__(self, runs: Path, args, log: Path):
        cmd = [
            sys.executable,
            "-m",
            "genlab",
            "serve",
            str(runs),
            "--port",
            "0",
            "--workers",
            str(args.workers),
            "--queue",
            str(args.queue),
            "--device",
            args.device,
        ]
        threads = str(args.server_threads or os.cpu_count() or 1)
        env = {
            **os.environ,
            "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            "PYTHONUNBUFFERED": "1",
        }
        self.log = log
        self.cmd = cmd
        self._f = open(log, "wb")
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._f,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        self.port = 0

    def wait_url(self, timeout: float) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            text = self.log.read_text(errors="replace")
            m = re.search(r" at (http://\S+)", text)
            if m:
                url = m.group(1)
                self.port = int(re.search(r":(\d+)/", url).group(1))
                return url
            if self.proc.poll() is not None:
                raise RuntimeError(f"genlab serve exited ({self.proc.returncode}): {text[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError("genlab serve printed no URL in time")

    def status(self) -> dict[str, float]:
        """VmRSS, VmHWM (MB), threads and open descriptors of the server process."""
        out: dict[str, float] = {}
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0]) / 1024
                elif k == "Threads":
                    out[k] = int(v)
            out["fds"] = len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except OSError:
            pass
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._f.close()


def _die_with_parent() -> None:
    """In the child before exec: the server is killed when this process dies, however."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


# -- a phase of load ----------------------------------------------------------------------
async def load(port: int, args, seconds: float, server: Server) -> tuple[Stats, dict]:
    """``args.clients`` clients for ``seconds``, then their last jobs finish and the queue
    drains; bounded by ``seconds`` + 60 s."""
    st = Stats()
    stop, health, rss = asyncio.Event(), [], []
    t0 = time.perf_counter()
    deadline = t0 + seconds
    probe = asyncio.create_task(health_probe(port, stop, health))

    async def sample_rss():
        while not stop.is_set():
            rss.append(server.status().get("VmRSS", 0.0))
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass

    sampler = asyncio.create_task(sample_rss())
    tasks = [asyncio.create_task(client(k, port, args, deadline, st)) for k in range(args.clients)]
    bound = seconds + 60
    _, pending = await asyncio.wait(tasks, timeout=max(1.0, t0 + bound - time.perf_counter()))
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
        st.unfinished = len(pending)
    elapsed = time.perf_counter() - t0
    drained = False
    while time.perf_counter() < t0 + bound + 30:
        try:
            h = await get_json(port, "/api/health", timeout=10)
            if h.get("pending", 1) == 0:
                drained = True
                break
        except (HTTPError, OSError, asyncio.TimeoutError, ValueError):
            pass
        await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(probe, sampler)
    for t in tasks:
        if not t.cancelled() and t.exception() is not None:
            st.failures.append(f"client crashed: {t.exception()!r}"[:300])
    return st, {"elapsed": elapsed, "drained": drained, "health": health, "rss": rss}


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def rnd(x: float | None, nd: int = 3) -> float | None:
    return None if x is None or x != x else round(x, nd)


async def bench(args, server: Server) -> dict:
    port = server.port
    runs = {r["id"]: r for r in (await get_json(port, "/api/runs", timeout=120))["runs"]}
    for name, kind in ((args.text_run, "text"), (args.image_run, "images")):
        if name not in runs:
            raise SystemExit(f"no run {name!r} served (runs: {', '.join(runs)})")
        if runs[name]["kind"] != kind:
            raise SystemExit(f"run {name!r} makes {runs[name]['kind']}, not {kind}")
    await asyncio.sleep(1.0)
    start = server.status()
    print(
        f"server up: pid {server.proc.pid}, port {port}, RSS {start.get('VmRSS', 0):.0f} MB;"
        f" warm-up: {args.clients} clients for {args.warmup:g} s",
        flush=True,
    )
    warm_st, warm_info = await load(port, args, args.warmup, server)
    await asyncio.sleep(1.0)
    warm = server.status()
    print(
        f"warm: {sum(warm_st.done.values())} jobs, {len(warm_st.failures)} failures, "
        f"RSS {warm.get('VmRSS', 0):.0f} MB; load: {args.clients} clients for "
        f"{args.seconds:g} s",
        flush=True,
    )
    st, info = await load(port, args, args.seconds, server)
    await asyncio.sleep(2.0)  # closed connections leave, freed memory settles
    end = server.status()
    health_end = await get_json(port, "/api/health", timeout=30)
    finite = [h for h in info["health"] if h != float("inf")]
    requests = sum(st.done.values())
    span = info["elapsed"]
    out = {
        "clients": args.clients,
        "seconds": args.seconds,
        "elapsed_s": rnd(span, 1),
        "requests": requests,
        "requests_by_kind": dict(st.done),
        "requests_per_s": rnd(requests / span, 2),
        "queue_full": st.queue_full,
        "failures": len(st.failures),
        "unfinished": st.unfinished,
        "warmup_requests": sum(warm_st.done.values()),
        "warmup_failures": len(warm_st.failures),
        "post_p50": rnd(pct(st.post, 50)),
        "post_p99": rnd(pct(st.post, 99)),
        "ttft_p50": rnd(pct(st.ttft, 50)),
        "ttft_p99": rnd(pct(st.ttft, 99)),
        "ttft_from_start_p50": rnd(pct(st.ttft_run, 50)),
        "ttft_from_start_p99": rnd(pct(st.ttft_run, 99)),
        "ttfp_p50": rnd(pct(st.ttfp, 50)),
        "ttfp_p99": rnd(pct(st.ttfp, 99)),
        "inter_token_p50": rnd(1000 * (pct(st.gaps, 50) or float("nan")), 2),
        "inter_token_p99": rnd(1000 * (pct(st.gaps, 99) or float("nan")), 2),
        "tokens": st.tokens,
        "tokens_per_s": rnd(st.tokens / span, 1),
        "job_s_p50": {k: rnd(pct(v, 50)) for k, v in st.job_s.items()},
        "service_s_p50": {k: rnd(pct(v, 50)) for k, v in st.service_s.items()},
        "health_p50_ms": rnd(1000 * (pct(finite, 50) or float("nan")), 1),
        "health_p99_ms": rnd(1000 * (pct(finite, 99) or float("nan")), 1),
        "health_max_ms": rnd(1000 * max(finite, default=float("nan")), 1),
        "health_failed": len(info["health"]) - len(finite),
        "drained": info["drained"] and health_end.get("pending") == 0,
        "rss_start_mb": rnd(start.get("VmRSS"), 1),
        "rss_warm_mb": rnd(warm.get("VmRSS"), 1),
        "rss_end_mb": rnd(end.get("VmRSS"), 1),
        "rss_max_mb": rnd(max(info["rss"], default=None), 1),
        "rss_end_vs_warm": rnd(end.get("VmRSS", 0) / max(warm.get("VmRSS", 0), 1e-9), 3),
        "threads_warm": warm.get("Threads"),
        "threads_end": end.get("Threads"),
        "fds_warm": warm.get("fds"),
        "fds_end": end.get("fds"),
        "server": {
            "workers": args.workers,
            "queue": args.queue,
            "device": args.device,
            "threads": args.server_threads or os.cpu_count(),
            "text_run": args.text_run,
            "image_run": args.image_run,
            "max_new_tokens": args.max_new_tokens,
            "sampling_steps": args.sampling_steps,
            "images_per_job": args.images or 16,
            "warmup_s": args.warmup,
            "request_timeout_s": args.request_timeout,
        },
        "failure_examples": (warm_st.failures + st.failures)[:5],
    }
    return out


def table(r: dict) -> str:
    def f(x, unit="", nd=3):
        return "-" if x is None else f"{x:.{nd}f}{unit}" if isinstance(x, float) else f"{x}{unit}"

    rows = [
        ("clients x seconds", f"{r['clients']} x {r['seconds']:g} s (phase {r['elapsed_s']} s)"),
        ("completed jobs", f"{r['requests']} {r['requests_by_kind']}"),
        ("requests/s", f(r["requests_per_s"], nd=2)),
        ("queue full (429/503)", f(r["queue_full"])),
        ("failures", f"{r['failures']} (warm-up: {r['warmup_failures']})"),
        ("unfinished at the bound", f"{r['unfinished']} (jobs cut off at seconds + 60 s)"),
        ("POST answered in", f"p50 {f(r['post_p50'], ' s')}  p99 {f(r['post_p99'], ' s')}"),
        ("time to first token", f"p50 {f(r['ttft_p50'], ' s')}  p99 {f(r['ttft_p99'], ' s')}"),
        (
            "  from the job's start",
            f"p50 {f(r['ttft_from_start_p50'], ' s')}  p99 {f(r['ttft_from_start_p99'], ' s')}",
        ),
        ("time to first preview", f"p50 {f(r['ttfp_p50'], ' s')}  p99 {f(r['ttfp_p99'], ' s')}"),
        (
            "inter-token latency",
            f"p50 {f(r['inter_token_p50'], ' ms', 2)}  p99 {f(r['inter_token_p99'], ' ms', 2)}",
        ),
        ("tokens/s", f"{f(r['tokens_per_s'], nd=1)} ({r['tokens']} tokens)"),
        ("job seconds p50", ", ".join(f"{k} {v} s" for k, v in r["job_s_p50"].items())),
        ("  running (start-done)", ", ".join(f"{k} {v} s" for k, v in r["service_s_p50"].items())),
        (
            "/api/health latency",
            f"p50 {f(r['health_p50_ms'], ' ms', 1)}  p99 "
            f"{f(r['health_p99_ms'], ' ms', 1)}  max "
            f"{f(r['health_max_ms'], ' ms', 1)}  failed {r['health_failed']}",
        ),
        ("queue drained", str(r["drained"])),
        (
            "server RSS",
            f"start {f(r['rss_start_mb'], ' MB', 1)}, after warm-up "
            f"{f(r['rss_warm_mb'], ' MB', 1)}, end {f(r['rss_end_mb'], ' MB', 1)} "
            f"(max {f(r['rss_max_mb'], ' MB', 1)}); end/warm "
            f"{f(r['rss_end_vs_warm'])}",
        ),
        (
            "server threads / fds",
            f"warm {r['threads_warm']}/{r['fds_warm']}, end {r['threads_end']}/{r['fds_end']}",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    lines += [f"failure: {x}" for x in r["failure_examples"]]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default="runs/demo", help="folder of runs (copied first)")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=60.0, help="the measured load phase")
    p.add_argument("--warmup", type=float, default=10.0, help="the same load, not measured")
    p.add_argument("--text-run", default="lstm")
    p.add_argument("--image-run", default="diffusion")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--sampling-steps", type=int, default=50)
    p.add_argument(
        "--images", type=int, default=0, help="images per diffusion job (default: the studio's, 16)"
    )
    p.add_argument("--workers", type=int, default=1, help="passed to genlab serve")
    p.add_argument("--queue", type=int, default=32, help="passed to genlab serve")
    p.add_argument("--device", default="cpu", help="passed to genlab serve")
    p.add_argument(
        "--server-threads",
        type=int,
        default=0,
        help="OMP_NUM_THREADS of the server (default: every core)",
    )
    p.add_argument("--request-timeout", type=float, default=120.0, help="seconds per job")
    p.add_argument("--keep", action="store_true", help="keep the temporary copy and log")
    args = p.parse_args()
    if args.clients < 1 or args.seconds <= 0 or args.warmup < 0:
        p.error("--clients >= 1, --seconds > 0, --warmup >= 0")
    src = Path(args.runs)
    if not src.is_dir():
        p.error(f"{src} is not a folder of runs (run `genlab demo` first)")

    tmp = Path(tempfile.mkdtemp(prefix="genlab-serve-load-"))
    server = None
    # the whole run's bound: start-up, both phases with their drains, and the stop
    total = 120 + (args.warmup + 90) + (args.seconds + 90) + 30
    watchdog = threading.Timer(total, _give_up, args=(lambda: server, total))
    watchdog.daemon = True
    for sig in (signal.SIGINT, signal.SIGTERM):  # also where the shell ignores SIGINT
        signal.signal(sig, _interrupt)
    try:
        runs = tmp / src.name
        shutil.copytree(src, runs, ignore=shutil.ignore_patterns("studio"))
        watchdog.start()
        server = Server(runs, args, tmp / "server.log")
        url = server.wait_url(120)
        print(
            f"genlab serve {runs} at {url} (workers {args.workers}, queue {args.queue}, "
            f"OMP_NUM_THREADS {args.server_threads or os.cpu_count()})",
            flush=True,
        )
        result = asyncio.run(bench(args, server))
        log = server.log.read_text(errors="replace")
        result["server_tracebacks"] = log.count("Traceback")
        saved = sum(
            len(list((d / "studio").glob("*"))) for d in runs.iterdir() if (d / "studio").is_dir()
        )
        result["gallery_files_written"] = saved
        print()
        print(table(result))
        if result["server_tracebacks"]:
            print(f"server log (tracebacks: {result['server_tracebacks']}):\n{log[-3000:]}")
        print(json.dumps(result), flush=True)
        ok = (
            result["failures"] == 0
            and result["unfinished"] == 0
            and (result["rss_end_vs_warm"] or 9) <= 1.10
        )
        return 0 if ok else 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        watchdog.cancel()
        if server is not None:
            server.stop()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt()


def _give_up(server_of, total: float) -> None:
    """The watchdog: past the whole run's bound, stop the server and leave."""
    print(f"serve_load: no result within {total:.0f} s; stopping", file=sys.stderr, flush=True)
    s = server_of()
    if s is not None and s.proc.poll() is None:
        s.proc.kill()
    os._exit(2)


if __name__ == "__main__":
    sys.exit(main())
