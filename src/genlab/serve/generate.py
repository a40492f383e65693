"""The studio's generation jobs: what a job runs in a worker thread.

Each body takes the job (to report progress, previews and tokens, and to notice a cancel),
a loaded ``Run`` and checked settings (requests.py), and returns the result event's data.
Outputs carry how they were made (``provenance``): a PNG holds it in its text chunks
(outputs/provenance.py), so a PNG saved from the studio and dropped back regenerates the
same pixels.

    fn = generate_job(index, body, kind)   # the job function; jobs.submit(fn) runs it
    # sample_images | explore (interpolate, variations) | strip | say | sample_text

A run trained on sound makes spectrogram images: its items also carry ``wav`` (a data: URI of
the 16-bit WAV Griffin-Lim makes of each, as `genlab sample` writes), its pictures are drawn
low frequencies at the bottom, and it can ``say`` a text (one clip a character, genlab.speech).
"""

from __future__ import annotations

import inspect
import json
import time
from typing import Any

import torch

from genlab.errors import GenlabError
from genlab.models.layers import labels_for, slerp
from genlab.outputs.audio import (
    flip_frequency,
    phase_generator,
    spectrogram_picture,
    to_waves,
    wav_data_uri,
)
from genlab.outputs.images import to_uint8
from genlab.outputs.provenance import data_uri, plain_png, png_with_provenance
from genlab.run import Run
from genlab.serve.gallery import save_to_gallery
from genlab.serve.jobs import Job
from genlab.serve.novelty import image_novelty, text_novelty
from genlab.serve.requests import strip_controls
from genlab.serve.runs import Reference, RunIndex, spectrogram_of
from genlab.speech import join, say_clips

PREVIEW_EVERY = 0.15  # seconds between step previews: a fast sampler does not flood
TOP_ALTERNATIVES = 5


class NotForThisRun(GenlabError):
    """A request this run cannot do (a latent operation on diffusion, ...)."""


def generate_job(index: RunIndex, body: dict, kind: str):
    """The job function for a checked ``body`` (requests.validate_generate) of ``kind``."""
    rid = body["run"]

    def fn(job: Job):
        run = index.load(rid)
        ref = index.reference(rid) if body.get("novelty", True) else None
        if kind == "text":
            return sample_text(job, run, rid, ref, body)
        if body["mode"] == "sample":
            return sample_images(job, run, rid, ref, body)
        if body["mode"] == "say":
            return say(job, run, rid, ref, body)
        return explore(job, run, rid, ref, body)

    return fn


def provenance(run: Run, run_id: str, **how: Any) -> dict[str, Any]:
    """What an output records of how it was made: genlab, the run and its weights, and
    ``how`` (seed, n, mode, controls, index, ...)."""
    return run.provenance(run_id, **how)


# -- images -----------------------------------------------------------------------------
def _sample_labels(run: Run, n: int, controls: dict) -> list[int] | None:
    """One class a sample for a conditional run (None for any other)."""
    if "label" not in run.model.controls or not run.info.num_classes:
        return None
    if not getattr(run.config.model, "conditional", False):
        return None
    return labels_for(n, controls.get("label"), run.info.num_classes)


def _takes_step_hooks(model) -> bool:
    """Whether the model's sample() reports each step (``progress``) and its clean-image
    estimate (``preview``), as a diffusion model's does."""
    return {"progress", "preview"} <= set(inspect.signature(model.sample).parameters)


def sample_images(job: Job, run: Run, run_id: str, ref: Reference, req: dict) -> dict:
    """``n`` images with the seed and controls: the same as `genlab sample` gives."""
    n, seed, controls = req["n"], req["seed"], dict(req["controls"])
    g = torch.Generator(device=run.model.device).manual_seed(seed)
    labels = _sample_labels(run, n, controls)
    kw = dict(controls)
    if labels is not None:
        kw["label"] = labels
    if _takes_step_hooks(run.model):
        hooks = _step_hooks(job, kw, flip=spectrogram_of(run) is not None)
        x = run.model.sample(n, generator=g, **kw, **hooks)
    else:
        x = run.model.sample(n, generator=g, **kw)
    job.check()
    how = {"seed": seed, "n": n, "mode": "sample", "controls": controls}
    return _image_result(run, run_id, ref, x, labels, how, req.get("save", True))


def _prompted(run: Run, controls: dict, j: int) -> tuple[dict, dict]:
    """For a run that draws what a prompt says: (sample ``j``'s controls as it used them,
    its own prompt and negative prompt out of a list of one a sample, the default guidance
    as its value, as `genlab sample` records them; the item's fields: the prompt, and the
    prompt as the encoder read it). For any other run: (``controls``, {})."""
    model = run.model
    if not model.takes_prompt:
        return controls, {}
    c = dict(controls)
    for key in ("prompt", "negative_prompt"):
        if isinstance(c.get(key), list):
            c[key] = c[key][j % len(c[key])]
    if c.get("guidance") is None and hasattr(model, "default_guidance"):
        c["guidance"] = model.default_guidance
    prompt = c.get("prompt") or ""
    return c, {"prompt": prompt, "prompt_read": model.prompt_as_read(prompt)}


