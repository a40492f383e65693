"""Evaluate a run and record the result with its protocol under RUN/eval/.

    run = genlab.load("runs/vae")
    record = evaluate(run, metrics=("samples", "nll"), n=1000)   # also RUN/eval/metrics.json

One record per protocol and weights (k, n, seed, and the sha256 of the weights file
measured) is kept beside ``metrics.json``, which always holds the latest: a new protocol
never overwrites an old one, and a run trained further gets new records while the old
ones stay as its history. Every record names the training step of its weights.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm.auto import tqdm

from genlab.data import TensorData, load_data
from genlab.errors import GenlabError
from genlab.fsutil import write_json
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
) -> dict[str, Any]:
    """Sample metrics (with floor and protocol) and/or the family's likelihood, recorded:
    one file per protocol under RUN/eval/, and their union as RUN/eval/metrics.json.
    Sound runs: samples are heard through ``gl_iters`` Griffin-Lim iterations (default 32)
    and scored beside the floor and the ceiling (metrics/protocol.py)."""
    from genlab.metrics.audio import GRIFFIN_LIM_ITERS
    from genlab.metrics.protocol import evaluate_samples, protocol_key

    unknown = sorted(set(metrics) - {"samples", "nll"})
    if unknown or not metrics:
        raise GenlabError(
            f"--metrics takes samples and/or nll, not {','.join(unknown) or '(none)'}"
        )
    if run.model.data_kind == "text":
        return _evaluate_text(run, metrics, n, seed, controls, progress)
    record: dict[str, Any] = {}
    if "samples" in metrics:
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
        folder = run.path / "eval"
        folder.mkdir(exist_ok=True)
        write_json(folder / f"{protocol_key(rec)}.json", rec)
        record.update(rec)
    if "nll" in metrics:
        nll = evaluate_likelihood(run, k=k, n=nll_n, seed=seed, progress=progress, latest=False)
        record.update({k_: v for k_, v in nll.items() if k_ not in ("protocol", "time")})
        record.setdefault("protocol", {})["likelihood"] = nll["protocol"]
        record["time"] = nll["time"]
    write_json(run.path / "eval" / "metrics.json", record)
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
    folder = run.path / "eval"
    folder.mkdir(exist_ok=True)
    sha = run.weights_sha256[:10]
    write_json(folder / f"likelihood-{run.weights}-{sha}-k{k}-n{n}-seed{seed}.json", record)
    if latest:
        write_json(folder / "metrics.json", record)
    return record


def _evaluate_text(run: Run, metrics, n: int, seed: int, controls, progress: bool) -> dict:
    """Text runs: validation likelihood and/or sample metrics (metrics/text_protocol.py)."""
    from genlab.metrics.text_protocol import evaluate_text, text_key

    if n < 2 and "samples" in metrics:
        raise GenlabError("--n must be at least 2 (self-BLEU compares samples with each other)")
    rec = evaluate_text(
        run, metrics=tuple(metrics), n=n, seed=seed, controls=controls, progress=progress
    )
    full = run.model.check_controls(dict(controls or {}))
    folder = run.path / "eval"
    folder.mkdir(exist_ok=True)
    write_json(folder / f"{text_key(metrics, n, seed, full, run.identity())}.json", rec)
    write_json(folder / "metrics.json", rec)
    return rec
