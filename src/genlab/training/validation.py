"""Validation during training: the mean of each loss over the validation split, as a record.

It runs with the weights samples are drawn with (the EMA's, when train.ema_decay is on),
under fixed noise (train.seed + 12345), and leaves the training RNG streams exactly as they
were, so validating never changes what training does. The record goes to metrics.jsonl.

    rec = validation_record(model, val_data, tc, step=500, device=device, precision="fp32",
                            weights=contextlib.nullcontext(), clock=trainer_clock)
    rec["val_loss"]
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

from genlab.data import TensorData
from genlab.training.precision import autocast


@torch.no_grad()
def validation_record(
    model,
    data: TensorData,
    tc,
    *,
    step: int,
    device: torch.device,
    precision: str,
    weights: contextlib.AbstractContextManager,
    clock: Callable[[], float],
) -> dict[str, Any]:
    """``val_<key>`` for each of ``model.loss``'s outputs, averaged over train.eval_batches
    batches of ``data`` (0: all of it) and weighted by examples (text: tokens predicted);
    ``weights`` swaps the sampling weights in; ``clock`` is the training clock."""
    model.eval()
    sums: dict[str, float] = {}
    n = 0
    # fixed noise, and the training RNG stream left exactly as it was
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), weights, torch.no_grad():
        torch.manual_seed(tc.seed + 12345)
        for batch in data.batches(tc.batch_size, device, tc.eval_batches):
            batch["step"] = step
            with autocast(device, precision):
                out = model.loss(batch)
            b = batch.get("count", len(batch["x"]))  # text: tokens predicted
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + v.float().item() * b
            n += b
    model.train()
    rec = {
        "step": step,
        **{f"val_{k}": v / n for k, v in sums.items()},
        "val_examples": n,
        # the training clock when this validation ended (time to a given loss)
        "val_elapsed_s": round(clock(), 3),
    }
    if hasattr(data, "tokens_per_example"):
        # text: the mean over every token of the validation split, predicted once in
        # non-overlapping windows of the model's context
        rec["val_tokens"] = rec.pop("val_examples")
        rec["val_protocol"] = f"whole validation split, non-overlapping windows of {data.block}"
    return rec
