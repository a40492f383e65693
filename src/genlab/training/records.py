"""metrics.jsonl, a run's curves: one JSON record a line, appended as training goes.

Only the main DDP rank writes; on the others every call does nothing. Each record also goes
to the TensorBoard view (``train.tensorboard``). A resume or a rollback cuts the file back
to the checkpoint's step, since the steps after it will be redone.

    log = MetricsLog(run_dir / "metrics.jsonl", main=True, tensorboard=writer)
    log.open()
    log.write({"step": 10, "loss": 0.52})
    log.cut(5)          # keep the records up to step 5
    log.close()

A training record averages the steps since the last one (a ``Window``):

    window = Window(time.perf_counter())
    window.add({"loss": loss})            # after each step
    rec = window.means(env.mean)          # {"loss": ...}, averaged over steps and ranks
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from genlab.fsutil import read_jsonl, write_bytes_atomic
from genlab.training.tensorboard import TensorBoardWriter


class MetricsLog:
    """The metrics.jsonl of one run, open for appending during ``Trainer.fit``."""

    def __init__(self, path: Path, main: bool, tensorboard: TensorBoardWriter):
        self.path, self.main, self.tensorboard = Path(path), main, tensorboard
        self.file = None

    def open(self) -> None:
        if self.main:
            self.file = open(self.path, "a")

    def write(self, rec: dict) -> None:
        """A curve record: to the file (flushed, so a running job's curves stay current)
        and to TensorBoard."""
        if self.file is not None:
            self.file.write(json.dumps(rec) + "\n")
            self.file.flush()
            self.tensorboard.record(rec)

    def note(self, rec: dict) -> None:
        """A line for readers (what a rollback did), not a curve point for TensorBoard."""
        if self.main:
            with open(self.path, "a") as f:
                f.write(json.dumps(rec) + "\n")

    def cut(self, step: int) -> None:
        """Drop the records past ``step`` (they will be redone), here and in TensorBoard."""
        if not self.main:
            return
        truncate_log(self.path, step)
        self.tensorboard.rewind(step)
        if self.file is not None:  # the file was rewritten: append to the new one
            self.file.close()
            self.file = open(self.path, "a")

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class Window:
    """The training steps since the last record: their summed outputs, and when it began."""

    def __init__(self, now: float):
        self.sums: dict[str, torch.Tensor] = {}
        self.steps, self.start = 0, now

    def add(self, out: dict[str, torch.Tensor]) -> None:
        for k, v in out.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.steps += 1

    def means(self, mean: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, float]:
        """Each output's mean over these steps, and through ``mean`` over DDP ranks."""
        sums = self.sums
        return dict(zip(sums, (mean(torch.stack(list(sums.values()))) / self.steps).tolist()))


def truncate_log(path: Path, step: int) -> None:
    """Keep the records of metrics.jsonl up to ``step`` (those after it will be redone); a
    line torn by a kill is dropped (and said), any other bad line is an error."""
    if not path.exists():
        return
    keep = [rec for rec in read_jsonl(path) if rec.get("step", 0) <= step]
    write_bytes_atomic(path, "".join(json.dumps(rec) + "\n" for rec in keep).encode())
