"""The studio's model work: what a job runs in a worker thread.

Each function takes the job (to report progress, previews and tokens, and to notice a
cancel), a loaded ``Run`` and checked settings, and returns the result event's data.
Outputs carry how they were made (``provenance``): a PNG holds it in its text chunks, so
a PNG saved from the studio and dropped back regenerates the same pixels.

    meta = provenance(run, "vae", seed=0, n=16, index=3, mode="sample", controls={...})
    png = png_with_provenance(uint8_hwc, meta)    # bytes; read_provenance(png) -> meta

A run trained on sound makes spectrogram images: its items also carry ``wav`` (a data: URI of
the 16-bit WAV Griffin-Lim makes of each, as `genlab sample` writes), its pictures are drawn
low frequencies at the bottom, and it can ``say`` a text (one clip a character, genlab.speech).
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, PngImagePlugin

from genlab.errors import GenlabError
from genlab.fsutil import write_bytes_atomic
from genlab.models.layers import labels_for, slerp
from genlab.outputs.audio import flip_frequency, phase_generator, to_waves
from genlab.outputs.images import to_uint8
from genlab.run import Run
from genlab.rundir import read_config
from genlab.serve.jobs import Job
from genlab.serve.runs import Reference
from genlab.version import __version__

PREVIEW_EVERY = 0.15  # seconds between diffusion previews: a fast sampler does not flood
TOP_ALTERNATIVES = 5
PNG_KEY = "genlab"  # the PNG text chunk holding the provenance JSON
MAX_PNG_SIDE = 4096  # a dropped PNG larger than this is refused before decoding
GALLERY = "studio"  # the gallery folder inside a run


class Unfit(GenlabError):
    """A request this run cannot do (a latent operation on diffusion, ...)."""


# -- provenance ---------------------------------------------------------------------------
def provenance(run: Run, run_id: str, **how: Any) -> dict[str, Any]:
    return {
        "genlab": __version__,
        "run": run_id,
        "family": run.config.family,
        "weights": run.weights,
        "weights_sha256": run.weights_sha256,
        "step": run.step,
        **how,
    }


def png_with_provenance(img: np.ndarray, meta: dict[str, Any]) -> bytes:
    """A PNG of one (H, W, C) uint8 image with ``meta`` in an iTXt chunk (and a one-line
    "parameters" summary, as image UIs write one)."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt(PNG_KEY, json.dumps(meta, sort_keys=True))
    controls = ", ".join(f"{k}: {v}" for k, v in (meta.get("controls") or {}).items())
    summary = f"run: {meta.get('run')}, seed: {meta.get('seed')}, index: {meta.get('index')}"
    info.add_text("parameters", f"{summary}, {controls}" if controls else summary)
    info.add_text("Software", f"genlab {__version__}")
    buf = io.BytesIO()
    Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def read_provenance(data: bytes) -> dict[str, Any]:
    """The provenance a studio PNG carries; GenlabError for anything else."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise GenlabError("that file is not a PNG; drop a PNG saved from the studio")
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w > MAX_PNG_SIDE or h > MAX_PNG_SIDE:
                raise GenlabError(f"that PNG is {w}x{h}, larger than any studio output")
            text = dict(getattr(im, "text", {}) or {})
    except GenlabError:
        raise
    except Exception as e:
        raise GenlabError(f"that PNG cannot be read ({type(e).__name__}); is it complete?") from None
    if PNG_KEY not in text:
        raise GenlabError(
            "that PNG has no genlab provenance (it was not saved from the studio, or an editor "
            "dropped its text chunks)"
        )
    try:
        meta = json.loads(text[PNG_KEY])
    except ValueError:
        raise GenlabError("that PNG's genlab provenance is not valid JSON") from None
    if not isinstance(meta, dict):
        raise GenlabError("that PNG's genlab provenance is not a JSON object")
    return meta


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def plain_png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(buf, "PNG")
    return buf.getvalue()


# -- novelty ---------------------------------------------------------------------------
def image_novelty(
    x_uint8_nchw: torch.Tensor, ref: Reference, flip: bool = False
) -> list[dict[str, Any]]:
    """Each image's nearest training image, its distance, and the copy verdict (``flip``:
    the nearest drawn as a spectrogram, low frequencies at the bottom)."""
    flat = x_uint8_nchw.reshape(len(x_uint8_nchw), -1).double() / 255.0
    d = torch.cdist(flat, ref.images)
    dist, idx = d.min(dim=1)
    out = []
    for i in range(len(flat)):
        near = ref.raw[int(idx[i])].permute(1, 2, 0).numpy()
        near = flip_frequency(near[None])[0] if flip else near
        out.append(
            {
                "nearest": data_uri(plain_png(near)),
                "distance": round(float(dist[i]), 4),
                "threshold": round(float(ref.threshold), 4),
                "copy": bool(dist[i] < ref.threshold),
            }
        )
    return out


def text_novelty(text: str, ref: Reference) -> dict[str, Any]:
    length, start, end = ref.index.copied_span(text)
    return {
        "span_words": length,
        "span": text[start:end] if length else "",
        "start": start if length else None,
        "end": end if length else None,
    }


# -- images -----------------------------------------------------------------------------
def _labels(run: Run, n: int, controls: dict) -> list[int] | None:
    if "label" not in run.model.controls or not run.info.num_classes:
        return None
    if not getattr(run.config.model, "conditional", False):
        return None
    return labels_for(n, controls.get("label"), run.info.num_classes)


def sample_images(job: Job, run: Run, run_id: str, ref: Reference, req: dict) -> dict:
    """``n`` images with the seed and controls: the same as `genlab sample` gives."""
    n, seed, controls = req["n"], req["seed"], dict(req["controls"])
    g = torch.Generator(device=run.model.device).manual_seed(seed)
    labels = _labels(run, n, controls)
    kw = dict(controls)
    if labels is not None:
        kw["label"] = labels
    if run.config.family == "diffusion":
        hooks = _diffusion_hooks(job, kw, flip=spectrogram_of(run) is not None)
        x = run.model.sample(n, generator=g, **kw, **hooks)
    else:
        x = run.model.sample(n, generator=g, **kw)
    job.check()
    how = {"seed": seed, "n": n, "mode": "sample", "controls": controls}
    return _image_result(run, run_id, ref, x, labels, how, req.get("save", True))


def _diffusion_hooks(job: Job, controls: dict, flip: bool = False) -> dict:
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
    imgs = to_uint8(x)
    audio = spectrogram_of(run)
    novelty = image_novelty(
        torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous(), ref, flip=audio is not None
    )
    waves = None
    if audio is not None:  # sound: as `genlab sample` writes it (the default Griffin-Lim)
        waves = to_waves(x, audio, generator=phase_generator(how["seed"]))
        imgs = flip_frequency(imgs)
    items = []
    for i, img in enumerate(imgs):
        meta = provenance(run, run_id, **how, index=i if index_base is None else index_base[i])
        png = png_with_provenance(img, meta)
        item = {
            "i": i,
            "png": data_uri(png),
            "label": labels[i] if labels else None,
            "meta": meta,
            "novelty": novelty[i],
        }
        if waves is not None:
            item["wav"] = wav_data_uri(waves[i], audio.sample_rate)
        if save:
            item["file"] = save_to_gallery(run.path, png, "png")
        items.append(item)
    return {"items": items, "meta": provenance(run, run_id, **how)}


def explore(job: Job, run: Run, run_id: str, ref: Reference, req: dict) -> dict:
    """Latent interpolation, variations of one sample, or (diffusion) one seed across a
    control's settings."""
    mode, n, seed = req["mode"], req["n"], req["seed"]
    controls = dict(req["controls"])
    if mode == "strip":
        return _strip(job, run, run_id, ref, req)
    model = run.model
    if not getattr(model, "has_latent", False) or not hasattr(model, "latents"):
        raise Unfit(f"the {run.config.family} family has no latent space to {mode}")
    g = torch.Generator(device=model.device).manual_seed(seed)
    latent_kw = {k: v for k, v in controls.items() if k != "label"}
    z = model.latents(n, generator=g, **latent_kw)
    labels = _labels(run, n, controls)
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


