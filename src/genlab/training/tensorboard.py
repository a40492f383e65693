"""TensorBoard curves for a run (``train.tensorboard=true``), in RUN/tensorboard/.

An extra view of what the trainer writes, for researchers who look for curves
there; metrics.jsonl stays the source of truth. Every numeric key of each
metrics.jsonl record becomes a scalar of the same name at that record's step;
each sample grid becomes the image "samples" (the same grid as
samples/step-*.png), each set of text samples the text "samples".

    board = TensorBoardWriter(run_dir / "tensorboard", enabled=True)
    board.open(step=0)
    board.record({"step": 10, "loss": 0.52})
    board.close()

and to view them:

    tensorboard --logdir runs/NAME/tensorboard

It uses torch's SummaryWriter: it ships with torch, so the only extra package is
tensorboard itself, and it is the writer PyTorch users already know.
"""

from __future__ import annotations

from pathlib import Path

import torch

from genlab.errors import ConfigError

MISSING = "train.tensorboard=true needs the tensorboard package: pip install 'genlab[tensorboard]'"


class TensorBoardWriter:
    """Writes one run's curves and samples to TensorBoard; does nothing when ``enabled`` is
    false or on a DDP rank other than the main one (``main``)."""

    def __init__(self, folder: Path, enabled: bool, main: bool = True):
        self.folder, self.writer, self._writer_cls = Path(folder), None, None
        if not enabled:
            return
        # checked on every rank when the trainer is built, so a missing package stops the
        # run before any data is trained on or anything is written to the run directory
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(MISSING) from None
        if main:
            self._writer_cls = SummaryWriter

    def open(self, step: int) -> None:
        """Start writing; ``step`` is where this session starts (0, or a resume's checkpoint).
        A resumed run appends to the same folder."""
        if self._writer_cls is None or self.writer is not None:
            return
        # flushed every 10 s (not the default 2 min) so a running job's curves stay current
        self.writer = self._writer_cls(str(self.folder), flush_secs=10)
        self.rewind(step)

    def rewind(self, step: int) -> None:
        """The curve was cut back to ``step`` (a resume, or a rollback after a NaN loss), as
        metrics.jsonl was: hide what an earlier session or the bad stretch logged past it,
        so the redone steps are not drawn over stale ones."""
        if self.writer is None or step <= 0:
            return
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog

        # the event SummaryWriter(purge_step=step + 1) writes, but into the open file: a new
        # file for each rollback could sort before the old one (same second, same process)
        self.writer.file_writer.add_event(
            Event(step=step + 1, session_log=SessionLog(status=SessionLog.START))
        )

    def record(self, rec: dict) -> None:
        """A metrics.jsonl record: its numbers (not ``step`` itself, strings or flags)."""
        if self.writer is None:
            return
        for key, value in rec.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, rec["step"])

    def images(self, x: torch.Tensor, step: int) -> None:
        """(N, C, H, W) samples in [-1, 1], tiled exactly as samples/step-*.png."""
        if self.writer is None:
            return
        from genlab.outputs.images import make_grid, to_uint8

        self.writer.add_image("samples", make_grid(to_uint8(x)), step, dataformats="HWC")

    def texts(self, texts: list[str], step: int) -> None:
        if self.writer is None:
            return
        # TensorBoard renders text as Markdown: a fence keeps each sample's line breaks
        # and indentation (code, for the pydoc corpus) as they are
        self.writer.add_text("samples", "\n\n".join(f"```\n{t}\n```" for t in texts), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
