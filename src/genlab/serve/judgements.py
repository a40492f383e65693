"""The studio's human-judgement routes: blind real-or-generated trials (HYPE, Zhou et al.
2019) and pairwise preferences between runs (Bradley-Terry), each answer appended to the
run's judgements.jsonl (see metrics/human.py for the storage and the statistics).

    POST /api/trials {"kind": "real_or_generated", "run": "vae"}   -> {"trial", "png"}
    POST /api/judgements {"trial": ..., "answer": "real"}           -> recorded, with a summary
    GET  /api/judgements?runs=vae,gan                               -> HYPE and Bradley-Terry

The truth of each trial stays on the server (the page cannot peek); trials are forgotten
once answered, or when more than MAX_TRIALS are open.
"""

from __future__ import annotations

import asyncio
import collections
import secrets
import threading
from pathlib import Path
from typing import Any, Literal

import torch
from fastapi import FastAPI, HTTPException
from pydantic import Field

from genlab.errors import GenlabError
from genlab.metrics import human
from genlab.outputs.audio import flip_frequency, phase_generator, to_waves, wav_data_uri
from genlab.outputs.images import to_uint8
from genlab.outputs.provenance import data_uri, plain_png
from genlab.serve.jobs import JobQueue
from genlab.serve.limits import MAX_SEED, MAX_TRIALS, Strict
from genlab.serve.runs import RunIndex, spectrogram_of


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


class OpenTrials:
    """The trials handed out and not answered yet, their truth kept here (never sent); at
    most MAX_TRIALS, the oldest forgotten first."""

    def __init__(self):
        self._trials: collections.OrderedDict[str, dict] = collections.OrderedDict()
        self._lock = threading.Lock()

    def keep(self, t: dict) -> str:
        """Keep trial ``t``; its id."""
        tid = secrets.token_hex(12)
        with self._lock:
            self._trials[tid] = t
            while len(self._trials) > MAX_TRIALS:
                self._trials.popitem(last=False)
        return tid

    def take(self, tid: str) -> dict | None:
        """Trial ``tid``, forgotten once taken (None: answered already, or too old)."""
        with self._lock:
            return self._trials.pop(tid, None)


def add_routes(app: FastAPI, index: RunIndex, jobs: JobQueue, rng) -> None:
    trials = OpenTrials()

    @app.post("/api/trials", summary="One blind item (real or generated) or one pair to judge")
    async def new_trial(req: TrialRequest):
        if req.kind == "real_or_generated":
            if not req.run:
                raise GenlabError("a real-or-generated trial needs run")
            index.path(req.run)
            job = jobs.submit(lambda j: real_or_generated(index, rng, req.run), label="trial")
            t = await jobs.result(job)
            tid = trials.keep({"kind": req.kind, **t})
            return {"trial": tid, **t["item"]}
        if not req.runs or req.runs[0] == req.runs[1]:
            raise GenlabError("a pairwise trial needs two different runs")
        for rid in req.runs:
            index.path(rid)
        seed = req.seed if req.seed is not None else rng.randrange(2**31)
        job = jobs.submit(
            lambda j: pairwise(index, rng, req.runs, seed, req.controls), label="pair"
        )
        t = await jobs.result(job)
        refs = [await asyncio.to_thread(run_ref, index, rid) for rid, _ in t["sides"]]
        tid = trials.keep({"kind": req.kind, "refs": refs, **t})
        return {"trial": tid, "left": t["sides"][0][1], "right": t["sides"][1][1]}

    @app.post("/api/judgements", summary="Record one answer (appended to the run's judgements.jsonl)")
    async def judge(req: JudgementRequest):
        t = trials.take(req.trial)
        if t is None:
            raise HTTPException(404, "no such trial (answered already, or too old); ask for a new one")
        if t["kind"] == "real_or_generated":
            rec = _real_or_generated_record(t, req)
            await asyncio.to_thread(human.append, Path(t["run"]["path"]), rec)
            runs = [t["run"]["id"]]
            out = {"correct": rec["correct"], "truth": t["truth"]}
        else:
            refs = t["refs"]
            rec = _pairwise_record(t, req)
            rec = await asyncio.to_thread(human.append, Path(refs[0]["path"]), rec)
            await asyncio.to_thread(human.append, Path(refs[1]["path"]), rec)
            runs = [r["id"] for r in refs]
            out = {"correct": None, "truth": None}
        summary = await asyncio.to_thread(summary_of, index, runs)
        return {"recorded": True, **out, "summary": summary}

    @app.get("/api/judgements", summary="HYPE∞ and Bradley–Terry figures of the given runs")
    async def get_judgements(runs: str = ""):
        ids = [r for r in runs.split(",") if r][:16]
        for rid in ids:
            index.path(rid)
        return await asyncio.to_thread(summary_of, index, ids)


