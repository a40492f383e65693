"""What the studio accepts: the request bodies (pydantic models, unknown fields refused) and
the check of a generation against the run it names, in one place.

    body, kind = validate_generate(req, index.describe(req.run))   # GenlabError: a 400 line
    # body: the request as used (n and every control's default filled in, types checked)

A rule of a family is read from what the family declares (its controls, ``has_latent``), never
from its name: a family that takes ``guidance`` or ``sampling_steps`` can be swept in a strip.
"""

from __future__ import annotations

import base64
import binascii
import typing
from typing import Any, Literal

from pydantic import Field

from genlab.errors import GenlabError
from genlab.registry import get
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
from genlab.speech import labels_of

StripControl = Literal["guidance", "sampling_steps"]
STRIP_CONTROLS: tuple[str, ...] = typing.get_args(StripControl)  # what a strip can vary


class Vary(Strict):
    name: StripControl
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


def strip_controls(family: Any) -> tuple[str, ...]:
    """The controls a strip can vary for ``family`` (a model class or model): those of
    STRIP_CONTROLS it declares; none, and it cannot be swept."""
    return tuple(k for k in STRIP_CONTROLS if k in family.controls)


def validate_generate(req: GenerateRequest, d: dict[str, Any]) -> tuple[dict, str]:
    """``req`` checked against ``d``, the description of its run (RunIndex.describe): the
    body as used (``n`` and the controls' defaults filled in, strip steps as integers) and
    the run's kind ("images" or "text"). GenlabError names what is wrong."""
    if not d["ready"]:
        raise GenlabError(f"run {req.run!r} has no weights yet (still starting to train)")
    kind = d["kind"]
    n = req.n or (16 if kind == "images" else 1)
    if kind == "text" and n > MAX_TEXTS:
        raise GenlabError(f"n={n}: at most {MAX_TEXTS} texts at once")
    family = get(d["family"])
    full = family.check_controls({k: v for k, v in req.controls.items() if v is not None})
    _check_sampling_steps(req, full, d.get("timesteps"))
    _check_text_controls(full)
    _check_prompts(full, d, n)
    _check_labels(req, full, d)
    if req.mode == "strip":
        _check_strip(req, family)
    elif req.mode == "say":
        _check_say(req, full, d)
    elif req.mode != "sample" and not d["has_latent"]:
        raise GenlabError(f"the {d['family']} family has no latent space to {req.mode}")
    _check_batch(req, kind, n)
    body = req.model_dump()
    body["n"], body["controls"] = n, full  # as used: defaults filled in, types checked
    if body["vary"] is not None and req.vary.name == "sampling_steps":
        body["vary"]["values"] = [int(v) for v in req.vary.values]
    return body, kind


def _check_sampling_steps(req: GenerateRequest, full: dict, most: int | None) -> None:
    """At most MAX_STEPS, and no more than the model's timesteps (``most``), strip included."""
    steps = full.get("sampling_steps")
    if steps is not None and steps > MAX_STEPS:
        raise GenlabError(f"sampling_steps={steps}: the studio takes at most {MAX_STEPS}")
    asked = [steps] if steps is not None else []
    if req.vary is not None and req.vary.name == "sampling_steps":
        asked += [int(v) for v in req.vary.values]
    for k in asked:
        if most is not None and k > most:
            raise GenlabError(f"sampling_steps={k} is more than this model's {most} timesteps")


def _check_text_controls(full: dict) -> None:
    if full.get("max_new_tokens", 0) > MAX_NEW_TOKENS:
        raise GenlabError(f"max_new_tokens: the studio takes at most {MAX_NEW_TOKENS}")
    stops = full.get("stop") or []
    stops = [stops] if isinstance(stops, str) else stops
    if len(stops) > MAX_STOPS or any(len(s) > 100 for s in stops):
        raise GenlabError(f"stop: at most {MAX_STOPS} strings of 100 characters")


def _check_prompts(full: dict, d: dict, n: int) -> None:
    """Each prompt (and negative prompt) at most MAX_PROMPT characters, at most one a
    sample; a run that draws what a prompt says (``takes_prompt``) needs a non-empty one."""
    for key in ("prompt", "negative_prompt"):
        v = full.get(key)
        given = v if isinstance(v, list) else [] if v is None else [v]
        if any(len(p) > MAX_PROMPT for p in given):
            raise GenlabError(f"{key}: at most {MAX_PROMPT} characters")
        if isinstance(v, list) and len(v) > n:
            raise GenlabError(f"{key}: {len(v)} prompts for {n} samples; give one, or one a sample")
        if isinstance(v, list) and not v:
            raise GenlabError(f"{key}: give one prompt (a string), or a list of one a sample")
    if not d.get("takes_prompt"):
        return
    prompts = full.get("prompt")
    prompts = prompts if isinstance(prompts, list) else [prompts or ""]
    if any(not p.strip() for p in prompts):
        raise GenlabError(
            'prompt: empty; say what to draw, e.g. "a small red circle, top left" (the empty '
            "prompt is the unconditional model guidance steers away from)"
        )


def _check_labels(req: GenerateRequest, full: dict, d: dict) -> None:
    if "label" in full and full["label"] is not None and not d["conditional"]:
        raise GenlabError(f"run {req.run!r} is not conditional: it takes no label")
    if full.get("label") is not None:
        labels = full["label"] if isinstance(full["label"], list) else [full["label"]]
        if any(lab >= len(d["classes"]) for lab in labels):
            raise GenlabError(f"label: this run has {len(d['classes'])} classes")


def _check_strip(req: GenerateRequest, family: Any) -> None:
    if req.vary is None or req.vary.name not in strip_controls(family):
        raise GenlabError("mode strip needs a diffusion run and vary {name, values}")
    for v in req.vary.values:
        if req.vary.name == "sampling_steps" and not 1 <= v <= MAX_STEPS:
            raise GenlabError(f"sampling_steps {v} is outside [1, {MAX_STEPS}]")
        if req.vary.name == "guidance" and not 0 <= v <= 50:
            raise GenlabError(f"guidance {v} is outside [0, 50]")


def _check_say(req: GenerateRequest, full: dict, d: dict) -> None:
    if not d["audio"] or not d["conditional"]:
        raise GenlabError("mode say needs a class-conditional run trained on sound")
    if full.get("label") is not None:
        raise GenlabError("mode say: the text picks the classes; send no label")
    labels_of(req.text or "", d["classes"], f"run {req.run!r}")


def _check_batch(req: GenerateRequest, kind: str, n: int) -> None:
    """Text runs only sample, ``text`` is for mode say, and the indexes are in the batch."""
    if kind == "text" and req.mode != "sample":
        raise GenlabError("text runs only sample")
    if req.text is not None and req.mode != "say":
        raise GenlabError("text is for mode say")
    for idx in (req.a, req.b, req.index):
        if req.mode not in ("sample", "say") and idx >= n:
            raise GenlabError(f"sample index {idx} is outside the batch of {n}")


def provenance_png(req: ProvenanceRequest) -> bytes:
    """The bytes of the dropped PNG (base64, a data: URI's prefix allowed)."""
    try:
        return base64.b64decode(req.png.split(",", 1)[-1], validate=True)
    except (binascii.Error, ValueError):
        raise GenlabError("png: not base64") from None
