"""KV-cached generation against recomputing the whole context at every step.

    python benchmarks/generate_speed.py                 # default GPT preset, CPU
    python benchmarks/generate_speed.py --run runs/gpt  # a trained run's weights instead
    python benchmarks/generate_speed.py --family rnn    # the RNN: state reuse vs re-reading
    python benchmarks/generate_speed.py model.block_size=512      # any config override

Greedy decoding of ``--new`` tokens after a ``--prompt-len``-token prompt, ``--repeats``
times each way, interleaved so that load on a shared machine hits both alike. Prints one
JSON object: whether the two gave exactly the same tokens, the median seconds of each,
tokens per second and the speed-up (a ratio measured in one process, so it is
comparable across machines where absolute times are not).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from genlab.models.ar.generate import generate
from genlab.models.base import DataInfo
from genlab.rundir import RunConfig, build_model


def _model(args):
    if args.run:
        import genlab

        return genlab.load(args.run, device=args.device).model
    cfg = RunConfig.new(args.family, preset="default", overrides=args.overrides)
    torch.manual_seed(0)
    # an untrained model: speed does not depend on the weights, and a 65-symbol vocabulary
    # is Tiny Shakespeare's
    return build_model(cfg, DataInfo.text(args.vocab)).to(args.device).eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", default="gpt", choices=["gpt", "rnn"])
    p.add_argument("--run", help="a trained run to load instead of the default preset")
    p.add_argument("--prompt-len", type=int, default=64)
    p.add_argument("--new", type=int, default=256, help="new tokens per generation")
    p.add_argument("--batch", type=int, default=1, help="sequences generated together")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--vocab", type=int, default=65)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch threads (default: as set up)")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. model.block_size=512")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = _model(args)
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, model.vocab_size, (args.prompt_len,), generator=g).tolist()
    prompts = [prompt] * args.batch
    run = lambda cache: generate(  # noqa: E731
        model, prompts, max_new_tokens=args.new, temperature=0, use_cache=cache
    )
    run(True), run(False)  # warm-up
    times = {True: [], False: []}
    outputs = {}
    for _ in range(args.repeats):
        for cache in (True, False):
            t0 = time.perf_counter()
            outputs[cache] = run(cache)
            times[cache].append(time.perf_counter() - t0)
    cached, fresh = statistics.median(times[True]), statistics.median(times[False])
    same = outputs[True] == outputs[False]
    print(
        json.dumps(
            {
                "family": args.family,
                "model": args.run or "default preset (untrained weights)",
                "parameters": sum(q.numel() for q in model.parameters()),
                "context": model.block_size,
                "prompt_tokens": args.prompt_len,
                "new_tokens": args.new,
                "batch": args.batch,
                "identical_tokens": same,
                "cached_s": round(cached, 4),
                "recompute_s": round(fresh, 4),
                "cached_tokens_per_s": round(args.new * args.batch / cached, 1),
                "recompute_tokens_per_s": round(args.new * args.batch / fresh, 1),
                "speedup": round(fresh / cached, 2),
                "device": args.device,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "machine": platform.machine(),
            },
            indent=2,
        )
    )
    if not same:
        raise SystemExit("the cached and recomputed generations differ")


if __name__ == "__main__":
    main()