# -- the trials (in a worker thread) ------------------------------------------------------
def run_ref(index: RunIndex, rid: str) -> dict:
    """How a judgement names a run: id, folder name and path, and its weights' sha256."""
    path = index.path(rid)
    run = index.load(rid)
    return {"id": rid, "name": path.name, "path": str(path), "weights_sha256": run.weights_sha256}


def real_or_generated(index: RunIndex, rng, rid: str) -> dict:
    """One blind item of run ``rid``: a held-out real one or a generated one, by a coin. A
    run that draws what a prompt says is judged on the captions of held-out images: the
    item shows a caption, beside that image or one drawn from the caption."""
    run, ref = index.load(rid), index.reference(rid)
    truth = rng.choice(["real", "generated"])
    seed = rng.randrange(2**31)
    g = torch.Generator().manual_seed(seed)
    if run.info.kind == "text":
        fake = run.model.sample(1, generator=g, max_new_tokens=300)[0]
        item = {"text": _real_passage(fake, ref, rng) if truth == "real" else _cut_at_word(fake)}
    else:
        spec = spectrogram_of(run)
        k = rng.randrange(len(ref.test))
        kw = _prompt_kw(run, ref, k) or _labels_kw(run, rng)
        if truth == "real":  # sound: a person listens to a real clip as recorded
            x = ref.test[k].permute(1, 2, 0).numpy()
            wave = None if spec is None else ref.test_wave[k].numpy()
        else:
            fake = run.model.sample(1, generator=g, **kw)
            x = to_uint8(fake)[0]
            wave = _generated_wave(fake, spec, seed)
        item = {**_judged_item(x, spec, wave), **_shown_prompt(kw)}
    return {"truth": truth, "item": item, "seed": seed, "run": run_ref(index, rid),
            "data": run.info.kind}


def _prompt_kw(run, ref, k: int) -> dict:
    """{"prompt": the caption of held-out image ``k``} for a run that takes a prompt, {}
    for any other."""
    if not run.model.takes_prompt:
        return {}
    if not ref.captions:
        raise GenlabError("this run's data has no captions of held-out images to prompt it with")
    return {"prompt": ref.captions[k]}


def _shown_prompt(kw: dict) -> dict:
    return {"prompt": kw["prompt"]} if "prompt" in kw else {}


def pairwise(index: RunIndex, rng, rids: list[str], seed: int, controls: dict) -> dict:
    """One sample of each of two runs of the same kind, with the same seed, in random order;
    two runs that take a prompt draw the same one (``controls``', else the caption of a
    held-out image of the first run's data)."""
    sides = []
    kinds = set()
    controls = _pair_prompt(index, rng, rids, controls)
    for rid in rids:
        run = index.load(rid)
        kinds.add(run.info.kind)
        c = {k: v for k, v in controls.items() if k in run.model.controls and v is not None}
        g = torch.Generator().manual_seed(seed)
        if run.info.kind == "text":
            c.setdefault("max_new_tokens", 200)
            sides.append((rid, {"text": run.model.sample(1, generator=g, **c)[0]}))
        else:
            fake = run.model.sample(1, generator=g, **run.model.check_controls(c))
            x, spec = to_uint8(fake)[0], spectrogram_of(run)
            wave = _generated_wave(fake, spec, seed)
            sides.append((rid, _judged_item(x, spec, wave)))
    if len(kinds) != 1:
        raise GenlabError("a pairwise test needs two runs of the same kind (images or text)")
    rng.shuffle(sides)
    if controls.get("prompt") is not None and kinds == {"images"}:
        for _, item in sides:
            item["prompt"] = controls["prompt"]
    return {"sides": sides, "seed": seed, "controls": controls, "data": kinds.pop()}


