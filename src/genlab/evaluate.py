"""Evaluate a run and record the result with its protocol under RUN/eval/.

    run = genlab.load("runs/vae")
    record = evaluate(run, metrics=("samples", "nll"), n=1000)   # also RUN/eval/metrics.json
    record = cached_evaluate_samples(run, n=1000)   # read back when measured before
    protocol_key(record)                            # its file's name under RUN/eval/

One record per protocol and weights (k, n, seed, and the sha256 of the weights file
measured) is kept beside ``metrics.json``, which always holds the latest: a new protocol
never overwrites an old one, and a run trained further gets new records while the old
ones stay as its history. Every record names the training step of its weights. A record's
file name holds a digest of what makes its figures (``protocol_key``, ``text_key``), so
``cached_evaluate_samples`` and ``cached_evaluate_text`` (the report's sweeps) reuse a
record of this exact protocol on these very weights instead of measuring it again.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from genlab.data import TensorData, load_data
from genlab.errors import GenlabError
from genlab.fsutil import read_json, write_json
from genlab.metrics.audio import GRIFFIN_LIM_ITERS
from genlab.metrics.cache import content_digest
from genlab.run import Run


def evaluate(
    run: Run,
    *,
    metrics=("samples",),
    n: int = 1000,
    k: int = 1000,
    nll_n: int | None = None,
    seed: int = 0,
    controls: dict | None = None,
    extractor: str = "classifier",
    inception: str | None = None,
    progress: bool = True,
    gl_iters: int | None = None,
    per_prompt: int = 1,
) -> dict[str, Any]:
    """Sample metrics (with floor and protocol) and/or the family's likelihood, recorded:
    one file per protocol under RUN/eval/, and their union as RUN/eval/metrics.json.
    Sound runs: samples are heard through ``gl_iters`` Griffin-Lim iterations (default 32)
    and scored beside the floor and the ceiling (metrics/protocol.py). A run whose model
    takes prompts gets the prompt protocol instead (metrics/prompt_protocol.py): ``n``
    test captions at most (a seeded subset; None or more than there are: all), each
    prompted ``per_prompt`` times."""
    from genlab.metrics.protocol import evaluate_samples

    unknown = sorted(set(metrics) - {"samples", "nll"})
    if unknown or not metrics:
        raise GenlabError(
            f"--metrics takes samples and/or nll, not {','.join(unknown) or '(none)'}"
        )
    if run.model.data_kind == "text":
        return _evaluate_text(run, metrics, n, seed, controls, progress)
    record: dict[str, Any] = {}
    if "samples" in metrics and getattr(run.model, "takes_prompt", False):
        record.update(
            cached_evaluate_prompts(
                run,
                n=n,
                per_prompt=per_prompt,
                seed=seed,
                controls=controls,
                progress=progress,
                reuse=False,
            )
        )
    elif "samples" in metrics:
        rec = evaluate_samples(
            run,
            n=n,
            seed=seed,
            controls=controls,
            extractor=extractor,
            inception=inception,
            progress=progress,
            gl_iters=GRIFFIN_LIM_ITERS if gl_iters is None else gl_iters,
        )
        _save_record(run, protocol_key(rec), rec)
        record.update(rec)
    if "nll" in metrics:
        nll = evaluate_likelihood(run, k=k, n=nll_n, seed=seed, progress=progress, latest=False)
        record.update({k_: v for k_, v in nll.items() if k_ not in ("protocol", "time")})
        record.setdefault("protocol", {})["likelihood"] = nll["protocol"]
        record["time"] = nll["time"]
    _save_record(run, "metrics", record)
    return record


def evaluate_likelihood(
    run: Run,
    *,
    k: int = 1000,
    n: int | None = None,
    seed: int = 0,
    batch_size: int = 16,
    progress: bool = True,
    latest: bool = True,
) -> dict[str, Any]:
    """The family's likelihood on the first ``n`` test images, recorded under RUN/eval/."""
    if k < 1:
        raise GenlabError("--k must be at least 1")
    test = TensorData.from_images(load_data(run.config.data, "test", progress=progress))
    n = min(n or len(test), len(test))
    test = TensorData(test.x[:n], test.y[:n] if test.y is not None else None)
    with tqdm(
        total=n,
        desc=f"eval {run.config.family} (k={k})",
        unit="img",
        file=sys.stderr,
        disable=not progress,
        delay=1.0,
    ) as bar:
        result = run.model.evaluate(
            test.batches(batch_size, run.model.device), k=k, seed=seed, progress=bar.update
        )
    if not result:
        raise GenlabError(f"the {run.config.family} family has no likelihood to evaluate yet")
    protocol = {
        "split": "test",
        "data": run.config.data.name,
        "n": n,
        "k": k,
        "seed": seed,
        **run.identity(),
    }
    record = {**result, "protocol": protocol, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    sha = run.weights_sha256[:10]
    _save_record(run, f"likelihood-{run.weights}-{sha}-k{k}-n{n}-seed{seed}", record)
    if latest:
        _save_record(run, "metrics", record)
    return record


def _evaluate_text(run: Run, metrics, n: int, seed: int, controls, progress: bool) -> dict:
    """Text runs: validation likelihood and/or sample metrics (metrics/text_protocol.py)."""
    from genlab.metrics.text_protocol import evaluate_text

    if n < 2 and "samples" in metrics:
        raise GenlabError("--n must be at least 2 (self-BLEU compares samples with each other)")
    rec = evaluate_text(
        run, metrics=tuple(metrics), n=n, seed=seed, controls=controls, progress=progress
    )
    full = run.model.check_controls(dict(controls or {}))
    _save_record(run, text_key(metrics, n, seed, full, run.identity()), rec)
    _save_record(run, "metrics", rec)
    return rec


def _record_path(run, name: str) -> Path:
    return run.path / "eval" / f"{name}.json"


def _save_record(run, name: str, record: dict) -> None:
    """Write ``record`` as RUN/eval/<name>.json (the folder made if need be)."""
    path = _record_path(run, name)
    path.parent.mkdir(exist_ok=True)
    write_json(path, record)


def _record_name(kind: str, n: int, seed: int, fields: dict) -> str:
    """``<kind>-n<n>-seed<seed>-<digest>``: the digest (10 hex digits) of ``fields``."""
    return f"{kind}-n{n}-seed{seed}-{content_digest(fields)[:10]}"


def _samples_key(
    extractor: dict,
    clf: str | None,
    n: int,
    seed: int,
    controls: dict,
    who: dict,
    gl_iters: int | None = None,
) -> str:
    """The name of a sample record. ``who``: the weights measured (``Run.identity()``):
    their kind and content; ``gl_iters``: sound only, the Griffin-Lim iterations the samples
    were heard through."""
    from genlab.metrics.protocol import FLOOR_VERSION

    fields = {
        "real_split": "test",
        "n_generated": n,
        "seed": seed,
        "controls": controls,
        "weights": who.get("weights"),
        "weights_sha256": who.get("weights_sha256"),
        "extractor": extractor.get("weights_sha256", extractor["name"]),
        "class_probabilities": clf,
        "floor_version": FLOOR_VERSION,
    }
    if gl_iters is not None:  # sound only: image records keep their keys
        fields["griffin_lim_iters"] = gl_iters
    return _record_name(f"samples-{extractor['name']}", n, seed, fields)


def protocol_key(rec: dict) -> str:
    """A file name that differs whenever the protocol or the weights measured do (extractor,
    n, seed, controls, the weights file's sha256...)."""
    p = rec["protocol"]
    clf = (p.get("class_probabilities") or {}).get("weights_sha256")
    audio = p.get("audio")
    return _samples_key(
        p["extractor"],
        clf,
        p["n_generated"],
        p["seed"],
        p["controls"],
        p,
        audio and audio["griffin_lim_iters"],
    )


def cached_evaluate_samples(
    run,
    *,
    n: int,
    seed: int = 0,
    controls: dict | None = None,
    extractor: str = "classifier",
    inception: str | None = None,
    progress: bool = True,
    gl_iters: int = GRIFFIN_LIM_ITERS,
) -> dict[str, Any]:
    """``evaluate_samples``, read from RUN/eval/ when this exact protocol was measured
    before on these very weights (the key holds their sha256: a run trained further gets
    new records, and its old ones stay as history); a new record is written beside the
    others and does not replace RUN/eval/metrics.json."""
    from genlab.metrics.protocol import evaluate_samples, extractors_for

    data = run.config.data
    splits = load_data(data, "train", progress), load_data(data, "test", progress)
    ex, clf = extractors_for(data, splits, extractor, inception=inception, progress=progress)
    full = run.model.check_controls(dict(controls or {}))
    clf_sha = clf.weights_sha256 if clf is not None else None
    sound = gl_iters if splits[1].audio is not None else None
    name = _samples_key(ex.protocol(), clf_sha, n, seed, full, run.identity(), sound)
    path = _record_path(run, name)
    if path.exists():
        return read_json(path)
    rec = evaluate_samples(
        run,
        n=n,
        seed=seed,
        controls=controls,
        extractor=extractor,
        inception=inception,
        progress=progress,
        splits=splits,
        gl_iters=gl_iters,
    )
    _save_record(run, name, rec)
    return rec


def text_key(metrics, n: int, seed: int, controls: dict, who: dict) -> str:
    """A file name that differs whenever the protocol or the weights measured do
    (``who``: ``Run.identity()``, with the weights file's sha256)."""
    fields = {
        "metrics": sorted(metrics),
        "n": n,
        "seed": seed,
        "c": controls,
        "w": who.get("weights"),
        "sha": who.get("weights_sha256"),
    }
    return _record_name(f"text-{'-'.join(sorted(metrics))}", n, seed, fields)


def cached_evaluate_text(
    run,
    *,
    n: int,
    seed: int = 0,
    controls: dict | None = None,
    metrics=("samples",),
    progress: bool = True,
) -> dict[str, Any]:
    """``evaluate_text``, read from RUN/eval/ when this protocol was measured before on these
    very weights."""
    from genlab.metrics.text_protocol import evaluate_text

    full = run.model.check_controls(dict(controls or {}))
    name = text_key(metrics, n, seed, full, run.identity())
    path = _record_path(run, name)
    if path.exists():
        return read_json(path)
    rec = evaluate_text(
        run, metrics=tuple(metrics), n=n, seed=seed, controls=controls, progress=progress
    )
    _save_record(run, name, rec)
    return rec


def prompts_key(p: dict) -> str:
    """The name of a prompt record from its protocol ``p``: the judges' weights, the
    prompts measured (how many, how often, seed), the controls and the weights measured."""
    fields = {
        "version": p["version"],
        "n_prompts": p["n_prompts"],
        "per_prompt": p["per_prompt"],
        "seed": p["seed"],
        "n_boot": p["n_boot"],
        "controls": p["controls"],
        "weights": p.get("weights"),
        "weights_sha256": p.get("weights_sha256"),
        "judge": p["judge"]["weights_sha256"],
        "style": (p["style_classifier"] or {}).get("weights_sha256"),
        "tone": (p["tone_classifier"] or {}).get("weights_sha256"),
        "guidance": p.get("guidance"),
    }
    kind = "prompts-sweep" if p.get("guidance") is not None else "prompts"
    return _record_name(f"{kind}-r{p['per_prompt']}", p["n_prompts"], p["seed"], fields)


def _prompt_protocol(run, judges, n, per_prompt, seed, controls, n_boot, guidance=None) -> dict:
    """The protocol fields ``prompts_key`` reads, known before any generation."""
    from genlab.metrics.prompt_protocol import PROMPT_VERSION, pick_prompts, prompt_controls

    full = prompt_controls(run, controls)
    if guidance is not None:
        full.pop("guidance", None)
    return {
        **judges.protocol(),
        "version": PROMPT_VERSION,
        "n_prompts": len(pick_prompts(judges, n, seed)),
        "per_prompt": per_prompt,
        "seed": seed,
        "n_boot": n_boot,
        "controls": full,
        "guidance": None if guidance is None else list(guidance),
        **run.identity(),
    }


def cached_evaluate_prompts(
    run,
    *,
    n: int | None = None,
    per_prompt: int = 1,
    seed: int = 0,
    controls: dict | None = None,
    n_boot: int = 200,
    progress: bool = True,
    reuse: bool = True,
) -> dict[str, Any]:
    """``evaluate_prompts`` of a run whose model takes prompts, read from RUN/eval/ when
    this exact protocol was measured before on these very weights (and ``reuse``), else
    measured and written there (its name: ``prompts_key``)."""
    from genlab.metrics.prompt_protocol import Judges, evaluate_prompts

    judges = Judges(run.config.data, progress=progress)
    name = prompts_key(_prompt_protocol(run, judges, n, per_prompt, seed, controls, n_boot))
    path = _record_path(run, name)
    if reuse and path.exists():
        return read_json(path)
    rec = evaluate_prompts(
        run,
        n=n,
        per_prompt=per_prompt,
        seed=seed,
        controls=controls,
        n_boot=n_boot,
        judges=judges,
        progress=progress,
    )
    _save_record(run, name, rec)
    return rec


def cached_guidance_sweep(
    run,
    values: list[float],
    *,
    n: int | None = 200,
    per_prompt: int = 2,
    seed: int = 0,
    controls: dict | None = None,
    n_boot: int = 200,
    progress: bool = True,
) -> dict[str, Any]:
    """``run_guidance_sweep`` (metrics/prompt_sweep.py), recorded under RUN/eval/ and read
    back when this exact sweep was measured before on these very weights."""
    from genlab.metrics.prompt_protocol import Judges
    from genlab.metrics.prompt_sweep import run_guidance_sweep

    judges = Judges(run.config.data, progress=progress)
    p = _prompt_protocol(run, judges, n, per_prompt, seed, controls, n_boot, guidance=values)
    path = _record_path(run, prompts_key(p))
    if path.exists():
        return read_json(path)
    rec = run_guidance_sweep(
        run,
        values,
        n=n,
        per_prompt=per_prompt,
        seed=seed,
        controls=controls,
        n_boot=n_boot,
        judges=judges,
        progress=progress,
    )
    _save_record(run, prompts_key(p), rec)
    return rec
