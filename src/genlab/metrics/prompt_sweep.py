"""Guidance swept for a text-to-image model: alignment against diversity.

Classifier-free guidance trades how closely images follow their prompts for how varied
they are. ``guidance_sweep`` scores the same seeded test prompts at each guidance value
as metrics/prompt_protocol.py does (each prompt ``per_prompt`` times, so diversity is
measured), and returns, for each value and each part of the test split, the clip score,
retrieval and diversity with their 95% bootstrap intervals over prompts, for the report
to plot, beside the floor (real test images) and the shuffled prompts.

    sweep = guidance_sweep(lambda prompts, seed, g: ..., [1, 2, 4, 8], data)
    sweep = run_guidance_sweep(run, [1, 2, 4, 8], n=200)
    [(p["guidance"], p["all"]["clip_score"], p["all"]["diversity"]) for p in sweep["points"]]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from genlab.data import DataConfig
from genlab.errors import GenlabError
from genlab.metrics.prompt_protocol import (
    Judges,
    prompt_controls,
    run_generator,
    score_prompts,
)

SWEPT = ("clip_score", "top1", "top5", "diversity", "style_acc", "tone_acc", "copy_share")


def _pick(figures: dict) -> dict:
    """The SWEPT figures of one group, each with its interval."""
    return {key: figures.get(key) for name in SWEPT for key in (name, f"{name}_ci")}


def guidance_sweep(
    generate_with_guidance: Callable[[list[str], int, float], Any],
    values: list[float],
    data: DataConfig,
    *,
    n: int | None = 200,
    per_prompt: int = 2,
    seed: int = 0,
    n_boot: int = 200,
    judges: Judges | None = None,
    splits: tuple | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Alignment and diversity at each guidance value: ``generate_with_guidance(prompts,
    seed, guidance)`` scored like ``score_prompts`` (the same seeded ``n`` prompts, each
    ``per_prompt`` times, at least 2 for diversity). For each value: the SWEPT figures
    with their 95% intervals, for all prompts and each part; beside them the floor
    (the real test images' clip score and retrieval) and the shuffled prompts.

        sweep = guidance_sweep(gen, [1, 2, 4, 8], data)
        [(p["guidance"], p["all"]["clip_score"], p["all"]["diversity"]) for p in sweep["points"]]
    """
    if not values:
        raise GenlabError("a guidance sweep needs at least one guidance value")
    judges = judges or Judges(data, splits, progress=progress)
    points, floor, shuffled = [], None, []
    for value in values:
        rec = score_prompts(
            lambda ps, s, v=value: generate_with_guidance(ps, s, v),
            data,
            n=n,
            per_prompt=per_prompt,
            seed=seed,
            n_boot=n_boot,
            judges=judges,
            progress=progress,
        )
        table = rec["table"]
        points.append({"guidance": value, **{g: _pick(t["generated"]) for g, t in table.items()}})
        shuffled.append({"guidance": value, **{g: _pick(t["shuffled"]) for g, t in table.items()}})
        floor = {g: _pick(t["floor"]) for g, t in table.items()}
    return {
        "values": list(values),
        "points": points,
        "floor": floor,
        "shuffled": shuffled,
        "diversity_reference": rec["diversity_reference"],
        "protocol": {**rec["protocol"], "guidance": list(values), "swept": list(SWEPT)},
    }


def run_guidance_sweep(
    run,
    values: list[float],
    *,
    n: int | None = 200,
    per_prompt: int = 2,
    seed: int = 0,
    controls: dict | None = None,
    n_boot: int = 200,
    judges: Judges | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """``guidance_sweep`` of a run whose model takes prompts and declares ``guidance``,
    the other controls as given; its protocol names them and the weights measured."""
    if not getattr(run.model, "takes_prompt", False) or "guidance" not in run.model.controls:
        raise GenlabError(f"the {run.config.family} family has no prompt guidance to sweep")
    if (controls or {}).get("guidance") is not None:
        raise GenlabError("a guidance sweep sets the guidance itself; drop --guidance")
    gens = {}

    def generate(prompts: list[str], seed: int, guidance: float):
        if guidance not in gens:
            gens[guidance] = run_generator(
                run, {**(controls or {}), "guidance": guidance}, progress=progress
            )
        return gens[guidance](prompts, seed)

    out = guidance_sweep(
        generate,
        values,
        run.config.data,
        n=n,
        per_prompt=per_prompt,
        seed=seed,
        n_boot=n_boot,
        judges=judges,
        progress=progress,
    )
    out["protocol"].update(controls=prompt_controls(run, controls), **run.identity())
    out["protocol"]["controls"].pop("guidance", None)
    return out
