"""The studio's HTTP API: FastAPI routes over the run index, the job queue and the jobs.

    app = create_app([Path("runs/demo")])            # an ASGI app; `genlab serve` runs it
    # GET  /api/runs                  the served runs, each with its declared controls
    # POST /api/generate              a job id -> GET /api/jobs/{id}/events (Server-Sent Events)
    # POST /v1/completions            OpenAI-compatible text completions (stream too)
    # POST /v1/images/generations      OpenAI-compatible images, for runs that take a prompt

Every model call runs in a worker thread (jobs.py: the bodies are in generate.py), never on
the event loop; requests are checked in requests.py (limits, types) and by each family's
declared controls; the Guard middleware (security.py) wraps the whole app. create_app adds
the routes by group (the page, runs, generate, jobs, provenance; judgements.py and
completions.py add their own). The page itself is static (static/), read into memory at
start-up and served by name: there is no route that maps a URL to a file.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse

from genlab.errors import GenlabError
from genlab.outputs.provenance import read_provenance
from genlab.rundir import current_sha256
from genlab.serve import completions, judgements
from genlab.serve.gallery import gallery_items
from genlab.serve.generate import generate_job
from genlab.serve.jobs import Job, JobQueue, QueueFull
from genlab.serve.requests import (
    GenerateRequest,
    ProvenanceRequest,
    provenance_png,
    validate_generate,
)
from genlab.serve.runs import RunIndex, UnknownRun, curves
from genlab.version import __version__

STATIC = ("index.html", "app.js", "style.css", "docs.html", "docs.js")
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


def _read_static() -> dict[str, bytes]:
    folder = resources.files("genlab.serve") / "static"
    out = {}
    for name in STATIC:
        f = folder / name
        if f.is_file():
            out[name] = f.read_bytes()
    return out


def create_app(
    folders: list[Path],
    *,
    workers: int = 1,
    max_pending: int = 32,
    max_loaded: int = 4,
    device: str = "cpu",
) -> FastAPI:
    index = RunIndex(folders, max_loaded=max_loaded, device=device)
    jobs = JobQueue(workers=workers, max_pending=max_pending)
    rng = secrets.SystemRandom()

    app = FastAPI(
        title="genlab studio",
        version=__version__,
        description="Generate from genlab runs with every control, stream the work, see each "
        "sample's novelty, explore latents, collect human judgements. Runs are named by id "
        "(GET /api/runs); state changes are POSTs with a JSON body.",
        docs_url=None,  # /docs is our own page: Swagger UI would come from a CDN
        redoc_url=None,
    )
    app.state.index, app.state.jobs = index, jobs
    _add_error_handlers(app, jobs)
    _add_page_routes(app, _read_static())
    _add_run_routes(app, index)
    _add_generate_route(app, index, jobs)
    _add_job_routes(app, jobs)
    _add_provenance_route(app, index)
    judgements.add_routes(app, index, jobs, rng)
    completions.add_routes(app, index, jobs, rng)

    @app.get("/api/health", summary="Liveness, queue length and the served runs' count")
    async def health():
        return {"ok": True, "pending": jobs.pending, "runs": len(index.ids()), "genlab": __version__}

    return app


def _add_error_handlers(app: FastAPI, jobs: JobQueue) -> None:
    """Every refusal as {"detail": one line}: 400 for a bad request, 404 for an unknown run,
    429 (with Retry-After) for a full queue; on the OpenAI routes (/v1/) in OpenAI's shape
    too, {"error": {"message", "type", "param", "code"}}, which its clients read."""

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError):
        errs = exc.errors()
        e = errs[0] if errs else {}
        if e.get("type") == "json_invalid":
            return _refusal(request, 400, "the body is not valid JSON")
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
        line = f"{where}: {e.get('msg', 'invalid')}" if where else e.get("msg", "invalid")
        return _refusal(request, 400, line, param=where or None)

    @app.exception_handler(UnknownRun)
    async def _unknown_run(request: Request, exc: UnknownRun):
        return _refusal(request, 404, str(exc), code="model_not_found")

    @app.exception_handler(GenlabError)
    async def _genlab_error(request: Request, exc: GenlabError):
        return _refusal(request, 400, str(exc))

    @app.exception_handler(QueueFull)
    async def _queue_full(request: Request, exc: QueueFull):
        return _refusal(
            request,
            429,
            f"the studio is busy ({jobs.pending} jobs waiting); retry shortly",
            headers={"Retry-After": str(exc.retry_after)},
        )


OPENAI_TYPES = {400: "invalid_request_error", 404: "invalid_request_error", 429: "rate_limit_error"}


def _refusal(
    request: Request,
    status: int,
    line: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict | None = None,
) -> JSONResponse:
    """{"detail": line}; on /v1/ with OpenAI's {"error": ...} beside it."""
    body: dict[str, Any] = {"detail": line}
    if request.url.path.startswith("/v1/"):
        kind = OPENAI_TYPES.get(status, "invalid_request_error")
        body["error"] = {"message": line, "type": kind, "param": param, "code": code}
    return JSONResponse(body, status_code=status, headers=headers)


