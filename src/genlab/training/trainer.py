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
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from genlab.config import TrainConfig  # noqa: F401  (re-exported)
from genlab.data import Batcher, TensorData
from genlab.errors import ConfigError, RunError
from genlab.fsutil import read_jsonl, save_tensors, write_bytes_atomic
from genlab.models.base import cpu_has_bf16_units
from genlab.training.checkpoint import CheckpointDir, flatten_optimizer, unflatten_optimizer
from genlab.training.distributed import Distributed, rng_state, set_rng_state
from genlab.training.divergence import Divergence
from genlab.training.ema import EMA
from genlab.training.tensorboard import Curves


def lr_factor(step: int, cfg: TrainConfig, time_progress: float = 0.0) -> float:
    """Multiplier of the base LR at ``step`` (0-based): linear warm-up, then a cosine that
    reaches ``min_lr_ratio`` at the last step (or when ``time_progress``, the share of
    the ``train.minutes`` budget used, reaches 1)."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    decay_steps = max(1, cfg.steps - 1 - cfg.warmup_steps)
    p = min(1.0, max((step - cfg.warmup_steps) / decay_steps, time_progress))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p))


def resolve_precision(precision: str, device: torch.device, model) -> str:
    """"fp32" or "bf16": train.precision, with "auto" decided for this device and family
    (bf16 on a CPU with bf16 matrix units where the family sets ``cpu_bf16``)."""
    if precision != "auto":
        return precision
    on_amx = device.type == "cpu" and cpu_has_bf16_units()
    return "bf16" if on_amx and model.cpu_bf16 else "fp32"


class Stepper:
    """What a family that owns its step uses: ``stepper.step("gen", loss)`` back-propagates,
    averages the gradients over DDP ranks, clips, steps that optimizer and clears its
    gradients; returns the gradient norm. (The family's model is not DDP-wrapped here,
    because its ordered updates run several forward passes per step.)"""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer], clip: float, world: int = 1):
        self.optimizers, self.clip, self.world = optimizers, clip, world

    def step(self, name: str, loss: torch.Tensor) -> torch.Tensor:
        opt = self.optimizers[name]
        loss.backward()
        if self.world > 1:
            grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat)
            flat /= self.world
            parts = flat.split([g.numel() for g in grads])
            torch._foreach_copy_(grads, [f.view_as(g) for f, g in zip(parts, grads)])
        norm = _clip(opt, self.clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return norm


def _clip(opt: torch.optim.Optimizer, max_norm: float) -> torch.Tensor:
    params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
    if max_norm > 0:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    return (
        torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
        if params
        else torch.zeros(())
    )


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
        if self.device.type == "cuda":
            # TF32 for what autocast leaves in float32 (as nanoGPT): Ampere and later GPUs
            # multiply float32 matrices through it 3-8x faster, to about 1e-3 relative
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
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
        self.curves = Curves(self.run_dir / "tensorboard", tc.tensorboard, self.env.main)
        self.step, self.elapsed, self.examples = 0, 0.0, 0
        self._t0, self._e0 = time.perf_counter(), 0.0
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
        return torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"
        )

    # -- the loop -----------------------------------------------------------
    def fit(self, until: int | None = None) -> dict[str, Any]:
        """Train until ``train.steps`` (or ``train.minutes``); returns a summary.

        ``until`` ends this session early at that step, with a checkpoint, and
        leaves the schedule as it is: a later resume continues the same run.
        """
        tc, env = self.tc, self.env
        end = min(tc.steps, until) if until is not None else tc.steps
        if self.step >= end:
            if env.main and self.progress:
                print(
                    f"genlab: {self.run_dir} is already at step {self.step} of {tc.steps}; "
                    "nothing to do (a larger --steps extends it)",
                    file=sys.stderr,
                )
            return self._summary(stopped_by_time=False)
        if env.main:
            (self.run_dir / "samples").mkdir(parents=True, exist_ok=True)
            if tc.precision == "auto" and self.precision == "bf16" and self.progress:
                print(
                    "genlab: training in bf16 on this CPU's matrix units (train.precision=auto;"
                    " train.precision=fp32 turns it off)",
                    file=sys.stderr,
                )
        log = open(self.run_dir / "metrics.jsonl", "a") if env.main else None
        self.curves.open(self.step)  # train.tensorboard: an extra view of the same records
        bar = tqdm(
            total=tc.steps,
            initial=self.step,
            desc=f"train {self.model.family}",
            unit="step",
            disable=not (self.progress and env.main),
            dynamic_ncols=True,
            mininterval=0.5,
            file=sys.stderr,
        )
        self.model.train()
        sums: dict[str, torch.Tensor] = {}
        window, t_window = 0, time.perf_counter()
        self._t0, self._e0 = time.perf_counter(), self.elapsed  # the training clock
        stopped_by_time = False
        last_alarm = None
        if tc.on_divergence == "rollback" and self.ckpt.latest() is None:
            self.save_checkpoint()  # so that even an early divergence has somewhere to go back
        self.divergence.reset()
        try:
            while self.step < end:
                self.elapsed = self._clock()
                if tc.minutes is not None and self.elapsed >= tc.minutes * 60:
                    stopped_by_time = True
                    break
                out = self._train_step()
                for k, v in out.items():
                    sums[k] = sums[k] + v if k in sums else v
                window += 1
                self.step += 1
                self.examples += tc.batch_size
                bar.update(1)
                self.elapsed = self._clock()
                time_up = tc.minutes is not None and self.elapsed >= tc.minutes * 60
                # a record (and the divergence check on it) before anything that writes
                # weights or judges them: checkpoints, validation (best weights), grids
                if (
                    self.step % tc.log_every == 0
                    or self.step in (end, tc.steps)
                    or time_up
                    or any(self._due(e) for e in (tc.checkpoint_every, tc.eval_every))
                ):
                    rec = dict(
                        zip(
                            sums,
                            (self.env.mean(torch.stack(list(sums.values()))) / window).tolist(),
                        )
                    )
                    now = time.perf_counter()
                    rec.update(
                        step=self.step,
                        lr=self._lr(),
                        examples=self.examples,
                        examples_per_s=window * tc.batch_size / (now - t_window),
                        elapsed_s=round(self.elapsed, 3),
                    )
                    per = getattr(self.train_data, "tokens_per_example", 0)
                    if per:  # text: training tokens seen (targets predicted)
                        rec["tokens"] = self.examples * per
                        rec["tokens_per_s"] = rec["examples_per_s"] * per
                    alarm = self.model.alarm(rec)
                    if alarm:
                        rec["alarm"] = alarm
                        if last_alarm is None:  # say it when it starts, not every log line
                            tqdm.write(f"genlab: warning at step {self.step}: {alarm}", sys.stderr)
                    last_alarm = alarm
                    bar.set_postfix_str(
                        " ".join(f"{k} {rec[k]:.4g}" for k in self.model.progress_keys if k in rec),
                        refresh=False,
                    )
                    self._log(log, rec)
                    sums, window, t_window = {}, 0, now
                    why = self.divergence.check(rec)
                    if why:
                        if self._can_roll_back():
                            self._roll_back(why, bar)
                            if log is not None:  # the curve was rewritten: reopen it
                                log.close()
                                log = open(self.run_dir / "metrics.jsonl", "a")
                            sums, window, t_window = {}, 0, time.perf_counter()
                            self._t0, self._e0 = time.perf_counter(), self.elapsed
                            continue
                        raise RunError(self._diverged_message(why))
                if time_up:
                    stopped_by_time = True
                    break
                if self.step < end:
                    self._periodic(log, final=False)
            self._periodic(log, final=self.step >= tc.steps or stopped_by_time)
            if self.step < tc.steps and not stopped_by_time:
                self.save_checkpoint()  # a session cut short by `until`
        finally:
            bar.close()
            if log:
                log.close()
            self.curves.close()
        return self._summary(stopped_by_time)

    def _clock(self) -> float:
        """Seconds of training so far, over every session of this run."""
        return self._e0 + time.perf_counter() - self._t0

    def _due(self, every: int) -> bool:
        return every > 0 and self.step % every == 0

    def _diverged_message(self, why: str) -> str:
        last = self.ckpt.latest()
        tried = f" after {self.rollbacks} rollback(s)" if self.rollbacks else ""
        keep = (
            f"the run keeps its last good checkpoint, {last}"
            if last is not None
            else "nothing was saved (no checkpoint yet)"
        )
        return (
            f"training diverged at step {self.step}{tried}: {why}; {keep}. Lower train.lr or "
            "raise train.warmup_steps, or set train.on_divergence=rollback"
        )

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
        if self.env.main:
            with open(self.run_dir / "metrics.jsonl", "a") as log:
                log.write(json.dumps({"step": self.step, "rollback": msg}) + "\n")

    def _summary(self, stopped_by_time: bool) -> dict[str, Any]:
        return {
            "step": self.step,
            "elapsed_s": self.elapsed,
            "best_val_loss": self.best_val,
            "stopped_by_time": stopped_by_time,
            "precision": self.precision,
            "run_dir": str(self.run_dir),
        }

    def _time_progress(self) -> float:
        return self.elapsed / (self.tc.minutes * 60) if self.tc.minutes is not None else 0.0

    def _lr(self) -> float:
        g = next(iter(self.optimizers.values())).param_groups[0]
        return g["lr"]

    def _train_step(self) -> dict[str, torch.Tensor]:
        tc = self.tc
        f = lr_factor(self.step, tc, self._time_progress())
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * f
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
        norms = [_clip(opt, tc.grad_clip) for opt in self.optimizers.values()]
        for opt in self.optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        total["grad_norm"] = norms[0]
        return total

    # -- validation, samples, checkpoints ---------------------------------
    def _periodic(self, log, final: bool) -> None:
        tc, s = self.tc, self.step
        due = lambda every: final or (every > 0 and s % every == 0)  # noqa: E731
        if due(tc.eval_every) and self.val_data is not None:
            self._validate(log)
        if due(tc.sample_every) and self.env.main:
            self._write_samples()
        if due(tc.checkpoint_every):
            self.save_checkpoint()

    def _sampling_weights(self):
        return self.ema.applied(self.model) if self.ema is not None else contextlib.nullcontext()

    @torch.no_grad()
    def _validate(self, log) -> None:
        if self.env.main:
            self.model.eval()
            sums: dict[str, float] = {}
            n = 0
            # fixed noise, and the training RNG stream left exactly as it was
            devices = [self.device] if self.device.type == "cuda" else []
            with (
                torch.random.fork_rng(devices=devices),
                self._sampling_weights(),
                torch.no_grad(),
            ):
                torch.manual_seed(self.tc.seed + 12345)
                for batch in self.val_data.batches(
                    self.tc.batch_size, self.device, self.tc.eval_batches
                ):
                    batch["step"] = self.step
                    with self._autocast():
                        out = self.model.loss(batch)
                    b = batch.get("count", len(batch["x"]))  # text: tokens predicted
                    for k, v in out.items():
                        sums[k] = sums.get(k, 0.0) + v.float().item() * b
                    n += b
            self.model.train()
            rec = {
                "step": self.step,
                **{f"val_{k}": v / n for k, v in sums.items()},
                "val_examples": n,
                # the training clock when this validation ended (time to a given loss)
                "val_elapsed_s": round(self._clock(), 3),
            }
            if hasattr(self.val_data, "tokens_per_example"):
                # text: the mean over every token of the validation split, predicted once in
                # non-overlapping windows of the model's context
                rec["val_tokens"] = rec.pop("val_examples")
                rec["val_protocol"] = (
                    f"whole validation split, non-overlapping windows of {self.val_data.block}"
                )
            self._log(log, rec)
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
            self.curves.texts(x, self.step)
        else:
            save_images(x, self.run_dir / "samples" / f"step-{self.step:08d}.png")
            self.curves.images(x, self.step)

    def save_checkpoint(self) -> None:
        """Write one consistent checkpoint, then the latest weights for sampling.

        Weights that are no longer finite never replace a good checkpoint."""
        params = [p.detach() for p in self.model.parameters()]
        if params and not bool(torch.stack([p.isfinite().all() for p in params]).all()):
            raise RunError(
                f"the weights hold NaN or inf at step {self.step}; nothing was saved. The last "
                f"good checkpoint is {self.ckpt.latest()}: resume from it with a lower train.lr"
            )
        rng = self.env.gather(rng_state(self.device))
        if self.env.main:
            groups = {
                "model": self.model.state_dict(),
                "rng": {f"rank{r}": s for r, s in enumerate(rng)},
            }
            meta: dict[str, Any] = {
                "step": self.step,
                "data": self.batcher.state_dict(),
                "elapsed_s": self.elapsed,
                "examples": self.examples,
                "best_val_loss": self.best_val,
                "world_size": self.env.world,
                "lr_scale": self.lr_scale,
                "optimizers": {},
            }
            if self.ema is not None:
                groups["ema"] = self.ema.state_dict()
            for name, opt in self.optimizers.items():
                tensors, opt_meta = flatten_optimizer(opt.state_dict())
                groups[f"optim_{name}"] = tensors
                meta["optimizers"][name] = opt_meta
            self.ckpt.write(self.step, groups, meta)
            # the step rides in each file's metadata: evaluation records name it
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
        folder = self.ckpt.latest()
        if folder is None:
            raise RunError(
                f"{self.run_dir} has no checkpoint to resume from; "
                "train it again without --resume into a new --out"
            )
        groups, meta = self.ckpt.read(folder)
        try:
            self.model.load_state_dict(groups["model"])
            if self.ema is not None:
                self.ema.load_state_dict(groups["ema"])
            for name, opt in self.optimizers.items():
                opt.load_state_dict(
                    unflatten_optimizer(groups[f"optim_{name}"], meta["optimizers"][name])
                )
        except (KeyError, RuntimeError, ValueError) as e:
            raise RunError(
                f"checkpoint {folder} does not fit this model/config "
                f"({str(e).splitlines()[0][:100]})"
            ) from None
        self.lr_scale = float(meta.get("lr_scale", 1.0))
        self._set_base_lrs()
        self.step, self.elapsed = int(meta["step"]), float(meta["elapsed_s"])
        self.examples, self.best_val = int(meta["examples"]), float(meta["best_val_loss"])
        self.batcher.load_state_dict(meta["data"])
        if self.env.main:  # drop curve records past the checkpoint: they will be redone
            _truncate_log(self.run_dir / "metrics.jsonl", self.step)
            self.curves.rewind(self.step)
        rng = groups["rng"].get(f"rank{self.env.rank}")
        if meta.get("world_size") == self.env.world and rng is not None:
            set_rng_state(rng, self.device)
        elif self.env.main:
            print(
                f"genlab: resuming with {self.env.world} process(es) where the checkpoint had "
                f"{meta.get('world_size')}: random streams restart, so the result will differ "
                "from an uninterrupted run",
                file=sys.stderr,
            )

    def _log(self, log, rec: dict) -> None:
        if log is not None:
            log.write(json.dumps(rec) + "\n")
            log.flush()
            self.curves.record(rec)


def _truncate_log(path: Path, step: int) -> None:
    """Keep the records of metrics.jsonl up to ``step`` (those after it will be redone); a
    line torn by a kill is dropped (and said), any other bad line is an error."""
    if not path.exists():
        return
    keep = [rec for rec in read_jsonl(path) if rec.get("step", 0) <= step]
    write_bytes_atomic(path, "".join(json.dumps(rec) + "\n" for rec in keep).encode())
