"""genlab: train, sample and measure generative models with one trainer,
one run format and one CLI.

    import genlab
    run = genlab.load("runs/demo")
    x = run.sample(16, seed=0, temperature=0.8)   # (16, C, H, W) in [-1, 1]
    genlab.save_images(x, "grid.png")
    genlab.train("vae", "runs/vae", overrides=["train.steps=500"])

The public functions are the ones the CLI calls, imported when first used (so that
``import genlab`` stays cheap):

    load(run_dir, weights="auto", device="cpu")   genlab.run.load: a trained run for sampling
    train(family, out, preset=..., ...)            genlab.training.launch.train: `genlab train`
    save_images(x, out, labels=None, nrow=None)    genlab.outputs.images: a .png grid, .npz or folder/
    families()                                     genlab.registry.names: the registered families
"""

from importlib import import_module
from typing import Any

from genlab.version import __version__

# public name -> (module, name there)
_PUBLIC = {
    "load": ("genlab.run", "load"),
    "train": ("genlab.training.launch", "train"),
    "save_images": ("genlab.outputs.images", "save_images"),
    "families": ("genlab.registry", "names"),
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'genlab' has no attribute {name!r}")
    module, attr = _PUBLIC[name]
    value = getattr(import_module(module), attr)
    globals()[name] = value  # found directly next time
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