def _add_page_routes(app: FastAPI, static: dict[str, bytes]) -> None:
    """The page: its files, read at start-up, served by name (never a path)."""

    def page(name: str) -> Response:
        if name not in static:
            raise HTTPException(404, "not found")
        return Response(static[name], media_type=TYPES[Path(name).suffix])

    @app.get("/", include_in_schema=False)
    async def home():
        return page("index.html")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return page("docs.html")

    @app.get("/static/{name}", include_in_schema=False)
    async def static_file(name: str):
        return page(name)  # a name from STATIC, looked up: never a path


def _add_run_routes(app: FastAPI, index: RunIndex) -> None:
    """The served runs, one run with its curves, and its gallery."""

    @app.get("/api/runs", summary="The served runs, each with the controls its family declares")
    async def list_runs():
        ids = await asyncio.to_thread(index.ids)
        out = []
        for rid in ids:
            try:
                out.append(await asyncio.to_thread(index.describe, rid))
            except GenlabError:
                continue  # a run whose config cannot be read is not served
        return {"runs": out}

    @app.get("/api/runs/{run_id}", summary="One run, with its training curves (live)")
    async def get_run(run_id: str):
        d = await asyncio.to_thread(index.describe, run_id)
        d["curves"] = await asyncio.to_thread(curves, index.path(run_id))
        return d

    @app.get("/api/runs/{run_id}/gallery", summary="What the studio generated from this run")
    async def get_gallery(run_id: str):
        return {"items": await asyncio.to_thread(gallery_items, index.path(run_id))}


def _add_generate_route(app: FastAPI, index: RunIndex, jobs: JobQueue) -> None:
    """POST /api/generate: a request checked (requests.py) and queued as a job."""

    @app.post(
        "/api/generate",
        status_code=202,
        summary="Start a generation job; its events stream from GET /api/jobs/{job}/events",
    )
    async def generate(req: GenerateRequest):
        body, kind = await asyncio.to_thread(
            lambda: validate_generate(req, index.describe(req.run))
        )
        job = jobs.submit(generate_job(index, body, kind), label=f"{req.mode} {req.run}")
        return {
            "job": job.id,
            "events": f"/api/jobs/{job.id}/events",
            "position": jobs.position(job),
        }


def _add_job_routes(app: FastAPI, jobs: JobQueue) -> None:
    """A job's events (Server-Sent Events), its state, and its cancel."""

    def get_job(job_id: str) -> Job:
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id[:40]!r} (finished long ago, or never)")
        return job

    @app.get(
        "/api/jobs/{job_id}/events",
        summary="Server-Sent Events of a job: queued, start, progress, preview, token, "
        "result, error, cancelled, done. Closing the stream cancels the job.",
    )
    async def job_events(job_id: str, request: Request):
        job = get_job(job_id)
        return StreamingResponse(
            _event_stream(jobs, job),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.get("/api/jobs/{job_id}", summary="A job's state and, once done, its result")
    async def job_state(job_id: str):
        job = get_job(job_id)
        return {
            "job": job.id,
            "done": job.done,
            "cancelled": job.cancelled,
            "error": job.error,
            "position": jobs.position(job),
            "result": job.result if job.done else None,
        }

    @app.post("/api/jobs/{job_id}/cancel", summary="Cancel a job (queued or running)")
    async def cancel(job_id: str, body: dict[str, Any] | None = None):
        return {"cancelled": get_job(job_id).cancel()}


async def _event_stream(jobs: JobQueue, job: Job):
    """The job's events as Server-Sent Events, from the first; hanging up cancels the job."""
    finished = False
    try:
        pos = jobs.position(job)
        if job.started is None:
            yield _sse_event("queued", {"position": pos})
        async for kind, data in jobs.listen(job):
            yield _sse_event(kind, data)
            if kind == "done":
                finished = True
    finally:
        if not finished:
            job.cancel()  # the page was closed: nobody is waiting for this work


def _add_provenance_route(app: FastAPI, index: RunIndex) -> None:
    """POST /api/provenance: how a dropped studio PNG was made, and whether its run is
    served here with the same weights."""

    @app.post(
        "/api/provenance",
        summary="Read how a studio PNG was made (run, weights, seed, controls, index)",
    )
    async def read_png(req: ProvenanceRequest):
        data = provenance_png(req)
        meta = await asyncio.to_thread(read_provenance, data)
        rid = meta.get("run")
        known = isinstance(rid, str) and rid in index.ids()
        match = False
        if known:
            d = await asyncio.to_thread(index.describe, rid)
            now = await asyncio.to_thread(current_sha256, index.path(rid), d["weights"])
            match = now == meta.get("weights_sha256")
        return {"meta": meta, "run_known": known, "weights_match": match}


def _sse_event(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
