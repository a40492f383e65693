"""genlab: train, sample and measure generative models with one trainer,
one run format and one CLI.

    import genlab
    run = genlab.load("runs/demo")
    x = run.sample(16, seed=0, temperature=0.8)   # (16, C, H, W) in [-1, 1]
    genlab.save_images(x, "grid.png")
"""

from genlab.version import __version__  # noqa: F401  (genlab.__version__)


def load(run_dir, weights: str = "auto", device="cpu"):
    """Load a trained run for sampling (see genlab.run.load)."""
    from genlab.run import load as _load

    return _load(run_dir, weights=weights, device=device)


def train(
    family,
    out,
    *,
    preset="default",
    overrides=(),
    resume=False,
    progress=True,
    until=None,
    init_from=None,
):
    """Train (or resume) a run; same as `genlab train` (see genlab.training.launch.train)."""
    from genlab.training.launch import train as _train

    return _train(
        family,
        out,
        preset=preset,
        overrides=overrides,
        resume=resume,
        progress=progress,
        until=until,
        init_from=init_from,
    )


def save_images(x, out, labels=None, nrow=None):
    """Write samples as a .png grid, an .npz, or a folder/ of PNGs."""
    from genlab.outputs.images import save_images as _save

    return _save(x, out, labels=labels, nrow=nrow)


def families():
    """Names of the registered model families."""
    from genlab.registry import names

    return names()
