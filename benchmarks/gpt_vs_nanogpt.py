"""genlab's GPT side by side with nanoGPT: the same model, data, device and budget, one
after the other in one invocation.

    python benchmarks/gpt_vs_nanogpt.py                  # the CPU recipe, on this CPU (~3 min)
    python benchmarks/gpt_vs_nanogpt.py --config gpu     # the GPU recipe, on a CUDA GPU (~5 min)
    python benchmarks/gpt_vs_nanogpt.py --anchor PATH    # nanoGPT elsewhere than ../shared/anchors

nanoGPT (an unmodified copy, ``../shared/anchors/nanoGPT``) is copied into a scratch folder,
its ``prepare.py`` makes its Tiny Shakespeare files from the same ``input.txt`` genlab reads
(character level, first 90% train, last 10% validation), and its ``train.py`` runs its recipe;
then ``genlab train gpt`` runs the same model and schedule as a user would run it (the
tokens/s it logs, its checkpoints, samples and validations included). Configurations:

- ``cpu``: nanoGPT's CPU recipe: 4 layers, 4 heads, width 128, context 64, batch 12, no
  dropout, lr 1e-3, 2,000 steps, float32 (nanoGPT's CPU default), no compile. genlab runs it
  in float32 too (``train.precision=fp32``). A third run, ``genlab --preset fast``, is the
  time-to-quality line: how soon genlab reaches nanoGPT's validation loss by any setting it
  offers (bf16 on a CPU with AMX units, batch and learning rate).
- ``gpu``: nanoGPT's Shakespeare recipe: 6 layers, 6 heads, width 384, context 256, batch
  64, dropout 0.2, bf16, torch.compile, its own config file, stopped after 2,000 steps
  (32.8M tokens); genlab's ``--preset gpu`` for 2,000 steps, bf16 and compiled.

What is measured, the same way for both:
- tokens/s: the median over windows of 10 steps, each timed after a synchronising read of
  the loss (nanoGPT: the arrival of its log line every 10 iterations; genlab: its own log
  record every 10 steps), leaving out the first 5 windows and every window holding an
  evaluation, a sample or a checkpoint. ``warmup_s`` is the first window less a median one:
  on a GPU, mostly compilation.
- peak memory: the process's peak resident memory, and on a GPU the peak CUDA allocation.
- validation loss at equal tokens: both final models scored here by one function over the
  whole validation split, non-overlapping windows of the context, every token predicted
  once (genlab's own protocol), in float32; nanoGPT's own estimate (random batches) beside.
- wall time: from launching the process to the evaluation that first reaches the target
  loss (nanoGPT: its last evaluation, the end of its recipe).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
WINDOW = 10  # steps per timed window
SKIP = 5  # windows left out at the start

CONFIGS = {
    "cpu": {
        "nanogpt": (
            "--device=cpu --compile=False --eval_iters=20 --log_interval=10 --block_size=64 "
            "--batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 "
            "--lr_decay_iters=2000 --dropout=0.0"
        ).split(),
        # nanoGPT's recipe in genlab's keys: the cpu preset is its model at width 256, and
        # nanoGPT's schedule (warm-up 100, cosine to lr/10 at 2,000, AdamW 0.1, beta2 0.99)
        "genlab": (
            "--preset cpu --device cpu --steps 2000 model.n_embd=128 train.lr=1e-3 "
            "train.eval_every=250 train.precision=fp32 train.compile=false"
        ).split(),
        "fast": "--preset fast --device cpu".split(),
        "block": 64,
        "tokens_per_step": 12 * 64,
        "target": 1.886,  # nanoGPT's CPU recipe, its own estimate at step 2,000
    },
    "gpu": {
        "nanogpt": ["--max_iters=2000", "--log_interval=10"],
        "genlab": (
            "--preset gpu --device cuda --steps 2000 train.precision=bf16 train.compile=true"
        ).split(),
        "fast": None,
        "block": 256,
        "tokens_per_step": 64 * 256,
        "target": 1.45,  # the bar; nanoGPT's best is 1.479
    },
}

# Runs a program in this interpreter and, as it ends, prints its peak memory: runpy for
# nanoGPT's scripts (unchanged; ``requests`` stubbed for prepare.py, which downloads only
# when input.txt is missing), genlab's CLI for genlab.
WRAPPER = r"""
import json, resource, runpy, sys, types
target, argv = sys.argv[1], sys.argv[2:]
code = 0
try:
    if target == "genlab":
        from genlab.cli import main
        code = main(argv)
    else:
        sys.modules.setdefault("requests", types.ModuleType("requests"))
        sys.argv = [target, *argv]
        runpy.run_path(target, run_name="__main__")
