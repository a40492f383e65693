"""The OpenAI-compatible subset: existing clients work unchanged.

    GET  /v1/models              the text runs and the runs that draw from a prompt, by id
    POST /v1/completions         text runs: prompt, max_tokens, temperature, top_p, n, stop,
                                 seed, stream ("data: {chunk}" lines, then "data: [DONE]")
    POST /v1/images/generations  runs that take a prompt (txt2img): prompt, n, size,
                                 response_format b64_json; genlab's seed, guidance,
                                 sampling_steps, sampler, negative_prompt

Each is a studio job like any other (the same queue, the same worker threads, the same
checks of requests.py); with the same seed and controls a completion's text is what
`genlab sample` prints, and image i's pixels are those of the PNG i `genlab sample --out
dir/` writes. Fields of OpenAI's request that genlab does not take must be left unset:
they are refused, never silently ignored. Errors come in OpenAI's shape (app.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Literal

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from genlab.errors import GenlabError
from genlab.serve.generate import generate_job
from genlab.serve.jobs import JobQueue
from genlab.serve.limits import (
    MAX_API_IMAGES,
    MAX_NEW_TOKENS,
    MAX_PROMPT,
    MAX_SEED,
    MAX_STOPS,
    MAX_TEXTS,
)
from genlab.serve.requests import GenerateRequest, validate_generate
from genlab.serve.runs import RunIndex


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


class ImageRequest(BaseModel):
    """OpenAI's image generation request, with genlab's sampling controls beside it; the
    fields genlab does not take must stay unset."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(max_length=200)
    prompt: str = Field(max_length=MAX_PROMPT)
    n: int | None = Field(1, ge=1, le=MAX_API_IMAGES)
    size: str | None = Field(None, max_length=32, description='"WxH": the run\'s size, or unset')
    response_format: Literal["b64_json", "url"] | None = "b64_json"
    output_format: Literal["png"] | None = None
    stream: Literal[False] | None = None
    user: str | None = Field(None, max_length=200)
    # genlab's extensions (OpenAI's client sends them in extra_body)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    negative_prompt: str | None = Field(None, max_length=MAX_PROMPT)
    guidance: float | None = None
    sampling_steps: int | None = None
    sampler: str | None = Field(None, max_length=40)


def add_routes(app: FastAPI, index: RunIndex, jobs: JobQueue, rng) -> None:
    @app.get("/v1/models", summary="OpenAI-compatible: the text runs and the prompt runs")
    async def models():
        out = []
        for rid in await asyncio.to_thread(index.ids):
            try:
                d = await asyncio.to_thread(index.describe, rid)
            except GenlabError:
                continue
            if d["kind"] == "text" or d.get("takes_prompt"):
                out.append({"id": rid, "object": "model", "created": 0, "owned_by": "genlab"})
        return {"object": "list", "data": out}

    @app.post("/v1/completions", summary="OpenAI-compatible completions (stream too)")
    async def completions(req: CompletionRequest):
        prompt = _prompt_of(req)
        d = await asyncio.to_thread(index.describe, req.model)
        if d["kind"] != "text":
            raise GenlabError(f"run {req.model!r} makes images; /v1/completions is for text runs")
        controls = _controls_of(req, prompt)
        seed = req.seed if req.seed is not None else rng.randrange(2**31)
        body = {"run": req.model, "n": req.n or 1, "seed": seed, "controls": controls,
                "save": False}
        job = jobs.submit(generate_job(index, body, "text"), label=f"completion {req.model}")
        chunk = _CompletionChunks(f"cmpl-{job.id}", int(time.time()), req.model)
        if req.stream:
            stream = _openai_stream(jobs, job, chunk)
            return StreamingResponse(stream, media_type="text/event-stream")
        result = await jobs.result(job)
        run = await asyncio.to_thread(index.load, req.model)
        return chunk.whole(result, seed, _token_usage(run, prompt, result))

    @app.post(
        "/v1/images/generations",
        summary="OpenAI-compatible image generation, for runs that draw what a prompt says",
    )
    async def images(req: ImageRequest):
        created = int(time.time())
        d = await asyncio.to_thread(index.describe, req.model)
        seed = req.seed if req.seed is not None else rng.randrange(2**31)
        body, _ = await asyncio.to_thread(validate_generate, _image_job(req, d, seed), d)
        body["novelty"] = False  # the studio's copy check is for the page
        job = jobs.submit(generate_job(index, body, "images"), label=f"images {req.model}")
        result = await jobs.result(job)
        data = [
            {"b64_json": it["png"].split(",", 1)[1], "revised_prompt": it["prompt_read"]}
            for it in result["items"]
        ]
        return {"created": created, "data": data, "output_format": "png", "seed": seed}


