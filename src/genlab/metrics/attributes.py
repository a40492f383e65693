"""Attribute classifiers of a captioned image set: is a drawing in the style asked, and does
it show the skin tone asked?

Both attributes are matters of colour more than of shape: a vendor draws with its own
palette and shading (Twemoji's flat fills, Noto's gradients), and a skin tone is a colour.
So each classifier reads an image's colours, not its content: a soft (trilinear) 8x8x8
histogram of its non-white pixels' colours and a histogram of its local pixel steps
(flat fills against gradients), square-rooted, into a small MLP. A CNN (the domain
classifier's, metrics/features.py) learns the content instead: trained on the same images
it reached 87-92% on the test split's part (a), twitter drawings of emoji whose google
drawings it had seen, calling the drawing by the emoji it knows; the histograms reach
about 98%. Training adds Gaussian pixel noise (sigma up to 12/255) to copies of the
images, so that a generated image's noise does not read as Noto's shading: on the test
images with noise of sigma 8/255 the style classifier keeps about 97%.

Each is trained on the real *training* images with one attribute as the label: ``style``
(the vendor, e.g. google or twitter) on every training image, ``tone`` (light ... dark) on
the images with one skin tone only (no tone and two-tone images left out); cached by a
fingerprint of its images, labels and recipe; and reports its accuracy on the real test
images (and on val).

    clfs = get_attribute_classifiers(DataConfig(name="emoji", size=32))
    clfs["style"].predict(x)                 # ["twitter", "google", ...]
    clfs["tone"].test_accuracy               # on the real test images with one tone
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from genlab.data import DataConfig
from genlab.data.fetch import cache_dir
from genlab.data.images import ImageSet
from genlab.errors import GenlabError
from genlab.metrics.cache import content_digest, load_weights, store_weights
from genlab.metrics.clip import UNUSABLE, load_splits

# Part of every fingerprint: bump it when what is trained on, or how, changes.
ATTRIBUTE_VERSION = 1
TONES = ("light", "medium-light", "medium", "medium-dark", "dark")
ATTRIBUTES = ("style", "tone")
BINS = 8  # colour levels per channel
STEP_EDGES = (0.5, 1.5, 3, 6, 12, 24, 48, 96)  # pixel steps (0..255) between histogram bins
WHITE = 248  # a pixel is background when every channel is at least this
RECIPE = {"epochs": 100, "noisy_copies": 4, "noise": 12.0, "width": 256, "lr": 1e-3}


def _to_255(x) -> torch.Tensor:
    """uint8 0..255 or floats in [-1, 1] -> float32 0..255, (N, 3, H, W)."""
    x = torch.as_tensor(x)
    return x.float() if x.dtype == torch.uint8 else (x.float().clamp(-1, 1) + 1) * 127.5


def colour_histogram(x: torch.Tensor, bins: int = BINS) -> torch.Tensor:
    """Share of the non-white pixels of each image (N, 3, H, W; 0..255) in each of the
    bins^3 colour cells, each pixel spread over its 8 nearest cell centres: (N, bins^3)."""
    n = len(x)
    weight = (x < WHITE).any(1).flatten(1).float()  # (N, P)
    v = (x.flatten(2) / 255.0 * bins - 0.5).clamp(0, bins - 1)  # (N, 3, P) cell coordinates
    low = v.floor().clamp(max=bins - 2).long()  # (N, 3, P)
    frac = v - low
    out = torch.zeros(n, bins**3)
    for corner in range(8):
        up = [(corner >> ch) & 1 for ch in range(3)]
        cell, w = torch.zeros_like(low[:, 0]), weight
        for ch in range(3):
            cell = cell * bins + low[:, ch] + up[ch]
            w = w * (frac[:, ch] if up[ch] else 1 - frac[:, ch])
        out.scatter_add_(1, cell, w)
    return out / out.sum(1, keepdim=True).clamp(min=1e-6)


def step_histogram(x: torch.Tensor) -> torch.Tensor:
    """Share of the non-white pixels of each image (N, 3, H, W; 0..255) whose largest step
    to the right or below falls in each STEP_EDGES bin, and the non-white share: (N, 10)."""
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().amax(1)[:, :-1, :]  # (N, H-1, W-1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().amax(1)[:, :, :-1]
    step = torch.maximum(dx, dy)
    inked = (x < WHITE).any(1)[:, :-1, :-1].float()
    edges = [-1.0, *STEP_EDGES, 256.0]
    counts = torch.stack(
        [
            (((step > lo) & (step <= hi)).float() * inked).sum((1, 2))
            for lo, hi in zip(edges, edges[1:])
        ],
        dim=1,
    )  # (N, 9)
    share = counts / counts.sum(1, keepdim=True).clamp(min=1)
    return torch.cat([share, inked.mean((1, 2))[:, None]], dim=1)


def colour_features(x) -> torch.Tensor:
    """What the attribute classifiers read: (N, 3, H, W) uint8 or floats in [-1, 1] ->
    (N, bins^3 + 10), the square roots of both histograms, the non-white share."""
    x = _to_255(x)
    steps = step_histogram(x)
    return torch.cat([colour_histogram(x).sqrt(), steps[:, :-1].sqrt(), steps[:, -1:]], dim=1)


class PaletteClassifier(nn.Module):
    """An MLP over ``colour_features``: images -> class logits (N, num_classes)."""

    def __init__(self, num_classes: int, width: int = RECIPE["width"], dropout: float = 0.2):
        super().__init__()
        self.num_classes, self.width = num_classes, width
        self.mlp = nn.Sequential(
            nn.Linear(BINS**3 + len(STEP_EDGES) + 2, width),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(width, num_classes),
        )

    def forward(self, x) -> torch.Tensor:
        return self.mlp(colour_features(x))


def _noisy(x: torch.Tensor, noise: float, g: torch.Generator) -> torch.Tensor:
    """uint8 images with Gaussian noise of a sigma drawn per image from [0, noise]."""
    sigma = noise * torch.rand(len(x), 1, 1, 1, generator=g)
    noisy = x.float() + sigma * torch.randn(x.shape, generator=g)
    return noisy.round().clamp(0, 255).to(torch.uint8)


def train_palette(train: ImageSet, *, seed: int = 0, progress: bool = True, **recipe) -> nn.Module:
    """Train a PaletteClassifier on the labelled uint8 ImageSet ``train`` (RECIPE, updated
    by ``recipe``): AdamW over ``epochs`` passes, each over the clean images or one of
    ``noisy_copies`` copies with pixel noise, in turn. The same seed gives the same
    weights; the global RNG is left untouched."""
    r = {**RECIPE, **recipe}
    g = torch.Generator().manual_seed(seed)
    views = [colour_features(train.x)]
    views += [colour_features(_noisy(train.x, r["noise"], g)) for _ in range(r["noisy_copies"])]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = PaletteClassifier(train.num_classes, r["width"])
        opt = torch.optim.AdamW(model.parameters(), lr=r["lr"], weight_decay=0.05)
        model.train()
        bar = tqdm(range(r["epochs"]), desc="attribute classifier", disable=not progress, delay=1.0)
        for epoch in bar:
            feats = views[epoch % len(views)]
            order = torch.randperm(len(feats), generator=g)
            for start in range(0, len(order), 256):
                idx = order[start : start + 256]
                loss = F.cross_entropy(model.mlp(feats[idx]), train.y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, images: ImageSet) -> float | None:
    """Share of the labelled ``images`` the model classifies correctly (None: no images)."""
    if len(images.x) == 0:
        return None
    return float((model(images.x).argmax(1) == images.y).float().mean())


def attribute_classes(name: str, images) -> list[str]:
    """The classes of attribute ``name``: the tones in order, the styles as found."""
    if name == "tone":
        return list(TONES)
    return sorted(set(_attribute(images, name)))


def _attribute(images, name: str) -> list:
    values = (getattr(images, "attributes", None) or {}).get(name)
    if values is None or len(values) != len(images.x):
        raise GenlabError(
            f"{images.name} has no {name!r} attribute for each image; the attribute "
            "classifiers need a captioned set with attributes (such as emoji)"
        )
    return list(values)


def labelled(images, name: str, classes: list[str]) -> ImageSet:
    """``images`` with attribute ``name`` as the label, keeping only those with one of
    ``classes`` (tone: the single-tone images)."""
    values = _attribute(images, name)
    keep = [i for i, v in enumerate(values) if v in classes]
    index = {c: k for k, c in enumerate(classes)}
    return ImageSet(
        x=images.x[keep].contiguous(),
        y=torch.tensor([index[values[i]] for i in keep], dtype=torch.int64),
        classes=list(classes),
        name=f"{images.name} ({name})",
        source=getattr(images, "source", ""),
    )


class AttributeClassifier:
    """A trained classifier of one attribute, with the facts that make it reproducible."""

    def __init__(self, attribute: str, model: PaletteClassifier, *, meta: dict, sha: str):
        self.attribute, self.name = attribute, f"{attribute}-classifier"
        self.model, self.meta, self.weights_sha256 = model.eval(), meta, sha
        self.classes, self.fingerprint = list(meta["classes"]), meta["fingerprint"]
        self.test_accuracy = meta["test_accuracy"]

    @torch.no_grad()
    def probs(self, x, batch_size: int = 2000) -> np.ndarray:
        """Class probabilities of images (N, C, H, W), uint8 or floats in [-1, 1]: (N, K)."""
        x = torch.as_tensor(x)
        out = [
            self.model(x[i : i + batch_size]).double().softmax(1)
            for i in range(0, len(x), batch_size)
        ]
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.classes)))

    def predict(self, x) -> list[str]:
        """The class name of each image (N, C, H, W), uint8 or floats in [-1, 1]."""
        return [self.classes[i] for i in self.probs(x).argmax(1)]

    def protocol(self) -> dict:
        keep = ("test_accuracy", "val_accuracy", "n_train", "n_test", "recipe", "train_seconds")
        return {
            "name": self.name,
            "attribute": self.attribute,
            "classes": self.classes,
            "weights_sha256": self.weights_sha256,
            "fingerprint": self.fingerprint,
            "version": ATTRIBUTE_VERSION,
            "reads": "colour and pixel-step histograms (not shapes)",
            "trained_on": "real training images"
            + (" with one skin tone" if self.attribute == "tone" else ""),
            **{k: self.meta.get(k) for k in keep},
        }


def get_attribute_classifier(
    name: str,
    data: DataConfig,
    splits: tuple,
    *,
    progress: bool = True,
    retrain: bool = False,
    **recipe,
) -> AttributeClassifier:
    """The classifier of attribute ``name`` ("style" or "tone") for ``data``'s (train, val,
    test) splits: from ``cache_dir()/judges/``, or trained (and cached) now; ``recipe``
    overrides RECIPE (and so names another cache entry)."""
    train, val, test = splits
    classes = attribute_classes(name, train)
    if len(classes) < 2:
        raise GenlabError(f"{data.name} has {len(classes)} {name} class; a classifier needs 2")
    tr, va, te = (labelled(s, name, classes) for s in (train, val, test))
    r = {**RECIPE, **recipe}
    fp = content_digest(name, ATTRIBUTE_VERSION, r, tr.x, tr.y, classes)
    stem = cache_dir() / "judges" / f"{name}-{fp}"
    if not retrain and stem.with_suffix(".json").exists():
        try:
            tensors, meta, sha = load_weights(stem, fp, ATTRIBUTE_VERSION)
            model = PaletteClassifier(len(meta["classes"]), meta["recipe"]["width"])
            model.load_state_dict(tensors)
            return AttributeClassifier(name, model, meta=meta, sha=sha)
        except UNUSABLE as e:
            why = " ".join(str(e).split())[:160]
            print(
                f"genlab: cached {name} classifier {stem} is unusable ({why}); retraining",
                file=sys.stderr,
            )
    start = time.perf_counter()
    model = train_palette(tr, progress=progress, **r)
    seconds = time.perf_counter() - start
    meta = {
        "version": ATTRIBUTE_VERSION,
        "fingerprint": fp,
        "data": data.name,
        "attribute": name,
        "classes": classes,
        "recipe": r,
        "test_accuracy": accuracy(model, te),
        "val_accuracy": accuracy(model, va),
        "n_train": len(tr.x),
        "n_test": len(te.x),
        "train_seconds": round(seconds, 1),
    }
    sha = store_weights(stem, model.state_dict(), meta)
    acc = meta["test_accuracy"]
    print(
        f"genlab: trained the {name} classifier on {data.name} ({len(tr.x)} images, "
        f"{seconds:.0f} s): test accuracy "
        + (f"{acc:.2%} on {len(te.x)} images" if acc is not None else "(no test images)"),
        file=sys.stderr,
    )
    return AttributeClassifier(name, model, meta=meta, sha=sha)


def get_attribute_classifiers(
    data: DataConfig,
    *,
    splits: tuple | None = None,
    progress: bool = True,
) -> dict[str, AttributeClassifier]:
    """{"style": ..., "tone": ...} for ``data`` (see get_attribute_classifier): those of
    the ATTRIBUTES its images have (none for a captioned set without attributes)."""
    splits = splits if splits is not None else load_splits(data, progress)
    return {
        name: get_attribute_classifier(name, data, splits, progress=progress)
        for name in ATTRIBUTES
        if has_attribute(splits, name)
    }


def has_attribute(splits: tuple, name: str) -> bool:
    """Whether every split gives attribute ``name`` and training shows 2 classes of it."""
    if any(name not in (getattr(s, "attributes", None) or {}) for s in splits):
        return False
    return len(set(_attribute(splits[0], name)) & set(attribute_classes(name, splits[0]))) >= 2