def _strip(job: Job, run: Run, run_id: str, ref: Reference, req: dict) -> dict:
    if run.config.family != "diffusion":
        raise Unfit("a strip across settings is for diffusion runs")
    vary = req["vary"]
    name, values = vary["name"], vary["values"]
    if name not in ("guidance", "sampling_steps"):
        raise Unfit("a strip varies guidance or sampling_steps")
    n, seed, index = req["n"], req["seed"], req.get("index", 0)
    _check_index(index, n)
    xs, labels_out = [], []
    for k, v in enumerate(values):
        controls = dict(req["controls"])
        controls[name] = v
        controls = run.model.check_controls(controls)
        g = torch.Generator(device=run.model.device).manual_seed(seed)
        labels = _labels(run, n, controls)
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
        raise Unfit(f"sample index {i} is outside the batch of {n}")


# -- sound ------------------------------------------------------------------------------
def spectrogram_of(run: Run):
    """The Spectrogram of a run trained on sound; None for any other run."""
    audio = getattr(run.info, "audio", None)
    if not audio:
        return None
    from genlab.data.spectrogram import Spectrogram

    return Spectrogram.from_dict(audio)


def is_audio_run(path: Path) -> bool:
    """Whether the run in ``path`` was trained on sound (its config names a spectrogram)."""
    return bool(read_config(path)[1].audio)


