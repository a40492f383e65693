"""When training has diverged, judged from the records the trainer logs.

    watch = Divergence()
    why = watch.check({"loss": 3.5e31, "grad_norm": float("inf"), ...})   # a reason, or None
    if why: raise RunError(diverged_message(why, step, rollbacks=0, last=ckpt.latest()))

A logged record (averages over the last train.log_every steps) shows divergence when a
loss or a gradient norm is no longer finite, or when the loss jumps far above its own
recent range. The trainer then stops, naming the step and the last good checkpoint, or
rolls back to it (train.on_divergence); it logs and checks a record before every step that
writes weights, so diverged weights never become a run's model.
"""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path


class Divergence:
    """The recent losses of one training session, and the check on each new record.

    The loss may rise past the highest of the last ``window`` logged values by ``explode``
    times that range's scale (its spread, or its typical size if larger). Generous on
    purpose: GAN losses wander, but nothing that learns jumps a hundredfold in one record.
    """

    def __init__(self, window: int = 50, explode: float = 100.0):
        self.recent: deque[float] = deque(maxlen=window)
        self.explode = explode

    def reset(self) -> None:
        """Forget the range (a new session, or a rollback to an earlier step)."""
        self.recent.clear()

    def check(self, rec: dict) -> str | None:
        """Why ``rec`` shows divergence, or None (and then its loss joins the range)."""
        for k, v in rec.items():
            watched = k == "loss" or k.endswith("_loss") or k.startswith("grad_norm")
            if watched and isinstance(v, float) and not math.isfinite(v):
                what = f"the gradient norm ({k})" if k.startswith("grad") else f"the {k}"
                return f"{what} became {v}"
        loss, past = rec["loss"], self.recent
        if len(past) >= 5:
            lo, hi = min(past), max(past)
            median = sorted(past)[len(past) // 2]
            if loss > hi + self.explode * max(hi - lo, abs(median), 1e-3):
                return (
                    f"the loss jumped to {loss:.4g}, far outside its recent range "
                    f"[{lo:.4g}, {hi:.4g}]"
                )
        past.append(loss)
        return None


def diverged_message(why: str, step: int, rollbacks: int, last: Path | None) -> str:
    """What a run that stops on divergence says: the step, the reason (``why``, from
    ``Divergence.check``), and what it keeps (``last``, its latest checkpoint)."""
    tried = f" after {rollbacks} rollback(s)" if rollbacks else ""
    keep = (
        f"the run keeps its last good checkpoint, {last}"
        if last is not None
        else "nothing was saved (no checkpoint yet)"
    )
    return (
        f"training diverged at step {step}{tried}: {why}; {keep}. Lower train.lr or "
        "raise train.warmup_steps, or set train.on_divergence=rollback"
    )
