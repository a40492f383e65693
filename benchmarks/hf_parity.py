"""How closely the library genlab exports to reproduces a run: export RUN (a GPT run to
transformers, a diffusion run to diffusers) into a scratch folder, load it there, and print
the largest differences as JSON.

    pip install 'genlab[hf]'
    python benchmarks/hf_parity.py runs/diff [--steps 50] [--seed 0]
    python benchmarks/hf_parity.py runs/stories [--prompt "Once upon a time"] [--tokens 64]

Diffusion: the U-Net output on random (x, t, label) triples, the null label included, and
16 DDIM images from the same noise by the sampling code in the export's model card
(executed as it stands, but for the steps), against genlab's ``--sampler ddim``. GPT: the logits on the prompt
and the greedy continuation, token for token. Targets: 1e-5 on outputs and logits, 1e-4 on
images, every greedy token equal.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

import torch

import genlab
from genlab.cli import main as cli


def diffusion(run, folder: Path, args) -> dict:
    card = (folder / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    code = code.replace("THIS_FOLDER", str(folder)).replace(
        "num_inference_steps=50", f"num_inference_steps={args.steps}"
    )
    code = code.replace("set_timesteps(50)", f"set_timesteps({args.steps})")
    scope: dict = {}
    torch.manual_seed(args.seed)
    exec(code, scope)
    images = scope["images"]
    if not torch.is_tensor(images):  # the pipeline's numpy (B, H, W, C)
        images = torch.from_numpy(images).permute(0, 3, 1, 2)
    ours = run.model.sample(
        len(images),
        generator=torch.Generator().manual_seed(args.seed),
        sampler="ddim",
        sampling_steps=args.steps,
    )
    unet = scope.get("unet") or scope["pipe"].unet
    c, h, w = run.model.info.shape
    g = torch.Generator().manual_seed(args.seed + 1)
    x = torch.randn(64, c, h, w, generator=g)
    t = torch.randint(0, run.config.model.timesteps, (64,), generator=g)
    y = None
    if run.config.model.conditional:
        y = torch.randint(0, run.model.info.num_classes + 1, (64,), generator=g)
    with torch.no_grad():
        a = run.model.net(x, t, y)
        b = unet(x, t, class_labels=y).sample
    return {
        "unet_max_abs_diff": (a - b).abs().max().item(),
        "unet_output_std": a.std().item(),
        "ddim_steps": args.steps,
        "ddim_images": len(images),
        "ddim_max_abs_diff_0_1": ((ours + 1) / 2 - images).abs().max().item(),
    }


def gpt(run, folder: Path, args) -> dict:
    import transformers

    theirs = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    auto = transformers.AutoTokenizer.from_pretrained(folder)
    ids = run.model.encode_prompt(args.prompt)
    x = torch.tensor([ids])
    with torch.no_grad():
        diff = (run.model.logits(x) - theirs(x).logits).abs().max().item()
    # GPT-2's learned positions end at the context: transformers generates no further
    tokens = min(args.tokens, run.config.model.block_size - len(ids))
    if tokens < 1:
        sys.exit(
            f"genlab: error: the prompt's {len(ids)} tokens fill this model's context of "
            f"{run.config.model.block_size}; give a shorter --prompt"
        )
    ours = run.model.sample_ids(1, prompt=args.prompt, temperature=0.0, max_new_tokens=tokens)
    ours = ours[0]
    gen = theirs.generate(x, max_new_tokens=tokens, do_sample=False)[0, len(ids) :].tolist()
    return {
        "logits_max_abs_diff": diff,
        "same_ids": auto(args.prompt)["input_ids"] == ids,
        "greedy_tokens": len(ours),
        # transformers pads after an end-of-text, where genlab's sampler stops
        "greedy_tokens_equal": ours == gen[: len(ours)],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a GPT or diffusion run directory")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps (diffusion)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prompt", default="Once upon a time", help="prompt (GPT)")
    p.add_argument(
        "--tokens", type=int, default=64, help="greedy tokens (GPT; at most the context)"
    )
    args = p.parse_args(argv)
    run = genlab.load(args.run)
    fmt = {"gpt": "transformers", "diffusion": "diffusers"}.get(run.config.family)
    if fmt is None:
        print(
            f"genlab: error: {args.run} is a {run.config.family} run; "
            "this checks GPT and diffusion runs",
            file=sys.stderr,
        )
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "export"
        if cli(["export", args.run, "--format", fmt, "--out", str(folder)]) != 0:
            return 2
        figures = (diffusion if fmt == "diffusers" else gpt)(run, folder, args)
    print(json.dumps({"run": args.run, "format": fmt, "weights": run.weights, **figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
