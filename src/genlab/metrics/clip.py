"""The image-text judge: a small CLIP (Radford et al. 2021) trained on the data set's captions.

A text-to-image model is judged by how well its images match their prompts. Papers use
OpenAI's CLIP; genlab trains its own, as it trains its own domain classifier
(metrics/features.py): a small CNN over images and a hashed bag of words, word pairs and
character trigrams over text (so any text goes in, unknown words by their spelling), both
mapped to one L2-normalised space by the symmetric InfoNCE loss with a learned temperature,
on the training split only (train; val is reported beside it), cached by a fingerprint of
that data and of the recipe. It reports its own retrieval on the real test pairs: for each
test image, is its own caption first (top-1) or among the first five (top-5) of all the
distinct test captions, overall and for each part of the test split.

    judge = get_judge(DataConfig(name="emoji", size=32))   # trains once, then cached
    judge.image_features(x)        # uint8 (N, 3, S, S) or floats in [-1, 1] -> (N, D), unit rows
    judge.text_features(prompts)   # list of N strings -> (N, D), unit rows
    judge.protocol()               # name, weights_sha256, fingerprint, retrieval on test
"""

from __future__ import annotations

import math
import re
import sys
import time
import zlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from genlab.data import Batcher, DataConfig, load_data
from genlab.data.fetch import cache_dir
from genlab.errors import GenlabError
from genlab.metrics.cache import content_digest, load_weights, store_weights
from genlab.metrics.features import DomainClassifier, _as_input, random_shift

# Part of every fingerprint: bump it when the architecture or the training recipe changes.
JUDGE_VERSION = 1
EMBED_DIM = 128
BUCKETS = 1 << 15  # hashed text features: words, word pairs, character trigrams
DEFAULT_STEPS = 400
# What a damaged or foreign cache entry raises on loading (a bug elsewhere still surfaces).
UNUSABLE = (GenlabError, OSError, ValueError, KeyError, TypeError, RuntimeError)


def text_pieces(text: str) -> tuple[list[int], list[int], list[int]]:
    """A text's hashed features (ids < BUCKETS): its words (and the parts of a hyphenated
    word), its pairs of neighbouring words, and the character trigrams of each word with
    its edges marked (``#dark#`` -> ``#da``, ``dar``, ``ark``, ``rk#``), which carry a word
    never seen in training. crc32, so the same text gives the same ids in any process."""
    words = re.findall(r"[a-z0-9]+(?:['\-][a-z0-9]+)*", text.lower())
    ids = lambda keys: [zlib.crc32(k.encode()) % BUCKETS for k in keys]  # noqa: E731
    unigrams = [f"w:{w}" for w in words]
    unigrams += [f"w:{p}" for w in words if "-" in w for p in w.split("-")]
    pairs = [f"b:{a}|{b}" for a, b in zip(words, words[1:])]
    grams = [f"c:{w[i : i + 3]}" for w in (f"#{w}#" for w in words) for i in range(len(w) - 2)]
    return ids(unigrams), ids(pairs), ids(grams)