def _step_hooks(job: Job, controls: dict, flip: bool = False) -> dict:
    """``progress`` and ``preview`` callbacks that emit job events (previews at most every
    PREVIEW_EVERY seconds, and the last one)."""
    total = controls.get("sampling_steps") or 20
    last = [0.0]

    def progress(i: int) -> None:
        job.emit("progress", {"done": i, "total": total})

    def preview(i: int, x0: torch.Tensor) -> None:
        now = time.monotonic()
        if now - last[0] < PREVIEW_EVERY and i < total:
            return
        last[0] = now
        imgs = to_uint8(x0[:16])
        imgs = flip_frequency(imgs) if flip else imgs  # spectrograms: low frequencies below
        job.emit(
            "preview",
            {"step": i, "total": total, "images": [data_uri(plain_png(im)) for im in imgs]},
        )

    return {"progress": progress, "preview": preview}


def _image_result(run, run_id, ref, x, labels, how: dict, save: bool, index_base=None) -> dict:
    """The result of images ``x``: each as a PNG with its provenance, its novelty, its label
    (and for sound its WAV), kept in the gallery when ``save``."""
    imgs = to_uint8(x)
    audio = spectrogram_of(run)
    novelty = [None] * len(imgs)  # ref None: no novelty asked for (the OpenAI routes)
    if ref is not None:
        pixels = torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous()
        novelty = image_novelty(pixels, ref, flip=audio is not None)
    waves = None
    if audio is not None:  # sound: as `genlab sample` writes it (the default Griffin-Lim)
        waves = to_waves(x, audio, generator=phase_generator(how["seed"]))
        imgs = flip_frequency(imgs)
    items = []
    for i, img in enumerate(imgs):
        # a strip redraws one sample of the batch: its prompt is that sample's
        controls, said = _prompted(run, how["controls"], how.get("index_of", i))
        mine = {**how, "controls": controls}
        meta = provenance(run, run_id, **mine, index=i if index_base is None else index_base[i])
        png = png_with_provenance(img, meta)
        item = {
            "i": i,
            "png": data_uri(png),
            "label": labels[i] if labels else None,
            "meta": meta,
            "novelty": novelty[i],
            **said,
        }
        if waves is not None:
            item["wav"] = wav_data_uri(waves[i], audio.sample_rate)
        if save:
            item["file"] = save_to_gallery(run.path, png, "png")
        items.append(item)
    return {"items": items, "meta": provenance(run, run_id, **how)}


def explore(job: Job, run: Run, run_id: str, ref: Reference, req: dict) -> dict:
    """Latent interpolation, variations of one sample, or (a family with sampling controls)
    one seed across a control's settings."""
    mode, n, seed = req["mode"], req["n"], req["seed"]
    controls = dict(req["controls"])
    if mode == "strip":
        return strip(job, run, run_id, ref, req)
    model = run.model
    if not getattr(model, "has_latent", False) or not hasattr(model, "latents"):
        raise NotForThisRun(f"the {run.config.family} family has no latent space to {mode}")
    g = torch.Generator(device=model.device).manual_seed(seed)
    latent_kw = {k: v for k, v in controls.items() if k != "label"}
    z = model.latents(n, generator=g, **latent_kw)
    labels = _sample_labels(run, n, controls)
    how = {"seed": seed, "n": n, "mode": mode, "controls": controls}
    if mode == "interpolate":
        a, b, frames = req["a"], req["b"], req["frames"]
        _check_index(a, n)
        _check_index(b, n)
        ts = torch.linspace(0, 1, frames)
        zs = torch.cat([slerp(z[a : a + 1], z[b : b + 1], float(t)) for t in ts])
        y = None
        if labels is not None:
            y = [labels[a] if t < 0.5 or labels[a] == labels[b] else labels[b] for t in ts]
        how.update(a=a, b=b, frames=frames)
    else:  # variations
        i, spread, count = req["index"], req["spread"], req["count"]
        _check_index(i, n)
        gv = torch.Generator(device=model.device).manual_seed(seed * 1_000_003 + i + 1)
        noise = torch.randn(count, z.shape[1], generator=gv, device=model.device)
        zs = z[i][None] + spread * noise
        y = [labels[i]] * count if labels is not None else None
        how.update(index_of=i, spread=spread, count=count)
    x = model.from_latents(zs, y)
    job.check()
    return _image_result(run, run_id, ref, x, y, how, req.get("save", True))