def _image_job(req: ImageRequest, d: dict, seed: int) -> GenerateRequest:
    """The studio request an image generation is (requests.validate_generate checks it
    against the run as for the page); GenlabError for what the route itself refuses."""
    _refuse_unsupported(req.model_extra, "images/generations")
    if d["kind"] == "text":
        raise GenlabError(
            f"run {req.model!r} makes text; /v1/images/generations is for runs that draw "
            "what a prompt says (for text, /v1/completions)"
        )
    if not d.get("takes_prompt"):
        raise GenlabError(
            f"run {req.model!r} is a {d['family']} run that takes no prompt; "
            "/v1/images/generations is for runs of a family that draws what a prompt says "
            "(txt2img)"
        )
    if req.response_format == "url":
        raise GenlabError(
            'response_format "url": the studio serves no public URLs; ask for "b64_json" '
            "(the default)"
        )
    h, w = d["shape"][-2:]
    if req.size not in (None, "auto", f"{w}x{h}"):
        raise GenlabError(
            f"size {req.size!r}: run {req.model!r} draws {w}x{h} images; give "
            f'size "{w}x{h}" or leave it out'
        )
    given = {
        "prompt": req.prompt,
        "negative_prompt": req.negative_prompt,
        "guidance": req.guidance,
        "sampling_steps": req.sampling_steps,
        "sampler": req.sampler,
    }
    controls = {k: v for k, v in given.items() if v is not None}
    try:
        return GenerateRequest(
            run=req.model, seed=seed, n=req.n or 1, controls=controls, save=False
        )
    except ValidationError as e:
        err = e.errors()[0]
        raise GenlabError(f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def _refuse_unsupported(extra: dict | None, route: str) -> None:
    """GenlabError naming the first field of OpenAI's request genlab does not take, set."""
    unsupported = {k: v for k, v in (extra or {}).items() if v not in (None, False, 0, 1, {}, [], "")}
    if unsupported:
        raise GenlabError(f"genlab does not take {sorted(unsupported)[0]!r} in {route}")


def _prompt_of(req: CompletionRequest) -> str:
    """The one prompt of ``req``; GenlabError for a field genlab does not take, or for more
    than one prompt."""
    _refuse_unsupported(req.model_extra, "completions")
    prompt = req.prompt if isinstance(req.prompt, str) else "".join(req.prompt[:1])
    if isinstance(req.prompt, list) and len(req.prompt) > 1:
        raise GenlabError("give one prompt (a string)")
    return prompt


def _controls_of(req: CompletionRequest, prompt: str) -> dict:
    """OpenAI's settings as the text families' controls (OpenAI's defaults where unset)."""
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
    return controls


class _CompletionChunks:
    """OpenAI's text_completion objects of one completion: a streamed chunk, or the whole."""

    def __init__(self, cid: str, created: int, model: str):
        self.cid, self.created, self.model = cid, created, model

    def __call__(self, i: int, text: str, finish: str | None) -> dict:
        return {
            "id": self.cid,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"text": text, "index": i, "logprobs": None, "finish_reason": finish}],
        }

    def whole(self, result: dict, seed: int, usage: dict) -> dict:
        return {
            "id": self.cid,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "seed": seed,
            "choices": [
                {"text": it["text"], "index": it["i"], "logprobs": None,
                 "finish_reason": it["finish_reason"]}
                for it in result["items"]
            ],
            "usage": usage,
        }


async def _openai_stream(jobs: JobQueue, job, chunk: _CompletionChunks):
    """The job's events as OpenAI's stream: "data: {chunk}" lines, then "data: [DONE]";
    hanging up cancels the job."""
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


def _token_usage(run, prompt: str, result: dict) -> dict:
    """Tokens in and out, counted by the run's own tokenizer."""
    prompt_tokens = len(run.model.encode_prompt(prompt))
    tok = run.model.tokenizer
    completion_tokens = sum(len(tok.encode(it["text"])) for it in result["items"])
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
