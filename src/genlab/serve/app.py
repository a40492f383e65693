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
import collections
import json
import secrets
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from genlab import __version__
from genlab.errors import GenlabError
from genlab.serve import work
from genlab.serve.jobs import Job, JobQueue, QueueFull
from genlab.serve.runs import RunIndex, UnknownRun, curves

# Limits on one request: a studio is for looking, not for bulk sampling (`genlab sample`).
MAX_IMAGES = 64
MAX_TEXTS = 8
MAX_STEPS = 1000  # diffusion sampling steps
MAX_NEW_TOKENS = 2048
MAX_PROMPT = 4000  # characters
MAX_STOPS = 4
MAX_FRAMES = 32
MAX_STRIP = 8
MAX_SEED = 2**63 - 1
MAX_TRIALS = 10_000  # open judgement trials kept in memory


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    mode: Literal["sample", "interpolate", "variations", "strip"] = "sample"
    a: int = Field(0, ge=0, le=MAX_IMAGES, description="interpolate: first sample index")
    b: int = Field(1, ge=0, le=MAX_IMAGES, description="interpolate: second sample index")
    frames: int = Field(8, ge=2, le=MAX_FRAMES, description="interpolate: images")
    index: int = Field(0, ge=0, le=MAX_IMAGES, description="variations/strip: sample index")
    spread: float = Field(0.3, ge=0.0, le=3.0, description="variations: latent noise std")
    count: int = Field(8, ge=1, le=MAX_FRAMES, description="variations: images")
    vary: Vary | None = Field(None, description="strip: the control and its values")
    save: bool = Field(True, description="keep the outputs in the run's gallery (studio/)")


class ProvenanceRequest(Strict):
    png: str = Field(max_length=3_000_000, description="base64 of a PNG saved from the studio")


class TrialRequest(Strict):
    kind: Literal["real_or_generated", "pairwise"]
    run: str | None = Field(None, max_length=200)
    runs: list[str] | None = Field(None, min_length=2, max_length=2)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    controls: dict[str, Any] = Field(default_factory=dict)


class JudgementRequest(Strict):
    trial: str = Field(max_length=64)
    answer: Literal["real", "generated", "left", "right", "tie"]
    rater: str | None = Field(None, max_length=64, description="an opaque id the page keeps")