finally:
    peak = {"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    import torch
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        peak["cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print("BENCH_PEAK " + json.dumps(peak), flush=True)
sys.exit(code)
"""


def launch(args: list[str], cwd: Path, on_line=None) -> tuple[list[tuple[float, str]], dict, float]:
    """Run WRAPPER with ``args``; returns (timestamped output lines, peak memory, wall s).
    ``on_line(t, line)`` sees each line as it arrives (t: seconds since launch)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", WRAPPER, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines, peak = [], {}
    for line in proc.stdout:
        t = time.perf_counter() - t0
        line = line.rstrip("\n")
        if line.startswith("BENCH_PEAK "):
            peak = json.loads(line[len("BENCH_PEAK ") :])
            continue
        lines.append((t, line))
        if on_line is not None:
            on_line(t, line)
    code = proc.wait()
    wall = time.perf_counter() - t0
    if code != 0:
        tail = "\n".join(s for _, s in lines[-15:])
        sys.exit(f"gpt_vs_nanogpt: {args[0]} failed (exit {code}):\n{tail}")
    return lines, peak, wall


def window_stats(times: list[float], tokens_per_window: int, first_s: float, first_n: float):
    """Median tokens/s over the steady windows (each window's seconds; the first SKIP left
    out), and the warm-up: the first ``first_n`` windows' worth of steps took ``first_s``
    seconds, this much more than steady windows would have."""
    med = statistics.median(times[SKIP:])
    return {
        "tokens_per_s": round(tokens_per_window / med),
        "windows": len(times) - SKIP,
        "warmup_s": round(first_s - first_n * med, 2),
    }


# -- nanoGPT ------------------------------------------------------------------------------
def prepare_nanogpt(anchor: Path, work: Path, text: Path) -> Path:
    copy = work / "nanoGPT"
    shutil.copytree(anchor, copy)
    data = copy / "data" / "shakespeare_char"
    data.chmod(0o755)
    shutil.copyfile(text, data / "input.txt")
    launch(["prepare.py"], data)
    return copy


def run_nanogpt(copy: Path, cfg: dict) -> dict:
    args = ["train.py", "config/train_shakespeare_char.py", *cfg["nanogpt"]]
    lines, peak, wall = launch(args, copy)
    iters, evals = [], []  # (arrival s, iter) and (arrival s, step, val)
    for t, line in lines:
        if m := re.match(r"iter (\d+): loss", line):
            iters.append((t, int(m[1])))
        elif m := re.match(r"step (\d+): train loss [\d.]+, val loss ([\d.]+)", line):
            evals.append((t, int(m[1]), float(m[2])))
    eval_steps = {s for _, s, _ in evals}
    # its first iteration (0, after the step-0 evaluation) comes before the first window
    t_ready = evals[0][0]
    first = next(t for t, i in iters if i == WINDOW)
    times = []
    for (t_a, i_a), (t_b, i_b) in zip(iters, iters[1:]):
        # the window (i_a, i_b]; an evaluation runs at the top of iteration i_b's loop
        if i_b - i_a == WINDOW and not any(i_a < s <= i_b for s in eval_steps):
            times.append(t_b - t_a)
    stats = window_stats(times, WINDOW * cfg["tokens_per_step"], first - t_ready, 1.1)
    last_t, last_step, last_val = evals[-1]
    return {
        **stats,
        "peak": peak,
        "wall_s": round(wall, 1),
        "own_val_estimates": {s: v for _, s, v in evals},
        "recipe_end_s": round(last_t, 1),  # launch -> its last evaluation line
        "best": _best([(t, step, val) for t, step, val in evals if step > 0]),
        "steps": last_step,
    }


def nanogpt_model(copy: Path, device: torch.device):
    spec = importlib.util.spec_from_file_location("nanogpt_model", copy / "model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    # tensors and plain values only: nothing in it may run code on load
    path = copy / "out-shakespeare-char" / "ckpt.pt"
    ckpt = torch.load(path, map_location=device, weights_only=True)
    with contextlib.redirect_stdout(sys.stderr):  # it prints its size: keep stdout JSON
        model = mod.GPT(mod.GPTConfig(**ckpt["model_args"]))
    state = {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()}
    model.load_state_dict(state)
    # its vocabulary as its prepare.py builds it (every character of input.txt, sorted),
    # rather than unpickling the meta.pkl that holds it
    text = (copy / "data" / "shakespeare_char" / "input.txt").read_text(encoding="utf-8")
    stoi = {c: i for i, c in enumerate(sorted(set(text)))}
    if len(stoi) != ckpt["model_args"]["vocab_size"]:
        sys.exit(f"gpt_vs_nanogpt: nanoGPT's vocabulary has {ckpt['model_args']['vocab_size']} ids")
    return model.to(device).eval(), stoi, int(ckpt["iter_num"])


# -- genlab -------------------------------------------------------------------------------
def run_genlab(out: Path, args: list[str], target: float | None) -> dict:
    seen: dict[str, float] = {}
    metrics = out / "metrics.jsonl"
    stop = threading.Event()

    def watch():  # when each validation record reaches the disk, as a user would see it
        t0 = time.perf_counter()
        while not stop.is_set():
            if metrics.exists():
                for line in metrics.read_text().splitlines():
                    if '"val_loss"' in line and line not in seen:
                        seen[line] = time.perf_counter() - t0
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    argv = ["genlab", "train", "gpt", "--out", str(out), "--quiet", *args]
    argv.append(f"train.log_every={WINDOW}")
    _, peak, wall = launch(argv, ROOT)
    stop.set()
    watcher.join()
    records = [json.loads(s) for s in metrics.read_text().splitlines()]
    busy = {r["step"] for r in records if "val_loss" in r}  # periodic work ran at these steps
    train = [r for r in records if "tokens_per_s" in r]
    per_window = WINDOW * train[0]["tokens"] // train[0]["step"]  # tokens in 10 steps
    times = [
        per_window / r["tokens_per_s"]  # the window's seconds, by genlab's own clock
        for prev, r in zip([None, *train], train)
        if r["step"] - (prev["step"] if prev else 0) == WINDOW
        and (prev is None or prev["step"] not in busy)
    ]
    vals = [(seen.get(json.dumps(r)), r) for r in records if "val_loss" in r]
    best = _best([(t, r["step"], r["val_loss"]) for t, r in vals])
    reach = next(((t, r) for t, r in vals if target is not None and r["val_loss"] <= target), None)
    return {
        **window_stats(times, per_window, times[0], 1.0),
        "tokens_per_step": per_window // WINDOW,
        "peak": peak,
        "wall_s": round(wall, 1),
        "val_curve": {r["step"]: round(r["val_loss"], 4) for _, r in vals},
        "best": best,
        "reached_target": None
        if reach is None
        else {
            "step": reach[1]["step"],
            "val_loss": round(reach[1]["val_loss"], 4),
            "wall_s_from_launch": round(reach[0], 1),
            "training_s": reach[1].get("val_elapsed_s"),
        },
        "steps": records[-1]["step"],
    }


def _best(evals: list[tuple[float | None, int, float]]) -> dict | None:
    """The lowest validation loss of (arrival s, step, loss), and when it arrived."""
    if not evals:
        return None
    t, step, val = min(evals, key=lambda e: e[2])
    return {"step": step, "val_loss": round(val, 4), "wall_s_from_launch": t and round(t, 1)}


def genlab_model(run: Path, device: torch.device):
    import genlab

    model = genlab.load(run, weights="model", device=device).model
    return model, model.tokenizer


# -- one scoring function for both --------------------------------------------------------
@torch.no_grad()
def whole_split_loss(logits_of, ids: torch.Tensor, block: int, batch: int = 64) -> float:
    """Mean nats per token over ``ids``: windows ids[s : s + block + 1] for s = 0, block, ...,
    each token after the first predicted once (the last window may be shorter)."""
    starts = list(range(0, len(ids) - 1, block))
    total, count = 0.0, 0
    for i in range(0, len(starts), batch):
        group = starts[i : i + batch]
        full = [s for s in group if s + block + 1 <= len(ids)]
        chunks = [torch.stack([ids[s : s + block + 1] for s in full])] if full else []
        chunks += [ids[s:][None] for s in group if s + block + 1 > len(ids)]
        for x in chunks:
            logits = logits_of(x[:, :-1].contiguous()).float()
            total += F.cross_entropy(
                logits.reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1), reduction="sum"
            ).item()
            count += x[:, 1:].numel()
    return total / count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    ap.add_argument("--anchor", type=Path, default=SHARED / "anchors" / "nanoGPT")
    ap.add_argument(
        "--text",
        type=Path,
        default=SHARED / "data" / "tinyshakespeare" / "input.txt",
        help="Tiny Shakespeare's input.txt (genlab reads the same file through its mirror)",
    )
    ap.add_argument("--work", type=Path, help="scratch folder to keep (default: a temporary one)")
    ap.add_argument("--no-fast", action="store_true", help="skip the time-to-quality run")
    ap.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="genlab's same-recipe run with this many seeds (0, 1, ...): the spread of its "
        "validation loss is the noise a difference from nanoGPT's must exceed (nanoGPT's "
        "seed is fixed in its train.py)",
    )
    ap.add_argument(
        "--steps",
        type=int,
        help="a short check of this script: both train this many steps (a multiple of 20), "
        "evaluating halfway and at the end; the figures mean nothing",
    )
    args = ap.parse_args()
    cfg = dict(CONFIGS[args.config])
    if args.steps:
        n, half = args.steps, args.steps // 2
        cfg["nanogpt"] = cfg["nanogpt"] + [
            f"--max_iters={n}",
            f"--lr_decay_iters={n}",
            f"--eval_interval={half}",
        ]
        cfg["genlab"] = cfg["genlab"] + ["--steps", str(n), f"train.eval_every={half}"]
        cfg["fast"] = cfg["fast"] and cfg["fast"] + ["--steps", str(n)]
    for what, path in (("nanoGPT", args.anchor / "train.py"), ("Tiny Shakespeare", args.text)):
        if not path.exists():
            sys.exit(f"gpt_vs_nanogpt: {what} not found at {path}; give --anchor / --text")
    if args.config == "gpu" and not torch.cuda.is_available():
        sys.exit("gpt_vs_nanogpt: --config gpu needs a CUDA GPU; this machine has none")
    # genlab reads the same file as nanoGPT: a mirror of the folder that holds it
    os.environ.setdefault("GENLAB_DATA_MIRROR", str(args.text.parent.parent))
    device = torch.device("cuda" if args.config == "gpu" else "cpu")

    work = args.work or Path(tempfile.mkdtemp(prefix="gpt_vs_nanogpt-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"gpt_vs_nanogpt: {args.config} recipe in {work}", file=sys.stderr)
    copy = prepare_nanogpt(args.anchor, work, args.text)
    print("gpt_vs_nanogpt: nanoGPT ...", file=sys.stderr)
    nano = run_nanogpt(copy, cfg)
    target = cfg["target"]
    print("gpt_vs_nanogpt: genlab, the same recipe ...", file=sys.stderr)
    gen = run_genlab(work / "genlab", cfg["genlab"], target)
    fast = None
    if cfg["fast"] and not args.no_fast:
        print("gpt_vs_nanogpt: genlab --preset fast ...", file=sys.stderr)
        fast = run_genlab(work / "genlab-fast", cfg["fast"], target)
    others = []
    for seed in range(1, args.seeds):
        print(f"gpt_vs_nanogpt: genlab, the same recipe, seed {seed} ...", file=sys.stderr)
        run = run_genlab(work / f"genlab-seed{seed}", [*cfg["genlab"], "--seed", str(seed)], None)
        last = run["val_curve"][run["steps"]]  # the whole split, as scored below (same protocol)
        others.append({"seed": seed, "val_loss": last, "tokens_per_s": run["tokens_per_s"]})

    # one protocol for both final models: the whole validation split as nanoGPT cuts it
    text = args.text.read_text(encoding="utf-8")
    val_text = text[int(len(text) * 0.9) :]
    nano_model, stoi, nano_step = nanogpt_model(copy, device)
    nano_ids = torch.tensor([stoi[c] for c in val_text], device=device)
    nano["val_loss_whole_split"] = round(
        whole_split_loss(lambda x: nano_model(x, x)[0], nano_ids, cfg["block"]), 4
    )
    nano["val_loss_at_step"] = nano_step
    gen_model, tok = genlab_model(work / "genlab", device)
    gen_ids = torch.tensor(tok.encode(val_text), device=device)
    gen["val_loss_whole_split"] = round(
        whole_split_loss(gen_model.logits, gen_ids, cfg["block"]), 4
    )
    gen["val_loss_at_step"] = gen["steps"]

    out = {
        "config": args.config,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else _cpu_name(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "tokens_per_step": cfg["tokens_per_step"],
        "nanogpt": nano,
        "genlab": gen,
        "tokens_per_s_ratio": round(gen["tokens_per_s"] / nano["tokens_per_s"], 3),
        "val_loss_delta": round(gen["val_loss_whole_split"] - nano["val_loss_whole_split"], 4),
        "genlab_other_seeds": others,
        "target": target,
    }
    if fast is not None:
        out["genlab_fast"] = fast
        if fast["reached_target"]:
            out["time_to_target_ratio"] = round(
                fast["reached_target"]["wall_s_from_launch"] / nano["recipe_end_s"], 3
            )
    print(json.dumps(out, indent=1))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"cpu, {os.cpu_count()} cores"


if __name__ == "__main__":
    main()