def wav_data_uri(wave: np.ndarray, rate: int) -> str:
    from genlab.outputs.audio import wav_bytes

    return "data:audio/wav;base64," + base64.b64encode(wav_bytes(wave, rate)).decode("ascii")


def spectrogram_picture(spec, wave: np.ndarray) -> np.ndarray:
    """(F, T', 1) uint8 of a waveform of any length, normalised as the run's images and drawn
    low frequencies at the bottom (a said text is longer than one clip)."""
    from dataclasses import replace

    length = max(spec.n_fft, -(-len(wave) // spec.hop) * spec.hop)
    padded = np.zeros(length, np.float32)
    padded[: len(wave)] = wave
    img = replace(spec, samples=length).to_image(torch.from_numpy(padded)[None])
    return flip_frequency(to_uint8(img))[0]


def say(job: Job, run: Run, run_id: str, ref: Reference, req: dict) -> dict:
    """``text`` spoken by a class-conditional audio run: one clip a character, trimmed and
    joined (genlab.speech); one item with the WAV and its spectrogram."""
    from genlab.speech import join, say_clips

    spec = spectrogram_of(run)
    if spec is None:
        raise Unfit("saying a text needs a run trained on sound")
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
    model, tok = run.model, run.model.tokenizer
    g = torch.Generator(device=model.device).manual_seed(seed)
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


# -- the gallery --------------------------------------------------------------------------
def save_to_gallery(run_dir: Path, data: bytes, ext: str) -> str:
    """Keep one output in RUN/studio/ (numbered files, written atomically); its name."""
    folder = Path(run_dir) / GALLERY
    folder.mkdir(exist_ok=True)
    with _gallery_lock:
        taken = [int(p.stem) for p in folder.iterdir() if p.stem.isdigit()]
        name = f"{max(taken, default=-1) + 1:06d}.{ext}"
        write_bytes_atomic(folder / name, data)
    return name


def gallery(run_dir: Path, limit: int = 60) -> list[dict[str, Any]]:
    """The newest ``limit`` outputs of the run's gallery (only names genlab writes)."""
    folder = Path(run_dir) / GALLERY
    if not folder.is_dir():
        return []
    inside = Path(run_dir).resolve()
    files = sorted(
        (
            p
            for p in folder.iterdir()
            if p.stem.isdigit()
            and p.suffix in (".png", ".json")
            and p.resolve().is_relative_to(inside)  # a link out of the run is not followed
        ),
        key=lambda p: int(p.stem),
        reverse=True,
    )[:limit]
    out = []
    for p in files:
        try:
            data = p.read_bytes()
            if p.suffix == ".png":
                out.append(
                    {"file": p.name, "kind": "image", "png": data_uri(data), "meta": read_provenance(data)}
                )
            else:
                doc = json.loads(data)
                out.append(
                    {
                        "file": p.name,
                        "kind": "text",
                        "text": str(doc.get("text", "")),
                        "prompt": str(doc.get("prompt", "")),
                        "meta": doc.get("meta", {}),
                    }
                )
        except (OSError, ValueError, GenlabError):
            continue  # a file someone else put there: not ours to show
    return out


_gallery_lock = threading.Lock()