class CompletionRequest(BaseModel):
    """OpenAI's completions request; the fields genlab does not take must stay unset."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(max_length=200)
    prompt: str | list[str] = ""
    max_tokens: int | None = Field(16, ge=1, le=MAX_NEW_TOKENS)
    temperature: float | None = Field(1.0, ge=0.0, le=2.0)
    top_p: float | None = Field(1.0, gt=0.0, le=1.0)
    n: int | None = Field(1, ge=1, le=MAX_TEXTS)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    stream: bool | None = False
    stream_options: dict | None = None
    user: str | None = None


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
    trials: collections.OrderedDict[str, dict] = collections.OrderedDict()
    trials_lock = threading.Lock()
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
        return {"items": await asyncio.to_thread(work.gallery, index.path(run_id))}

    # -- generate ------------------------------------------------------------------------
    def checked(req: GenerateRequest) -> tuple[dict, str]:
        d = index.describe(req.run)
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
        elif req.mode != "sample" and not d["has_latent"]:
            raise GenlabError(f"the {d['family']} family has no latent space to {req.mode}")
        if kind == "text" and req.mode != "sample":
            raise GenlabError("text runs only sample")
        for idx in (req.a, req.b, req.index):
            if req.mode != "sample" and idx >= n:
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
            from genlab.run import current_sha256

            now = await asyncio.to_thread(current_sha256, index.path(rid), d["weights"])
            match = now == meta.get("weights_sha256")
        return {"meta": meta, "run_known": known, "weights_match": match}

    # -- human judgement -----------------------------------------------------------------
    def run_ref(rid: str) -> dict:
        path = index.path(rid)
        run = index.load(rid)
        return {"id": rid, "name": path.name, "path": str(path), "weights_sha256": run.weights_sha256}

    def real_or_generated(job: Job, rid: str) -> dict:
        run, ref = index.load(rid), index.reference(rid)
        truth = rng.choice(["real", "generated"])
        seed = rng.randrange(2**31)
        g = torch.Generator().manual_seed(seed)
        if run.info.kind == "text":
            fake = run.model.sample(1, generator=g, max_new_tokens=300)[0]
            item = {"text": _passage(fake, ref, rng) if truth == "real" else _trim(fake)}
        else:
            if truth == "real":
                x = ref.test[rng.randrange(len(ref.test))].permute(1, 2, 0).numpy()
            else:
                x = work.to_uint8(run.model.sample(1, generator=g, **_labels_kw(run, rng)))[0]
            item = {"png": work.data_uri(work._plain_png(x))}
        return {"truth": truth, "item": item, "seed": seed, "run": run_ref(rid),
                "data": run.info.kind}

    def pairwise(job: Job, rids: list[str], seed: int, controls: dict) -> dict:
        sides = []
        kinds = set()
        for rid in rids:
            run = index.load(rid)
            kinds.add(run.info.kind)
            c = {k: v for k, v in controls.items() if k in run.model.controls and v is not None}
            g = torch.Generator().manual_seed(seed)
            if run.info.kind == "text":
                c.setdefault("max_new_tokens", 200)
                sides.append((rid, {"text": run.model.sample(1, generator=g, **c)[0]}))
            else:
                x = work.to_uint8(run.model.sample(1, generator=g, **run.model.check_controls(c)))[0]
                sides.append((rid, {"png": work.data_uri(work._plain_png(x))}))
        if len(kinds) != 1:
            raise GenlabError("a pairwise test needs two runs of the same kind (images or text)")
        rng.shuffle(sides)
        return {"sides": sides, "seed": seed, "controls": controls, "data": kinds.pop()}

    def keep_trial(t: dict) -> str:
        tid = secrets.token_hex(12)
        with trials_lock:
            trials[tid] = t
            while len(trials) > MAX_TRIALS:
                trials.popitem(last=False)
        return tid

    @app.post("/api/trials", summary="One blind item (real or generated) or one pair to judge")
    async def new_trial(req: TrialRequest):
        if req.kind == "real_or_generated":
            if not req.run:
                raise GenlabError("a real-or-generated trial needs run")
            index.path(req.run)
            job = jobs.submit(lambda j: real_or_generated(j, req.run), label="trial")
            t = await _result(jobs, job)
            tid = keep_trial({"kind": req.kind, **t})
            return {"trial": tid, **t["item"]}
        if not req.runs or req.runs[0] == req.runs[1]:
            raise GenlabError("a pairwise trial needs two different runs")
        for rid in req.runs:
            index.path(rid)
        seed = req.seed if req.seed is not None else rng.randrange(2**31)
        job = jobs.submit(lambda j: pairwise(j, req.runs, seed, req.controls), label="pair")
        t = await _result(jobs, job)
        refs = [await asyncio.to_thread(run_ref, rid) for rid, _ in t["sides"]]
        tid = keep_trial({"kind": req.kind, "refs": refs, **t})
        return {"trial": tid, "left": t["sides"][0][1], "right": t["sides"][1][1]}

    @app.post("/api/judgements", summary="Record one answer (appended to the run's judgements.jsonl)")
    async def judge(req: JudgementRequest):
        from genlab.serve import judgements

        with trials_lock:
            t = trials.pop(req.trial, None)
        if t is None:
            raise HTTPException(404, "no such trial (answered already, or too old); ask for a new one")
        if t["kind"] == "real_or_generated":
            if req.answer not in ("real", "generated"):
                raise GenlabError("answer real or generated")
            rec = {
                "kind": "real_or_generated",
                "data": t["data"],
                "run": t["run"],
                "truth": t["truth"],
                "answer": req.answer,
                "correct": req.answer == t["truth"],
                "seed": t["seed"],
                "rater": req.rater,
            }
            await asyncio.to_thread(judgements.append, Path(t["run"]["path"]), rec)
            runs = [t["run"]["id"]]
            out = {"correct": rec["correct"], "truth": t["truth"]}
        else:
            if req.answer not in ("left", "right", "tie"):
                raise GenlabError("answer left, right or tie")
            refs = t["refs"]
            winner = None if req.answer == "tie" else refs[0 if req.answer == "left" else 1]["path"]
            rec = {
                "kind": "pairwise",
                "data": t["data"],
                "runs": refs,
                "answer": req.answer,
                "winner": winner,
                "seed": t["seed"],
                "controls": t["controls"],
                "rater": req.rater,
            }
            rec = await asyncio.to_thread(judgements.append, Path(refs[0]["path"]), rec)
            await asyncio.to_thread(judgements.append, Path(refs[1]["path"]), rec)
            runs = [r["id"] for r in refs]
            out = {"correct": None, "truth": None}
        return {"recorded": True, **out, "summary": await asyncio.to_thread(summary_of, runs)}

    def summary_of(run_ids: list[str]) -> dict:
        from genlab.serve import judgements

        paths = {str(index.path(r)): r for r in run_ids}
        s = judgements.summary([Path(p) for p in paths])
        hype = {paths.get(k, k): v for k, v in s.get("hype", {}).items() if k in paths}
        bt = dict(s.get("bradley_terry", {}))
        bt["scores"] = [
            {**row, "run": paths.get(row.get("path"), row.get("name"))}
            for row in bt.get("scores", [])
        ]
        for row in bt["scores"]:
            row.pop("path", None)
        return {"hype": hype, "bradley_terry": bt}

    @app.get("/api/judgements", summary="HYPE∞ and Bradley–Terry figures of the given runs")
    async def get_judgements(runs: str = ""):
        ids = [r for r in runs.split(",") if r][:16]
        for rid in ids:
            index.path(rid)
        return await asyncio.to_thread(summary_of, ids)

    # -- OpenAI-compatible ---------------------------------------------------------------
    @app.get("/v1/models", summary="OpenAI-compatible: the text runs")
    async def models():
        out = []
        for rid in await asyncio.to_thread(index.ids):
            try:
                d = await asyncio.to_thread(index.describe, rid)
            except GenlabError:
                continue
            if d["kind"] == "text":
                out.append({"id": rid, "object": "model", "created": 0, "owned_by": "genlab"})
        return {"object": "list", "data": out}

    @app.post("/v1/completions", summary="OpenAI-compatible completions (stream too)")
    async def completions(req: CompletionRequest):
        unsupported = {
            k: v
            for k, v in (req.model_extra or {}).items()
            if v not in (None, False, 0, 1, {}, [], "")
        }
        if unsupported:
            raise GenlabError(f"genlab does not take {sorted(unsupported)[0]!r} in completions")
        prompt = req.prompt if isinstance(req.prompt, str) else "".join(req.prompt[:1])
        if isinstance(req.prompt, list) and len(req.prompt) > 1:
            raise GenlabError("give one prompt (a string)")
        d = await asyncio.to_thread(index.describe, req.model)
        if d["kind"] != "text":
            raise GenlabError(f"run {req.model!r} makes images; /v1/completions is for text runs")
        if len(prompt) > MAX_PROMPT:
            raise GenlabError(f"prompt: at most {MAX_PROMPT} characters")
        controls = {
            "prompt": prompt,
            "max_new_tokens": req.max_tokens or 16,
            "temperature": 1.0 if req.temperature is None else req.temperature,
            "top_p": 1.0 if req.top_p is None else req.top_p,
        }
        stop = [req.stop] if isinstance(req.stop, str) else (req.stop or [])
        if len(stop) > MAX_STOPS:
            raise GenlabError(f"stop: at most {MAX_STOPS} strings")
        if stop:
            controls["stop"] = stop
        seed = req.seed if req.seed is not None else rng.randrange(2**31)
        n = req.n or 1
        body = {"run": req.model, "n": n, "seed": seed, "controls": controls, "save": False}
        job = jobs.submit(generate_job(body, "text"), label=f"completion {req.model}")
        cid, created = f"cmpl-{job.id}", int(time.time())

        def chunk(i: int, text: str, finish: str | None) -> dict:
            return {
                "id": cid,
                "object": "text_completion",
                "created": created,
                "model": req.model,
                "choices": [{"text": text, "index": i, "logprobs": None, "finish_reason": finish}],
            }

        if req.stream:

            async def stream():
                finished = False
                try:
                    async for kind, data in jobs.listen(job):
                        if kind == "token":
                            yield f"data: {json.dumps(chunk(data['i'], data['text'], None))}\n\n"
                        elif kind == "result":
                            for it in data["items"]:
                                c = chunk(it["i"], "", it["finish_reason"])
                                yield f"data: {json.dumps(c)}\n\n"
                        elif kind == "error":
                            yield f"data: {json.dumps({'error': {'message': data['message']}})}\n\n"
                        elif kind == "done":
                            finished = True
                            yield "data: [DONE]\n\n"
                finally:
                    if not finished:
                        job.cancel()

            return StreamingResponse(stream(), media_type="text/event-stream")
        result = await _result(jobs, job)
        run = await asyncio.to_thread(index.load, req.model)
        prompt_tokens = len(run.model.encode_prompt(prompt))
        tok = run.model.tokenizer
        completion_tokens = sum(len(tok.encode(it["text"])) for it in result["items"])
        return {
            "id": cid,
            "object": "text_completion",
            "created": created,
            "model": req.model,
            "seed": seed,
            "choices": [
                {"text": it["text"], "index": it["i"], "logprobs": None,
                 "finish_reason": it["finish_reason"]}
                for it in result["items"]
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    @app.get("/api/health", summary="Liveness, queue length and the served runs' count")
    async def health():
        return {"ok": True, "pending": jobs.pending, "runs": len(index.ids()), "genlab": __version__}

    return app


async def _result(jobs: JobQueue, job: Job) -> Any:
    """Wait (without blocking the loop, or holding a thread) for a job; its error as a
    GenlabError."""
    async for _ in jobs.listen(job):
        pass
    if job.error is not None:
        raise GenlabError(job.error)
    if job.result is None:
        raise GenlabError("the job was cancelled")
    return job.result


def _sse(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _labels_kw(run, rng) -> dict:
    if run.info.num_classes and getattr(run.config.model, "conditional", False):
        return {"label": rng.randrange(run.info.num_classes)}
    return {}


def _trim(text: str, limit: int = 300) -> str:
    text = text.strip()[:limit]
    cut = text.rfind(" ")
    return text[:cut] if cut > limit // 2 else text


def _passage(like: str, ref, rng) -> str:
    """A real held-out passage about as long as the generated text ``like``."""
    length = max(80, len(_trim(like)))
    doc = rng.choice(ref.passages)
    start = rng.randrange(max(1, len(doc) - length))
    space = doc.find(" ", start)
    start = space + 1 if 0 <= space < start + 40 else start
    return _trim(doc[start : start + length + 40], length)