def _pair_prompt(index: RunIndex, rng, rids: list[str], controls: dict) -> dict:
    """``controls`` with the prompt both runs draw when they take one; GenlabError when one
    takes a prompt and the other does not (they would not draw the same thing)."""
    takes = [index.load(rid).model.takes_prompt for rid in rids]
    if not any(takes):
        return controls
    if not all(takes):
        raise GenlabError(
            "a pairwise test of a run that takes a prompt needs another that takes one"
        )
    if controls.get("prompt"):
        return controls
    ref = index.reference(rids[0])
    return {**controls, **_prompt_kw(index.load(rids[0]), ref, rng.randrange(len(ref.test)))}


def _generated_wave(fake, spec, seed: int):
    """The sound of a generated spectrogram ``fake`` (as `genlab sample` writes it with
    ``seed``); None for a run that makes images (``spec`` None)."""
    if spec is None:
        return None
    return to_waves(fake, spec, generator=phase_generator(seed))[0]


def _judged_item(x, spec, wave) -> dict:
    """An image as a person judges it: a PNG; for sound (``spec``) the picture drawn low
    frequencies at the bottom, beside the clip (``wave``) to listen to."""
    if spec is None:
        return {"png": data_uri(plain_png(x))}
    return {
        "png": data_uri(plain_png(flip_frequency(x[None])[0])),
        "wav": wav_data_uri(wave, spec.sample_rate),
    }


# -- the answers --------------------------------------------------------------------------
def _real_or_generated_record(t: dict, req: JudgementRequest) -> dict:
    if req.answer not in ("real", "generated"):
        raise GenlabError("answer real or generated")
    return {
        "kind": "real_or_generated",
        "data": t["data"],
        "run": t["run"],
        "truth": t["truth"],
        "answer": req.answer,
        "correct": req.answer == t["truth"],
        "seed": t["seed"],
        "rater": req.rater,
    }


def _pairwise_record(t: dict, req: JudgementRequest) -> dict:
    if req.answer not in ("left", "right", "tie"):
        raise GenlabError("answer left, right or tie")
    refs = t["refs"]
    winner = None if req.answer == "tie" else refs[0 if req.answer == "left" else 1]["path"]
    return {
        "kind": "pairwise",
        "data": t["data"],
        "runs": refs,
        "answer": req.answer,
        "winner": winner,
        "seed": t["seed"],
        "controls": t["controls"],
        "rater": req.rater,
    }


def summary_of(index: RunIndex, run_ids: list[str]) -> dict:
    """HYPE and Bradley-Terry figures of the runs, each named by its id."""
    paths = {str(index.path(r)): r for r in run_ids}
    s = human.summary([Path(p) for p in paths])
    hype = {paths.get(k, k): v for k, v in s.get("hype", {}).items() if k in paths}
    bt = dict(s.get("bradley_terry", {}))
    bt["scores"] = [
        {**row, "run": paths.get(row.get("path"), row.get("name"))}
        for row in bt.get("scores", [])
    ]
    for row in bt["scores"]:
        row.pop("path", None)
    return {"hype": hype, "bradley_terry": bt}


def _labels_kw(run, rng) -> dict:
    if run.info.num_classes and getattr(run.config.model, "conditional", False):
        return {"label": rng.randrange(run.info.num_classes)}
    return {}


def _cut_at_word(text: str, limit: int = 300) -> str:
    text = text.strip()[:limit]
    cut = text.rfind(" ")
    return text[:cut] if cut > limit // 2 else text


def _real_passage(like: str, ref, rng) -> str:
    """A real held-out passage about as long as the generated text ``like``."""
    length = max(80, len(_cut_at_word(like)))
    doc = rng.choice(ref.passages)
    start = rng.randrange(max(1, len(doc) - length))
    space = doc.find(" ", start)
    start = space + 1 if 0 <= space < start + 40 else start
    return _cut_at_word(doc[start : start + length + 40], length)
