"""The one training loop, for every family.

The model gives ``loss(batch)`` (or, for ordered updates, ``train_step``);
this loop owns the rest: device, DDP, bf16 autocast, torch.compile,
gradient accumulation and clipping, LR warm-up + cosine, EMA, validation
with best weights, sample grids, metrics.jsonl, a progress bar, and exact
resume from atomic checkpoints.

    trainer = Trainer(run_dir, cfg, model, train_data, val_data)
    summary = trainer.fit()
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from genlab.config import TrainConfig  # noqa: F401  (re-exported)
from genlab.data import Batcher, TensorData
from genlab.errors import ConfigError, RunError
from genlab.fsutil import save_tensors
from genlab.training.checkpoint import CheckpointDir, check_finite, load_state, save_state
from genlab.training.distributed import Distributed, rng_state, set_rng_state
from genlab.training.divergence import Divergence, diverged_message
from genlab.training.ema import EMA
from genlab.training.precision import allow_tf32, autocast, resolve_precision
from genlab.training.records import MetricsLog, Window
from genlab.training.schedule import lr_factor, set_lr
from genlab.training.stepper import Stepper, step_all
from genlab.training.tensorboard import TensorBoardWriter
from genlab.training.validation import validation_record


class Trainer:
    """Trains ``model`` on ``train_data`` into ``run_dir`` (which must already hold
    config.json). ``resume`` continues from the latest checkpoint in ``run_dir``."""

    def __init__(
        self,
        run_dir: Path,
        cfg,
        model,
        train_data: TensorData,
        val_data: TensorData | None = None,
        *,
        resume: bool = False,
        progress: bool = True,
        dist_env: Distributed | None = None,
    ):
        self.run_dir, self.cfg, self.tc = Path(run_dir), cfg, cfg.train
        self.env = dist_env or Distributed(self.tc.device)
        self.device = self.env.device
        allow_tf32(self.device)
        self.model = model.to(self.device)
        self.progress = progress
        tc, world = self.tc, self.env.world
        if tc.batch_size % (world * tc.grad_accum):
            raise ConfigError(
                f"train.batch_size={tc.batch_size} must divide evenly by "
                f"{world} rank(s) x train.grad_accum={tc.grad_accum}"
            )
        if model.owns_step and tc.grad_accum != 1:
            raise ConfigError(f"the {model.family} family owns its update: use train.grad_accum=1")
        self.micro = tc.batch_size // (world * tc.grad_accum)
        if len(train_data) < tc.batch_size:
            raise ConfigError(
                f"the training split has {len(train_data)} examples, fewer than "
                f"train.batch_size={tc.batch_size}; lower it"
            )
        on_gpu = self.device.type != "cpu" and train_data.x.numel() < 2**31
        self.train_data = train_data.to(self.device) if on_gpu else train_data
        self.val_data = val_data
        self.batcher = Batcher(len(train_data), tc.batch_size, tc.seed)
        self.optimizers = model.optimizers(tc)
        # each group's LR from this config: a resume may change train.lr, and a rollback
        # scales it (lr_scale, kept in the checkpoint)
        self._config_lrs = {
            n: [g["lr"] for g in o.param_groups] for n, o in self.optimizers.items()
        }
        self.lr_scale, self.rollbacks = 1.0, 0
        self.divergence = Divergence()
        self._set_base_lrs()
        self.ema = EMA(model, tc.ema_decay) if tc.ema_decay > 0 else None
        self.ckpt = CheckpointDir(self.run_dir)
        self.tensorboard = TensorBoardWriter(
            self.run_dir / "tensorboard", tc.tensorboard, self.env.main
        )
        self.log = MetricsLog(self.run_dir / "metrics.jsonl", self.env.main, self.tensorboard)
        self.step, self.elapsed, self.examples = 0, 0.0, 0
        self._t0, self._e0 = time.perf_counter(), 0.0
        self._window, self._last_alarm = Window(self._t0), None  # set again by each fit
        self.best_val = math.inf
        # every rank starts from the same weights (built under the same seed);
        # their noise streams differ so dropout and sampling are independent
        torch.manual_seed(tc.seed * 7919 + 1 + self.env.rank)
        if resume:
            self._restore()
        self.net = self._wrap(model)
        self.precision = resolve_precision(tc.precision, self.device, model)

    # -- set-up -------------------------------------------------------------
    def _set_base_lrs(self) -> None:
        for name, opt in self.optimizers.items():
            for group, lr in zip(opt.param_groups, self._config_lrs[name]):
                group["base_lr"] = lr * self.lr_scale

    def _wrap(self, model):
        net = model
        if self.env.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            net = DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if self.tc.compile and not model.compile_for_training():
            net = torch.compile(net)
        return net

    def _autocast(self):
        return autocast(self.device, self.precision)

    # -- the loop -----------------------------------------------------------
    def fit(self, until: int | None = None) -> dict[str, Any]:
        """Train until ``train.steps`` (or ``train.minutes``); returns a summary.

        ``until`` ends this session early at that step, with a checkpoint, and
        leaves the schedule as it is: a later resume continues the same run.
        """
        tc = self.tc
        end = min(tc.steps, until) if until is not None else tc.steps
        if self.step >= end:
            if self.env.main and self.progress:
                print(
                    f"genlab: {self.run_dir} is already at step {self.step} of {tc.steps}; "
                    "nothing to do (a larger --steps extends it)",
                    file=sys.stderr,
                )
            return self._summary(stopped_by_time=False)
        self._open_session()
        bar = self._progress_bar()
        self.model.train()
        self._window = Window(time.perf_counter())  # the steps of the next record
        self._t0, self._e0 = time.perf_counter(), self.elapsed  # the training clock
        self._last_alarm = None
        if tc.on_divergence == "rollback" and self.ckpt.latest() is None:
            self.save_checkpoint()  # so that even an early divergence has somewhere to go back
        self.divergence.reset()
        try:
            stopped_by_time = self._steps(end, bar)
            self._periodic(final=self.step >= tc.steps or stopped_by_time)
            if self.step < tc.steps and not stopped_by_time:
                self.save_checkpoint()  # a session cut short by `until`
        finally:
            bar.close()
            self.log.close()
            self.tensorboard.close()
        return self._summary(stopped_by_time)

    def _steps(self, end: int, bar) -> bool:
        """Train up to step ``end``; True when the ``train.minutes`` budget ran out first."""
        while self.step < end:
            self.elapsed = self._clock()
            if self._time_up():
                return True
            self._window.add(self._train_step())
            self.step += 1
            self.examples += self.tc.batch_size
            bar.update(1)
            self.elapsed = self._clock()
            time_up = self._time_up()
            # a record (and the divergence check on it) before anything that writes
            # weights or judges them: checkpoints, validation (best weights), grids
            if self._record_due(end, time_up):
                why = self.divergence.check(self._record(bar))
                if why:
                    if not self._can_roll_back():
                        raise RunError(
                            diverged_message(why, self.step, self.rollbacks, self.ckpt.latest())
                        )
                    self._roll_back(why, bar)
                    continue
            if time_up:
                return True
            if self.step < end:
                self._periodic(final=False)
        return False

    def _open_session(self) -> None:
        """The samples folder, the bf16 notice, metrics.jsonl and TensorBoard, for one fit."""
        if self.env.main:
            (self.run_dir / "samples").mkdir(parents=True, exist_ok=True)
            if self.tc.precision == "auto" and self.precision == "bf16" and self.progress:
                print(
                    "genlab: training in bf16 on this CPU's matrix units (train.precision=auto;"
                    " train.precision=fp32 turns it off)",
                    file=sys.stderr,
                )
        self.log.open()
        self.tensorboard.open(self.step)  # train.tensorboard: an extra view of the same records

    def _progress_bar(self) -> tqdm:
        return tqdm(
            total=self.tc.steps,
            initial=self.step,
            desc=f"train {self.model.family}",
            unit="step",
            disable=not (self.progress and self.env.main),
            dynamic_ncols=True,
            mininterval=0.5,
            file=sys.stderr,
        )

    def _clock(self) -> float:
        """Seconds of training so far, over every session of this run."""
        return self._e0 + time.perf_counter() - self._t0

    def _time_up(self) -> bool:
        return self.tc.minutes is not None and self.elapsed >= self.tc.minutes * 60

    def _due(self, every: int) -> bool:
        return every > 0 and self.step % every == 0

    def _record_due(self, end: int, time_up: bool) -> bool:
        """A record every train.log_every steps, at the end, and before periodic work that
        writes or judges weights (checkpoints, validation)."""
        tc = self.tc
        return (
            self.step % tc.log_every == 0
            or self.step in (end, tc.steps)
            or time_up
            or any(self._due(e) for e in (tc.checkpoint_every, tc.eval_every))
        )

    # -- the records --------------------------------------------------------
    def _record(self, bar) -> dict[str, Any]:
        """Log the training record of the steps since the last one (and say an alarm when it
        starts); show it on the progress bar."""
        rec = self._training_record()
        alarm = self.model.alarm(rec)
        if alarm:
            rec["alarm"] = alarm
            if self._last_alarm is None:  # say it when it starts, not every log line
                tqdm.write(f"genlab: warning at step {self.step}: {alarm}", sys.stderr)
        self._last_alarm = alarm
        bar.set_postfix_str(self._progress_text(rec), refresh=False)
        self.log.write(rec)
        return rec

    def _training_record(self) -> dict[str, Any]:
        """The window's mean outputs (over every rank), the step, LR, examples seen and
        throughput; a new window starts."""
        window = self._window
        rec = window.means(self.env.mean)
        now = time.perf_counter()
        rec.update(
            step=self.step,
            lr=self._lr(),
            examples=self.examples,
            examples_per_s=window.steps * self.tc.batch_size / (now - window.start),
            elapsed_s=round(self.elapsed, 3),
        )
        per = getattr(self.train_data, "tokens_per_example", 0)
        if per:  # text: training tokens seen (targets predicted)
            rec["tokens"] = self.examples * per
            rec["tokens_per_s"] = rec["examples_per_s"] * per
        self._window = Window(now)
        return rec

    def _progress_text(self, rec: dict[str, Any]) -> str:
        """The bar's text: the family's ``progress_keys`` of the last record."""
        return " ".join(f"{k} {rec[k]:.4g}" for k in self.model.progress_keys if k in rec)

    def _lr(self) -> float:
        g = next(iter(self.optimizers.values())).param_groups[0]
        return g["lr"]

    def _summary(self, stopped_by_time: bool) -> dict[str, Any]:
        return {
            "step": self.step,
            "elapsed_s": self.elapsed,
            "best_val_loss": self.best_val,
            "stopped_by_time": stopped_by_time,
            "precision": self.precision,
            "run_dir": str(self.run_dir),
        }

    # -- one step -----------------------------------------------------------
    def _time_progress(self) -> float:
        return self.elapsed / (self.tc.minutes * 60) if self.tc.minutes is not None else 0.0

    def _train_step(self) -> dict[str, torch.Tensor]:
        tc = self.tc
        set_lr(self.optimizers, lr_factor(self.step, tc, self._time_progress()))
        idx = self.batcher.next()
        chunks = idx.view(self.env.world, tc.grad_accum, self.micro)[self.env.rank]
        if self.model.owns_step:
            batch = self.train_data.batch(chunks[0], self.device)
            batch["step"] = self.step
            with self._autocast():
                out = self.model.train_step(
                    batch, Stepper(self.optimizers, tc.grad_clip, self.env.world)
                )
        else:
            out = self._accumulate(chunks)
        if self.ema is not None:
            self.ema.update(self.model, self.step)
        return {k: v.detach().float() for k, v in out.items()}

    def _accumulate(self, chunks: torch.Tensor) -> dict[str, torch.Tensor]:
        tc = self.tc
        total: dict[str, torch.Tensor] = {}
        for m in range(tc.grad_accum):
            batch = self.train_data.batch(chunks[m], self.device)
            batch["step"] = self.step
            last = m == tc.grad_accum - 1
            sync = (
                self.net.no_sync()
                if (self.env.world > 1 and not last)
                else contextlib.nullcontext()
            )
            with sync:
                with self._autocast():
                    out = self.net(batch)
                (out["loss"] / tc.grad_accum).backward()
            for k, v in out.items():
                v = v.detach() / tc.grad_accum
                total[k] = total[k] + v if k in total else v
        total["grad_norm"] = step_all(self.optimizers, tc.grad_clip)
        return total

    # -- divergence -----------------------------------------------------------
    def _can_roll_back(self) -> bool:
        return (
            self.tc.on_divergence == "rollback"
            and self.rollbacks < self.tc.max_rollbacks
            and self.ckpt.latest() is not None
        )

    def _roll_back(self, why: str, bar) -> None:
        """Back to the last checkpoint (weights, EMA, optimizers, RNG, data position, step),
        with the learning rate halved; the curve past that step is dropped."""
        bad_step = self.step
        self.rollbacks += 1
        scale = self.lr_scale * 0.5  # _restore reads the checkpoint's own scale
        self._restore()
        self.divergence.reset()  # the range to judge by starts again from there
        self.lr_scale = scale
        self._set_base_lrs()
        bar.n = self.step
        bar.refresh()
        msg = (
            f"{why} at step {bad_step}; rolled back to step {self.step} "
            f"({self.ckpt.latest().name}) with the learning rate x{self.lr_scale:g} "
            f"(rollback {self.rollbacks} of {self.tc.max_rollbacks})"
        )
        tqdm.write(f"genlab: warning: {msg}", sys.stderr)
        self.log.note({"step": self.step, "rollback": msg})
        self._window = Window(time.perf_counter())  # the next record and the clock start here
        self._t0, self._e0 = time.perf_counter(), self.elapsed

    # -- validation, samples, checkpoints ---------------------------------
    def _periodic(self, final: bool) -> None:
        """Validation, samples and a checkpoint, each when due (all of them when ``final``)."""
        tc = self.tc
        if (final or self._due(tc.eval_every)) and self.val_data is not None:
            self._validate()
        if (final or self._due(tc.sample_every)) and self.env.main:
            self._write_samples()
        if final or self._due(tc.checkpoint_every):
            self.save_checkpoint()

    def _sampling_weights(self):
        return self.ema.applied(self.model) if self.ema is not None else contextlib.nullcontext()

    def _validate(self) -> None:
        """Log a validation record; keep best.safetensors for the best loss so far."""
        if self.env.main:
            rec = validation_record(
                self.model,
                self.val_data,
                self.tc,
                step=self.step,
                device=self.device,
                precision=self.precision,
                weights=self._sampling_weights(),
                clock=self._clock,
            )
            self.log.write(rec)
            if self.model.selects_best and rec["val_loss"] < self.best_val:
                self.best_val = rec["val_loss"]
                save_tensors(
                    self.run_dir / "best.safetensors",
                    self._export_weights(),
                    metadata={"step": self.step},
                )
        self.env.barrier()

    def _export_weights(self) -> dict[str, torch.Tensor]:
        if self.ema is not None:
            return self.ema.weights_for(self.model)
        return self.model.state_dict()

    def _write_samples(self) -> None:
        from genlab.outputs.images import save_images
        from genlab.outputs.text import save_texts

        self.model.eval()
        g = torch.Generator(device=self.device).manual_seed(self.tc.seed)
        text = self.model.data_kind == "text"
        with self._sampling_weights():
            if text:  # a few continuations of a new document
                x = self.model.sample(4, generator=g, max_new_tokens=200)
            else:
                x = self.model.sample(self.tc.grid_size, generator=g)
        self.model.train()
        if text:
            save_texts(x, self.run_dir / "samples" / f"step-{self.step:08d}.txt")
            self.tensorboard.texts(x, self.step)
        else:
            save_images(x, self.run_dir / "samples" / f"step-{self.step:08d}.png")
            self.tensorboard.images(x, self.step)

    def save_checkpoint(self) -> None:
        """Write one consistent checkpoint, then the latest weights for sampling.

        Weights that are no longer finite never replace a good checkpoint."""
        check_finite(self.model, self.step, self.ckpt)
        rng = self.env.gather(rng_state(self.device))
        if self.env.main:
            counters = {
                "step": self.step,
                "data": self.batcher.state_dict(),
                "elapsed_s": self.elapsed,
                "examples": self.examples,
                "best_val_loss": self.best_val,
                "world_size": self.env.world,
                "lr_scale": self.lr_scale,
            }
            save_state(self.ckpt, self.step, self.model, self.ema, self.optimizers, rng, counters)
            # the latest weights beside it, for sampling; the step rides in each file's
            # metadata: evaluation records name it
            step = {"step": self.step}
            save_tensors(self.run_dir / "model.safetensors", self.model.state_dict(), metadata=step)
            if self.ema is not None:
                save_tensors(
                    self.run_dir / "ema.safetensors",
                    self.ema.weights_for(self.model),
                    metadata=step,
                )
        self.env.barrier()

    def _restore(self) -> None:
        """Back to the latest checkpoint: weights, EMA, optimizers, step, clocks, data
        position and (with as many processes as it had) the random streams."""
        folder = self.ckpt.latest()
        if folder is None:
            raise RunError(
                f"{self.run_dir} has no checkpoint to resume from; "
                "train it again without --resume into a new --out"
            )
        rng, meta = load_state(self.ckpt, folder, self.model, self.ema, self.optimizers)
        self.lr_scale = float(meta.get("lr_scale", 1.0))
        self._set_base_lrs()
        self.step, self.elapsed = int(meta["step"]), float(meta["elapsed_s"])
        self.examples, self.best_val = int(meta["examples"]), float(meta["best_val_loss"])
        self.batcher.load_state_dict(meta["data"])
        self.log.cut(self.step)  # drop curve records past the checkpoint: they will be redone
        state = rng.get(f"rank{self.env.rank}")
        if meta.get("world_size") == self.env.world and state is not None:
            set_rng_state(state, self.device)
        elif self.env.main:
            print(
                f"genlab: resuming with {self.env.world} process(es) where the checkpoint had "
                f"{meta.get('world_size')}: random streams restart, so the result will differ "
                "from an uninterrupted run",
                file=sys.stderr,
            )