class TextEncoder(nn.Module):
    """Three mean-pooled bags of hashed embeddings (words, pairs, trigrams; one shared
    table), concatenated, then an MLP to the joint space: (N,) texts -> (N, embed_dim)."""

    def __init__(self, embed_dim: int = EMBED_DIM, width: int = 128, dropout: float = 0.1):
        super().__init__()
        self.table = nn.EmbeddingBag(BUCKETS, width, mode="mean")
        self.mlp = nn.Sequential(
            nn.LayerNorm(3 * width),
            nn.Linear(3 * width, 2 * width),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(2 * width, embed_dim),
        )

    @staticmethod
    def encode(texts: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The (ids, offsets) of each of the three bags for a batch of texts."""
        pieces = [text_pieces(t) for t in texts]
        out = []
        for kind in range(3):
            rows = [p[kind] for p in pieces]
            offsets = torch.tensor([0] + [len(r) for r in rows[:-1]]).cumsum(0)
            out.append((torch.tensor([i for r in rows for i in r], dtype=torch.long), offsets))
        return out

    def forward(self, bags: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        device = self.table.weight.device
        pooled = [self.table(ids.to(device), offsets.to(device)) for ids, offsets in bags]
        return self.mlp(torch.cat(pooled, dim=1))


class ClipModel(nn.Module):
    """An image encoder (the domain classifier's CNN, its head the projection), a text
    encoder, and the InfoNCE temperature (as a log scale, CLIP's initial 1/0.07)."""

    def __init__(self, shape: tuple[int, int, int], embed_dim: int = EMBED_DIM, width: int = 128):
        super().__init__()
        self.shape, self.embed_dim, self.width = tuple(shape), embed_dim, width
        self.image = DomainClassifier(self.shape, embed_dim, feature_dim=width)
        self.text = TextEncoder(embed_dim)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_images(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image(x), dim=1)

    def encode_texts(self, bags) -> torch.Tensor:
        return F.normalize(self.text(bags), dim=1)

    def loss(self, x: torch.Tensor, bags) -> torch.Tensor:
        """The symmetric InfoNCE loss of a batch of matching (image, caption) pairs."""
        logits = self.log_scale.clamp(max=math.log(100)).exp() * (
            self.encode_images(x) @ self.encode_texts(bags).T
        )  # (B, B)
        target = torch.arange(len(x), device=x.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def _captions(images, split: str) -> list[str]:
    captions = getattr(images, "captions", None)
    if captions is None or len(captions) != len(images.x):
        raise GenlabError(
            f"{images.name} has no captions in its {split} split; the image-text judge "
            "trains on (image, caption) pairs (a captioned set such as emoji)"
        )
    return list(captions)


def train_clip(
    train,
    *,
    steps: int = DEFAULT_STEPS,
    batch_size: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
    progress: bool = True,
) -> ClipModel:
    """Train a ClipModel on the captioned ImageSet ``train`` (CPU; the same seed gives the
    same weights; the global RNG is left untouched). AdamW, a short warmup and a cosine
    decay, random shifts of up to 2 pixels (1 at 16x16 and below); no flips (arrows and
    letters have a direction)."""
    captions = _captions(train, "train")
    if steps < 1:
        raise GenlabError(f"the judge's steps must be at least 1, got {steps}")
    n = len(train.x)
    batch_size = min(batch_size, n)
    shift = 1 if min(train.x.shape[2:]) <= 16 else 2
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ClipModel(tuple(train.x.shape[1:]))
        decay = [p for p in model.parameters() if p.ndim >= 2]
        rest = [p for p in model.parameters() if p.ndim < 2]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}],
            lr=lr,
        )
        warmup = min(steps, max(10, steps // 10))  # a short budget collapses without it
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt,
            lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / steps)),
        )
        batcher, aug = Batcher(n, batch_size, seed), torch.Generator().manual_seed(seed)
        model.train()
        bar = tqdm(range(steps), desc="image-text judge", disable=not progress, delay=1.0)
        for _ in bar:
            idx = batcher.next()  # (B,)
            x = random_shift(_as_input(train.x[idx], "cpu"), shift, aug)  # (B, C, H, W)
            loss = model.loss(x, TextEncoder.encode([captions[i] for i in idx.tolist()]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return model.eval()


def rank_of_own(sims: np.ndarray, own: np.ndarray) -> np.ndarray:
    """For each row of ``sims`` (N, M), the rank (0 = best) of column ``own[i]``: how many
    columns score strictly higher (ties count in its favour)."""
    mine = sims[np.arange(len(sims)), own][:, None]
    return (sims > mine).sum(1)


def retrieval(img: np.ndarray, txt: np.ndarray, own: np.ndarray, parts=None) -> dict:
    """Image-to-text retrieval: top-1 and top-5 shares of images ``img`` (N, D) whose own
    caption (``own[i]``, a row of ``txt`` (M, D)) ranks first / among the first five of
    the M captions; with ``parts`` (N labels) the same for each part apart."""
    ranks = rank_of_own(img @ txt.T, np.asarray(own))
    out = {"n": len(img), "n_captions": len(txt), "chance_top1": 1 / max(len(txt), 1)}
    groups = {"all": np.ones(len(img), bool)}
    if parts is not None:
        labels = np.asarray(parts)
        groups.update({str(p): labels == p for p in sorted(set(labels.tolist())) if p})
    for name, keep in groups.items():
        out[name] = {
            "top1": float((ranks[keep] < 1).mean()) if keep.any() else None,
            "top5": float((ranks[keep] < 5).mean()) if keep.any() else None,
            "n": int(keep.sum()),
        }
    return out


class Judge:
    """A trained ClipModel with the facts that make its figures reproducible.

    judge.image_features(x)   # (N, D) float64, unit rows
    judge.text_features(ps)   # (N, D) float64, unit rows
    judge.similarity(x, ps)   # (N,) cosine of each image with its prompt
    """

    name = "judge"

    def __init__(self, model: ClipModel, *, weights_sha256: str, fingerprint: str, meta: dict):
        self.model = model.eval()
        self.weights_sha256, self.fingerprint, self.meta = weights_sha256, fingerprint, meta
        self.input_shape = tuple(model.shape)

    @torch.no_grad()
    def image_features(self, x, batch_size: int = 500, bar=None) -> np.ndarray:
        """Images (N, C, H, W), uint8 or floats in [-1, 1] -> float64 (N, D), unit rows."""
        x = torch.as_tensor(x)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise GenlabError(
                f"images of shape {tuple(x.shape)} do not fit the image-text judge, trained on "
                f"(N, {', '.join(map(str, self.input_shape))}); give images of the data set's "
                "shape (same data.size)"
            )
        out = []
        for i in range(0, len(x), batch_size):
            out.append(self.model.encode_images(_as_input(x[i : i + batch_size], "cpu")).double())
            if bar is not None:
                bar.update(len(out[-1]))
        return torch.cat(out).numpy() if out else np.zeros((0, self.model.embed_dim))

    features = image_features  # what metrics/cache.py's cached_features calls

    @torch.no_grad()
    def text_features(self, prompts: list[str], batch_size: int = 1000) -> np.ndarray:
        """Texts (any; unknown words by their spelling) -> float64 (N, D), unit rows."""
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise GenlabError("the judge's text_features takes a list of strings")
        out = [
            self.model.encode_texts(TextEncoder.encode(prompts[i : i + batch_size])).double()
            for i in range(0, len(prompts), batch_size)
        ]
        return torch.cat(out).numpy() if out else np.zeros((0, self.model.embed_dim))

    def similarity(self, x, prompts: list[str]) -> np.ndarray:
        """Cosine of each image with its own prompt: (N,) float64."""
        return (self.image_features(x) * self.text_features(prompts)).sum(1)

    def protocol(self) -> dict:
        """What a saved score records about its judge."""
        keep = ("test_retrieval", "val_retrieval", "steps", "n_train", "train_seconds")
        return {
            "name": self.name,
            "weights_sha256": self.weights_sha256,
            "fingerprint": self.fingerprint,
            "version": JUDGE_VERSION,
            "input_shape": list(self.input_shape),
            "embed_dim": self.model.embed_dim,
            "loss": "symmetric InfoNCE, learned temperature",
            **{k: self.meta.get(k) for k in keep},
        }


def judge_retrieval(judge: Judge, images) -> dict:
    """The judge's retrieval on the real pairs of ``images`` (a captioned ImageSet): each
    image's own caption among all its distinct captions, per part when it has parts."""
    captions = _captions(images, "test")
    distinct = sorted(set(captions))
    where = {c: i for i, c in enumerate(distinct)}
    parts = (getattr(images, "attributes", None) or {}).get("part")
    return retrieval(
        judge.image_features(images.x),
        judge.text_features(distinct),
        np.array([where[c] for c in captions]),
        parts,
    )


def load_splits(data: DataConfig, progress: bool = True) -> tuple:
    """The (train, val, test) ImageSets of a captioned data set."""
    return tuple(load_data(data, s, progress) for s in ("train", "val", "test"))


def get_judge(
    data: DataConfig,
    *,
    steps: int | None = None,
    progress: bool = True,
    retrain: bool = False,
    splits: tuple | None = None,
) -> Judge:
    """The image-text judge for ``data``: from the cache, or trained (and cached) now.

    Cached as ``cache_dir()/judges/clip-<fingerprint>.safetensors`` and ``.json``; the
    fingerprint covers the training images and captions, ``steps`` (the training budget,
    None: DEFAULT_STEPS) and JUDGE_VERSION. ``splits``: (train, val, test) when the caller
    has loaded them already."""
    steps = DEFAULT_STEPS if steps is None else steps
    train, val, test = splits if splits is not None else load_splits(data, progress)
    captions = _captions(train, "train")
    fp = content_digest("clip", JUDGE_VERSION, steps, train.x, captions)
    stem = cache_dir() / "judges" / f"clip-{fp}"
    if not retrain and stem.with_suffix(".json").exists():
        try:
            tensors, meta, sha = load_weights(stem, fp, JUDGE_VERSION)
            model = ClipModel(tuple(meta["input_shape"]))
            model.load_state_dict(tensors)
            return Judge(model, weights_sha256=sha, fingerprint=fp, meta=meta)
        except UNUSABLE as e:
            why = " ".join(str(e).split())[:160]
            print(f"genlab: cached judge {stem} is unusable ({why}); retraining", file=sys.stderr)
    start = time.perf_counter()
    model = train_clip(train, steps=steps, progress=progress)
    seconds = time.perf_counter() - start
    judge = Judge(model, weights_sha256="", fingerprint=fp, meta={})
    meta = {
        "version": JUDGE_VERSION,
        "fingerprint": fp,
        "data": data.name,
        "input_shape": list(model.shape),
        "steps": steps,
        "n_train": len(train.x),
        "train_seconds": round(seconds, 1),
        "val_retrieval": judge_retrieval(judge, val),
        "test_retrieval": judge_retrieval(judge, test),
    }
    judge.weights_sha256 = store_weights(stem, model.state_dict(), meta)
    judge.meta = meta
    t = meta["test_retrieval"]
    print(
        f"genlab: trained the image-text judge on {data.name} ({len(train.x)} pairs, "
        f"{seconds:.0f} s): test retrieval top-1 {t['all']['top1']:.1%}, top-5 "
        f"{t['all']['top5']:.1%} among {t['n_captions']} captions; cached in {stem.parent}",
        file=sys.stderr,
    )
    return judge