def strip(job: Job, run: Run, run_id: str, ref: Reference, req: dict) -> dict:
    """One sample of the batch (``index``) redrawn at each of a control's settings (``vary``:
    a control of requests.STRIP_CONTROLS the family takes)."""
    takes = strip_controls(run.model)
    if not takes:
        raise NotForThisRun("a strip across settings is for diffusion runs")
    vary = req["vary"]
    name, values = vary["name"], vary["values"]
    if name not in takes:
        raise NotForThisRun("a strip varies guidance or sampling_steps")
    n, seed, index = req["n"], req["seed"], req.get("index", 0)
    _check_index(index, n)
    xs, labels_out = [], []
    for k, v in enumerate(values):
        controls = dict(req["controls"])
        controls[name] = v
        controls = run.model.check_controls(controls)
        g = torch.Generator(device=run.model.device).manual_seed(seed)
        labels = _sample_labels(run, n, controls)
        kw = dict(controls)
        if labels is not None:
            kw["label"] = labels
        x = run.model.sample(n, generator=g, **kw)
        xs.append(x[index : index + 1])
        labels_out.append(labels[index] if labels else None)
        job.emit("progress", {"done": k + 1, "total": len(values)})
    how = {
        "seed": seed,
        "n": n,
        "mode": "strip",
        "controls": req["controls"],
        "vary": vary,
        "index_of": index,  # the sample of the batch redrawn at each setting
    }
    out = _image_result(run, run_id, ref, torch.cat(xs), None, how, req.get("save", True))
    for item, v, lab in zip(out["items"], values, labels_out):
        item["value"] = v
        item["label"] = lab
    return out


def _check_index(i: int, n: int) -> None:
    if not 0 <= i < n:
        raise NotForThisRun(f"sample index {i} is outside the batch of {n}")


# -- sound ------------------------------------------------------------------------------
def say(job: Job, run: Run, run_id: str, ref: Reference, req: dict) -> dict:
    """``text`` spoken by a class-conditional audio run: one clip a character, trimmed and
    joined (genlab.speech); one item with the WAV and its spectrogram."""
    spec = spectrogram_of(run)
    if spec is None:
        raise NotForThisRun("saying a text needs a run trained on sound")
    text, seed = req["text"] or "", req["seed"]
    controls = {k: v for k, v in req["controls"].items() if k != "label"}
    clips = say_clips(run, text, seed=seed, controls=controls)
    job.check()
    wave = join(clips, spec.sample_rate)
    how = {"seed": seed, "n": 1, "mode": "say", "text": text, "controls": controls}
    meta = provenance(run, run_id, **how, index=0)
    png = png_with_provenance(spectrogram_picture(spec, wave), meta)
    item = {
        "i": 0,
        "png": data_uri(png),
        "wav": wav_data_uri(wave, spec.sample_rate),
        "seconds": round(len(wave) / spec.sample_rate, 3),
        "label": None,
        "text": text,
        "meta": meta,
        "novelty": None,
    }
    if req.get("save", True):
        item["file"] = save_to_gallery(run.path, png, "png")
    return {"items": [item], "meta": provenance(run, run_id, **how)}


# -- text -------------------------------------------------------------------------------
def sample_text(job: Job, run: Run, run_id: str, ref: Reference, req: dict) -> dict:
    """``n`` continuations, streamed token by token with each token's probability and the
    alternatives the model weighed; the same text as `genlab sample` with this seed."""
    n, seed, controls = req["n"], req["seed"], dict(req["controls"])
    model = run.model
    g = torch.Generator(device=model.device).manual_seed(seed)
    on_probs, on_text = _token_events(job, model.tokenizer)
    finished: list[str] = []
    texts = model.sample(
        n, generator=g, on_text=on_text, on_probs=on_probs, finished=finished, **controls
    )
    prompt = controls.get("prompt", "")
    how = {"seed": seed, "n": n, "mode": "sample", "controls": controls}
    items = []
    for i, text in enumerate(texts):
        meta = provenance(run, run_id, **how, index=i)
        item = {
            "i": i,
            "prompt": prompt,
            "text": text,
            "finish_reason": finished[i] if finished else None,
            "meta": meta,
            "novelty": text_novelty(text, ref),
        }
        if req.get("save", True):
            doc = {"prompt": prompt, "text": text, "meta": meta}
            item["file"] = save_to_gallery(
                run.path, json.dumps(doc, ensure_ascii=False, indent=1).encode(), "json"
            )
        items.append(item)
    return {"items": items, "meta": provenance(run, run_id, **how)}


def _token_events(job: Job, tok):
    """(on_probs, on_text) for a text model's sample(): each piece of text becomes a
    "token" event with its probability and the TOP_ALTERNATIVES the model weighed."""
    step: dict[str, Any] = {}

    def on_probs(probs: torch.Tensor, drawn: torch.Tensor) -> None:
        job.check()
        step["probs"], step["drawn"] = probs, drawn

    def on_text(i: int, piece: str) -> None:
        data: dict[str, Any] = {"i": i, "text": piece}
        probs = step.get("probs")
        if probs is not None:
            row = probs[i].float()
            p, ids = torch.topk(row, min(TOP_ALTERNATIVES, row.numel()))
            data["p"] = round(float(row[int(step["drawn"][i])]), 4)
            data["top"] = [
                {"text": tok.decode([int(t)]), "p": round(float(q), 4)}
                for q, t in zip(p.tolist(), ids.tolist())
                if q > 0
            ]
        job.emit("token", data)

    return on_probs, on_text
