"""The studio's HTTP API: FastAPI routes over the run index, the job queue and the work.

    app = create_app([Path("runs/demo")])            # an ASGI app; `genlab serve` runs it
    # GET  /api/runs                  the served runs, each with its declared controls
    # POST /api/generate              a job id -> GET /api/jobs/{id}/events (Server-Sent Events)
    # POST /v1/completions            OpenAI-compatible text completions (stream too)

Every model call runs in a worker thread (jobs.py), never on the event loop; requests are
checked here (limits, types) and by each family's declared controls; the Guard middleware
(security.py) wraps the whole app. The page itself is static (static/), read into memory at
start-up and served by name: there is no route that maps a URL to a file.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import Field

from genlab.errors import GenlabError
from genlab.serve import completions, judgements, work
from genlab.serve.jobs import Job, JobQueue, QueueFull
from genlab.serve.limits import (
    MAX_FRAMES,
    MAX_IMAGES,
    MAX_NEW_TOKENS,
    MAX_PROMPT,
    MAX_SEED,
    MAX_STEPS,
    MAX_STOPS,
    MAX_STRIP,
    MAX_TEXTS,
    Strict,
)
from genlab.serve.runs import RunIndex, UnknownRun, curves
from genlab.version import __version__


class Vary(Strict):
    name: Literal["guidance", "sampling_steps"]
    values: list[float] = Field(min_length=1, max_length=MAX_STRIP)


class GenerateRequest(Strict):
    """One generation: ``n`` samples of ``run`` with ``seed`` and the family's controls,
    or an exploration of them (``mode``)."""

    run: str = Field(max_length=200, description="run id from GET /api/runs")
    seed: int = Field(0, ge=0, le=MAX_SEED)
    n: int | None = Field(None, ge=1, le=MAX_IMAGES, description="default 16 images, 1 text")
    controls: dict[str, Any] = Field(default_factory=dict, description="the run's controls")
    mode: Literal["sample", "interpolate", "variations", "strip", "say"] = "sample"
    a: int = Field(0, ge=0, le=MAX_IMAGES, description="interpolate: first sample index")
    b: int = Field(1, ge=0, le=MAX_IMAGES, description="interpolate: second sample index")
    frames: int = Field(8, ge=2, le=MAX_FRAMES, description="interpolate: images")
    index: int = Field(0, ge=0, le=MAX_IMAGES, description="variations/strip: sample index")
    spread: float = Field(0.3, ge=0.0, le=3.0, description="variations: latent noise std")
    count: int = Field(8, ge=1, le=MAX_FRAMES, description="variations: images")
    vary: Vary | None = Field(None, description="strip: the control and its values")
    text: str | None = Field(None, max_length=32, description="say: the characters to speak")
    save: bool = Field(True, description="keep the outputs in the run's gallery (studio/)")


class ProvenanceRequest(Strict):
    png: str = Field(max_length=3_000_000, description="base64 of a PNG saved from the studio")


STATIC = ("index.html", "app.js", "style.css", "docs.html", "docs.js")
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


def _static() -> dict[str, bytes]:
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
    static = _static()
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

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errs = exc.errors()
        e = errs[0] if errs else {}
        if e.get("type") == "json_invalid":
            return JSONResponse({"detail": "the body is not valid JSON"}, status_code=400)
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
        return JSONResponse(
            {"detail": f"{where}: {e.get('msg', 'invalid')}" if where else e.get("msg", "invalid")},
            status_code=400,
        )

    @app.exception_handler(UnknownRun)
    async def _unknown(request: Request, exc: UnknownRun):
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(GenlabError)
    async def _bad(request: Request, exc: GenlabError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(QueueFull)
    async def _full(request: Request, exc: QueueFull):
        return JSONResponse(
            {"detail": f"the studio is busy ({jobs.pending} jobs waiting); retry shortly"},
            status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
        )

    # -- the page ------------------------------------------------------------------------
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

    # -- runs ----------------------------------------------------------------------------
    def describe(rid: str) -> dict:
        d = index.describe(rid)
        d.setdefault("audio", work.is_audio_run(index.path(rid)))  # sound: items carry "wav"
        return d

    @app.get("/api/runs", summary="The served runs, each with the controls its family declares")
    async def list_runs():
        ids = await asyncio.to_thread(index.ids)
        out = []
        for rid in ids:
            try:
                out.append(await asyncio.to_thread(describe, rid))
            except GenlabError:
                continue  # a run whose config cannot be read is not served
        return {"runs": out}

    @app.get("/api/runs/{run_id}", summary="One run, with its training curves (live)")
    async def get_run(run_id: str):
        d = await asyncio.to_thread(describe, run_id)
        d["curves"] = await asyncio.to_thread(curves, index.path(run_id))
        return d

    @app.get("/api/runs/{run_id}/gallery", summary="What the studio generated from this run")
    async def get_gallery(run_id: str):
        return {"items": await asyncio.to_thread(work.gallery, index.path(run_id))}

    # -- generate ------------------------------------------------------------------------
    def checked(req: GenerateRequest) -> tuple[dict, str]:
        d = describe(req.run)
        if not d["ready"]:
            raise GenlabError(f"run {req.run!r} has no weights yet (still starting to train)")
        kind = d["kind"]
        n = req.n or (16 if kind == "images" else 1)
        if kind == "text" and n > MAX_TEXTS:
            raise GenlabError(f"n={n}: at most {MAX_TEXTS} texts at once")
        from genlab.registry import get

        controls = {k: v for k, v in req.controls.items() if v is not None}
        full = get(d["family"]).check_controls(controls)
        steps = full.get("sampling_steps")
        if steps is not None and steps > MAX_STEPS:
            raise GenlabError(f"sampling_steps={steps}: the studio takes at most {MAX_STEPS}")
        most = d.get("timesteps")
        asked = [steps] if steps is not None else []
        if req.vary is not None and req.vary.name == "sampling_steps":
            asked += [int(v) for v in req.vary.values]
        for k in asked:
            if most is not None and k > most:
                raise GenlabError(f"sampling_steps={k} is more than this model's {most} timesteps")
        if full.get("max_new_tokens", 0) > MAX_NEW_TOKENS:
            raise GenlabError(f"max_new_tokens: the studio takes at most {MAX_NEW_TOKENS}")
        if len(full.get("prompt") or "") > MAX_PROMPT:
            raise GenlabError(f"prompt: at most {MAX_PROMPT} characters")
        stops = full.get("stop") or []
        stops = [stops] if isinstance(stops, str) else stops
        if len(stops) > MAX_STOPS or any(len(s) > 100 for s in stops):
            raise GenlabError(f"stop: at most {MAX_STOPS} strings of 100 characters")
        if "label" in full and full["label"] is not None and not d["conditional"]:
            raise GenlabError(f"run {req.run!r} is not conditional: it takes no label")
        if full.get("label") is not None:
            labels = full["label"] if isinstance(full["label"], list) else [full["label"]]
            if any(lab >= len(d["classes"]) for lab in labels):
                raise GenlabError(f"label: this run has {len(d['classes'])} classes")
        if req.mode == "strip":
            if d["family"] != "diffusion" or req.vary is None:
                raise GenlabError("mode strip needs a diffusion run and vary {name, values}")
            for v in req.vary.values:
                if req.vary.name == "sampling_steps" and not 1 <= v <= MAX_STEPS:
                    raise GenlabError(f"sampling_steps {v} is outside [1, {MAX_STEPS}]")
                if req.vary.name == "guidance" and not 0 <= v <= 50:
                    raise GenlabError(f"guidance {v} is outside [0, 50]")
        elif req.mode == "say":
            if not d["audio"] or not d["conditional"]:
                raise GenlabError("mode say needs a class-conditional run trained on sound")
            if full.get("label") is not None:
                raise GenlabError("mode say: the text picks the classes; send no label")
            from genlab.speech import labels_of

            labels_of(req.text or "", d["classes"], f"run {req.run!r}")
        elif req.mode != "sample" and not d["has_latent"]:
            raise GenlabError(f"the {d['family']} family has no latent space to {req.mode}")
        if kind == "text" and req.mode != "sample":
            raise GenlabError("text runs only sample")
        if req.text is not None and req.mode != "say":
            raise GenlabError("text is for mode say")
        for idx in (req.a, req.b, req.index):
            if req.mode not in ("sample", "say") and idx >= n:
                raise GenlabError(f"sample index {idx} is outside the batch of {n}")
        body = req.model_dump()
        body["n"], body["controls"] = n, full  # as used: defaults filled in, types checked
        if body["vary"] is not None and req.vary.name == "sampling_steps":
            body["vary"]["values"] = [int(v) for v in req.vary.values]
        return body, kind

    def generate_job(body: dict, kind: str):
        rid = body["run"]

        def fn(job: Job):
            run = index.load(rid)
            ref = index.reference(rid)
            if kind == "text":
                return work.sample_text(job, run, rid, ref, body)
            if body["mode"] == "sample":
                return work.sample_images(job, run, rid, ref, body)
            if body["mode"] == "say":
                return work.say(job, run, rid, ref, body)
            return work.explore(job, run, rid, ref, body)

        return fn

    @app.post(
        "/api/generate",
        status_code=202,
        summary="Start a generation job; its events stream from GET /api/jobs/{job}/events",
    )
    async def generate(req: GenerateRequest):
        body, kind = await asyncio.to_thread(checked, req)
        job = jobs.submit(generate_job(body, kind), label=f"{req.mode} {req.run}")
        return {
            "job": job.id,
            "events": f"/api/jobs/{job.id}/events",
            "position": jobs.position(job),
        }

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

        async def stream():
            finished = False
            try:
                pos = jobs.position(job)
                if job.started is None:
                    yield _sse("queued", {"position": pos})
                async for kind, data in jobs.listen(job):
                    yield _sse(kind, data)
                    if kind == "done":
                        finished = True
            finally:
                if not finished:
                    job.cancel()  # the page was closed: nobody is waiting for this work

        return StreamingResponse(
            stream(),
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

    # -- provenance ----------------------------------------------------------------------
    @app.post(
        "/api/provenance",
        summary="Read how a studio PNG was made (run, weights, seed, controls, index)",
    )
    async def read_png(req: ProvenanceRequest):
        import base64
        import binascii

        try:
            data = base64.b64decode(req.png.split(",", 1)[-1], validate=True)
        except (binascii.Error, ValueError):
            raise GenlabError("png: not base64") from None
        meta = await asyncio.to_thread(work.read_provenance, data)
        rid = meta.get("run")
        known = isinstance(rid, str) and rid in index.ids()
        match = False
        if known:
            d = await asyncio.to_thread(index.describe, rid)
            from genlab.rundir import current_sha256

            now = await asyncio.to_thread(current_sha256, index.path(rid), d["weights"])
            match = now == meta.get("weights_sha256")
        return {"meta": meta, "run_known": known, "weights_match": match}

    judgements.add_routes(app, index, jobs, rng)
    completions.add_routes(app, index, jobs, rng, generate_job)

    @app.get("/api/health", summary="Liveness, queue length and the served runs' count")
    async def health():
        return {"ok": True, "pending": jobs.pending, "runs": len(index.ids()), "genlab": __version__}

    return app


def _sse(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
