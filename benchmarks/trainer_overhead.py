"""What genlab's trainer costs: steps/s of the VAE on digits through ``Trainer`` against the
same model, optimizer, clipping, LR schedule, EMA and data path in a bare hand-written loop.

    python benchmarks/trainer_overhead.py [--steps 300] [--rounds 3] [--threads 1]

Both run in this one process, interleaved (the order alternates each round) after an
untimed warm-up of each, and the medians are compared. The trainer runs as a user runs it:
logging to metrics.jsonl every ``train.log_every`` steps, the tqdm progress bar on (drawn
to /dev/null), and evaluation, sample grids and checkpoints at the preset's intervals
(their end-of-run instances included), all inside the timed ``fit()``; the JSON says what
periodic work that was, and also gives the ratio without it. Prints one JSON object.
Target: ratio >= 0.9.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from genlab.data import Batcher, DataConfig, TensorData, data_info, load_data
from genlab.rundir import RunConfig, build_model, write_config
from genlab.training.ema import EMA
from genlab.training.schedule import lr_factor
from genlab.training.trainer import Trainer

FAMILY, PRESET = "vae", "default"


def make_config(steps: int) -> RunConfig:
    # the preset's eval / sample / checkpoint intervals and the default log_every, untouched;
    # float32, as the bare loop computes (auto would pick bf16 on a CPU with AMX units)
    return RunConfig.new(
        FAMILY, PRESET, [f"train.steps={steps}", "train.device=cpu", "train.precision=fp32"]
    )


def run_trainer(steps: int, train: TensorData, val: TensorData, info, root: Path) -> dict:
    """One ``Trainer.fit()`` into a fresh run directory; its wall time and periodic work."""
    cfg = make_config(steps)
    run_dir = Path(tempfile.mkdtemp(dir=root))
    write_config(run_dir, cfg, info)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, info)
    trainer = Trainer(run_dir, cfg, model, train, val, progress=True)
    periodic_s = 0.0
    periodic = trainer._periodic  # timed from outside, not changed

    def timed_periodic(*args, **kwargs):
        nonlocal periodic_s
        t = time.perf_counter()
        try:
            return periodic(*args, **kwargs)
        finally:
            periodic_s += time.perf_counter() - t

    trainer._periodic = timed_periodic
    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
        t0 = time.perf_counter()
        trainer.fit()
        seconds = time.perf_counter() - t0
    records = [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines()]
    work = {
        "log_records": sum("loss" in r for r in records),
        "validations": sum("val_loss" in r for r in records),
        "sample_grids": len(list((run_dir / "samples").glob("*.png"))),
        "checkpoints": len(list((run_dir / "state").glob("step-*"))),
    }
    return {"seconds": seconds, "periodic_s": periodic_s, "work": work}


def run_bare(steps: int, train: TensorData, info) -> dict:
    """The same work by hand: batch, forward, backward, clip, LR schedule, Adam, EMA."""
    cfg = make_config(steps)
    tc = cfg.train
    device = torch.device("cpu")
    torch.manual_seed(tc.seed)
    model = build_model(cfg, info).to(device)
    model.train()
    optimizers = model.optimizers(tc)
    for opt in optimizers.values():
        for group in opt.param_groups:
            group["base_lr"] = group["lr"]
    params = [p for opt in optimizers.values() for g in opt.param_groups for p in g["params"]]
    ema = EMA(model, tc.ema_decay)
    batcher = Batcher(len(train), tc.batch_size, tc.seed)
    torch.manual_seed(tc.seed * 7919 + 1)  # the trainer's noise stream on rank 0
    t0 = time.perf_counter()
    for step in range(steps):
        f = lr_factor(step, tc)
        for opt in optimizers.values():
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * f
        batch = train.batch(batcher.next(), device)
        batch["step"] = step
        loss = model(batch)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        ema.update(model, step)
    seconds = time.perf_counter() - t0
    if not torch.isfinite(loss):
        raise RuntimeError(f"the bare loop's loss became {loss.item()}")
    return {"seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300, help="steps per timed run (default 300)")
    p.add_argument("--rounds", type=int, default=3, help="timed runs of each (default 3)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--warmup-steps", type=int, default=30, help="untimed warm-up run of each")
    args = p.parse_args(argv)
    if args.steps < 1 or args.rounds < 1 or args.threads < 1:
        p.error("--steps, --rounds and --threads must be >= 1")
    torch.set_num_threads(args.threads)

    train_set = load_data(DataConfig(), "train", progress=False)
    test_set = load_data(DataConfig(), "test", progress=False)
    info = data_info(train_set)
    train, val = TensorData.from_images(train_set), TensorData.from_images(test_set)
    cfg = make_config(args.steps)

    trainer_runs, bare_runs = [], []
    with tempfile.TemporaryDirectory(prefix="genlab-overhead-") as tmp:
        root = Path(tmp)
        if args.warmup_steps > 0:
            run_trainer(args.warmup_steps, train, val, info, root)
            run_bare(args.warmup_steps, train, info)
        for r in range(args.rounds):
            order = ("trainer", "bare") if r % 2 == 0 else ("bare", "trainer")
            for which in order:
                if which == "trainer":
                    trainer_runs.append(run_trainer(args.steps, train, val, info, root))
                else:
                    bare_runs.append(run_bare(args.steps, train, info))

    def rate(seconds: float) -> float:
        return args.steps / seconds

    trainer_rate = statistics.median(rate(r["seconds"]) for r in trainer_runs)
    loop_rate = statistics.median(rate(r["seconds"] - r["periodic_s"]) for r in trainer_runs)
    bare_rate = statistics.median(rate(r["seconds"]) for r in bare_runs)
    n_params = sum(p.numel() for p in build_model(cfg, info).parameters())
    tc = cfg.train
    result = {
        "trainer_steps_per_s": round(trainer_rate, 2),
        "bare_steps_per_s": round(bare_rate, 2),
        "ratio": round(trainer_rate / bare_rate, 4),
        "steps": args.steps,
        "model": f"{FAMILY} (preset {PRESET}, {n_params} parameters) on digits "
        f"{tuple(info.shape)} x {len(train)}",
        "batch_size": tc.batch_size,
        "threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "trainer_rounds_steps_per_s": [round(rate(r["seconds"]), 2) for r in trainer_runs],
        "bare_rounds_steps_per_s": [round(rate(r["seconds"]), 2) for r in bare_runs],
        "trainer_periodic_work": {
            **trainer_runs[-1]["work"],
            "seconds_median": round(statistics.median(r["periodic_s"] for r in trainer_runs), 3),
            "intervals": {
                "log_every": tc.log_every,
                "eval_every": tc.eval_every,
                "sample_every": tc.sample_every,
                "checkpoint_every": tc.checkpoint_every,
                "note": "evaluation, a sample grid and a checkpoint also run at the end",
            },
            "progress_bar": "tqdm, on, drawn to /dev/null",
        },
        "trainer_loop_steps_per_s": round(loop_rate, 2),
        "ratio_without_periodic_work": round(loop_rate / bare_rate, 4),
        "bare_loop": "Batcher + TensorData.batch, model(batch), backward, clip_grad_norm_, "
        "cosine LR with warm-up, model.optimizers() (AdamW), EMA.update",
        "device": "cpu",
        "torch": torch.__version__,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
