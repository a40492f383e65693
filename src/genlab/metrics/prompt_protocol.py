"""What `genlab eval` measures for a text-to-image model: do its images match their prompts?

The prompts are the captions of the real test images (one generation per caption, or
``per_prompt`` with seeds ``seed``, ``seed + 1``, ...; ``n`` caps the prompts, a seeded
subset). Each figure is given for all prompts and for each part of the test split apart
(emoji: (a) a known emoji in a style not seen for it, (b) a known emoji in a skin tone not
seen on it), with a 95% bootstrap interval over prompts, and beside two references:

- the floor: the real test images themselves, scored the same way as generations;
- shuffled: the generations scored against a seeded random permutation of the prompts,
  what images that ignore their prompt would score.

The figures, judged by the image-text judge (metrics/clip.py) and the attribute
classifiers (metrics/attributes.py), all trained on the real training images only:

- ``clip_score``: 100 x the mean cosine of an image and its prompt in the judge's space
  (as papers report CLIP score, unclipped);
- ``top1``, ``top5``: the image's own prompt ranks first / in the first five among all
  the distinct test captions (image-to-text retrieval);
- ``fid``: FID in the judge's image features against the real test images (of the part);
- ``style_acc``, ``tone_acc``: the share classified in the style / skin tone the prompt
  asks for (tone: prompts with one skin tone);
- ``copy_share``: generations nearer a training image (train and val, in pixels) than the
  1st percentile of the real test images' nearest-training distances (metrics/novelty.py);
  ``other_vendor``: the share whose nearest training image is the other vendor's drawing
  of the prompt's emoji (same "emoji", another "style"): a model copying what it knows;
- ``diversity`` (``per_prompt`` >= 2): the mean cosine distance, in the judge's space,
  between generations of the same prompt; ``diversity_reference`` beside it: between real
  test images of different prompts.

    rec = score_prompts(generate, DataConfig(name="emoji", size=32))  # generate(prompts, seed)
    rec["table"]["a"]["generated"]["style_acc"], rec["table"]["all"]["floor"]["top5"]
    sweep = guidance_sweep(lambda ps, s, g: ..., [1, 2, 4, 8], data)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from genlab.data import DataConfig
from genlab.errors import GenlabError
from genlab.metrics import image as M
from genlab.metrics.attributes import get_attribute_classifiers
from genlab.metrics.cache import cached_features
from genlab.metrics.clip import get_judge, load_splits, rank_of_own
from genlab.metrics.novelty import nearest, pixels
from genlab.outputs.images import to_uint8

# Part of each record's key: bump it when a figure's definition changes.
PROMPT_VERSION = 1
FIGURES = (
    "clip_score",
    "top1",
    "top5",
    "fid",
    "style_acc",
    "tone_acc",
    "copy_share",
    "other_vendor",
    "diversity",
)
COPY_PERCENTILE = 1.0

Generate = Callable[[list[str], int], Any]  # (prompts, seed) -> (N, C, H, W) in [-1, 1]


class Judges:
    """What scores a data set's prompts: its splits, the judge, the attribute classifiers,
    and the real images' facts the scores need (computed once, reused by a sweep)."""

    def __init__(self, data: DataConfig, splits=None, judge_steps=None, progress=True):
        self.data = data
        self.train, self.val, self.test = splits or load_splits(data, progress)
        self.judge = get_judge(data, steps=judge_steps, progress=progress, splits=self.splits)
        self.clfs = get_attribute_classifiers(data, splits=self.splits, progress=progress)
        test = self.test
        self.captions = list(test.captions)
        self.attrs = {k: list(v) for k, v in (test.attributes or {}).items()}
        self.distinct = sorted(set(self.captions))
        self.where = {c: i for i, c in enumerate(self.distinct)}
        self.f_text = self.judge.text_features(self.distinct)  # (K, D)
        self.f_test = cached_features(self.judge, test.x)  # (N, D)
        # the copy test's reference: every training image (train and val), in pixels
        self.ref = pixels(torch.cat([self.train.x, self.val.x]))
        both = [self.train.attributes or {}, self.val.attributes or {}]
        self.ref_attrs = {
            k: list(both[0][k]) + list(both[1][k])
            for k in ("emoji", "style")
            if all(k in a for a in both) and k in self.attrs
        }
        d_test, _ = nearest(pixels(test.x), self.ref)
        self.copy_threshold = float(torch.quantile(d_test, COPY_PERCENTILE / 100.0))

    @property
    def splits(self) -> tuple:
        return self.train, self.val, self.test

    def protocol(self) -> dict[str, Any]:
        clf = lambda name: self.clfs[name].protocol() if name in self.clfs else None  # noqa: E731
        return {
            "judge": self.judge.protocol(),
            "style_classifier": clf("style"),
            "tone_classifier": clf("tone"),
            "copy_threshold": self.copy_threshold,
        }


def pick_prompts(judges: Judges, n: int | None, seed: int, prompts=None) -> np.ndarray:
    """Indices of the test images whose captions are prompted: all (in order), a seeded
    subset of ``n``, or those whose captions are ``prompts`` (each must be a test caption)."""
    if prompts is not None:
        if isinstance(prompts, str) or len(prompts) == 0:
            raise GenlabError("no prompts to score: give a non-empty list of test captions")
        first = {}
        for i, c in enumerate(judges.captions):
            first.setdefault(c, i)
        unknown = [p for p in prompts if p not in first]
        if unknown:
            raise GenlabError(
                f"{len(unknown)} prompt(s) are not captions of {judges.data.name}'s test "
                f"images (the protocol needs their real images), e.g. {unknown[0]!r}"
            )
        return np.array([first[p] for p in prompts])
    total = len(judges.captions)
    if n is not None and n < 1:
        raise GenlabError(f"no prompts to score: n must be at least 1, got {n}")
    if n is None or n >= total:
        return np.arange(total)
    g = torch.Generator().manual_seed(seed)
    return np.sort(torch.randperm(total, generator=g)[:n].numpy())


def generate_images(
    generate: Generate, prompts: list[str], shape: tuple, per_prompt: int, seed: int
) -> torch.Tensor:
    """uint8 (per_prompt * P, C, H, W): ``generate(prompts, seed + r)`` for each repeat r,
    repeat-major (row r * P + i is prompt i's r-th image); its answers checked."""
    if not prompts:
        raise GenlabError("no prompts to score: the prompt list is empty")
    if per_prompt < 1:
        raise GenlabError(f"per_prompt must be at least 1, got {per_prompt}")
    out = []
    for r in range(per_prompt):
        x = generate(list(prompts), seed + r)
        x = torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x
        if tuple(x.shape) != (len(prompts), *shape):
            raise GenlabError(
                f"generate() gave images of shape {tuple(x.shape)} for {len(prompts)} prompts; "
                f"expected ({len(prompts)}, {', '.join(map(str, shape))}), floats in [-1, 1]"
            )
        if x.dtype == torch.uint8:
            raise GenlabError("generate() must give floats in [-1, 1], not uint8 images")
        out.append(torch.from_numpy(to_uint8(x)).permute(0, 3, 1, 2))
    return torch.cat(out).contiguous()


def _image_facts(judges: Judges, x: torch.Tensor, feats: np.ndarray) -> dict[str, Any]:
    """What scoring ``x`` needs whatever the prompt: its judge features, style and tone
    predictions (as classifier outputs), nearest training image (pixels) and distance."""
    dist, idx = nearest(pixels(x), judges.ref)
    facts = {"feats": feats, "dist": dist.numpy(), "nearest": idx.numpy()}
    facts.update({name: clf.predict(x) for name, clf in judges.clfs.items()})
    return facts


def _per_image(judges: Judges, facts: dict, target: np.ndarray) -> dict[str, np.ndarray]:
    """Each image's figures against the test caption ``target[i]`` (test-image indices)."""
    a, ref = judges.attrs, judges.ref_attrs
    own = np.array([judges.where[judges.captions[t]] for t in target])
    sims = facts["feats"] @ judges.f_text.T  # (M, K)
    ranks = rank_of_own(sims, own)

    def hits(name: str) -> np.ndarray:
        if name not in judges.clfs:
            return np.full(len(target), np.nan)
        classes = judges.clfs[name].classes
        want = [a[name][t] for t in target]
        return np.array(
            [float(g == w) if w in classes else np.nan for g, w in zip(facts[name], want)]
        )

    if len(ref) == 2:  # the nearest training image: the other vendor's drawing of the emoji?
        other = np.array(
            [
                float(ref["emoji"][j] == a["emoji"][t] and ref["style"][j] != a["style"][t])
                for j, t in zip(facts["nearest"], target)
            ]
        )
    else:
        other = np.full(len(target), np.nan)
    return {
        "clip_score": 100.0 * sims[np.arange(len(own)), own],
        "top1": (ranks < 1).astype(float),
        "top5": (ranks < 5).astype(float),
        "style_acc": hits("style"),
        "tone_acc": hits("tone"),
        "copy_share": (facts["dist"] < judges.copy_threshold).astype(float),
        "other_vendor": other,
    }


def _per_prompt(values: np.ndarray, owner: np.ndarray, n_prompts: int) -> np.ndarray:
    """The mean of ``values`` (M,) over each prompt's images (``owner``: (M,) in 0..P-1),
    NaN values left out: (P,), NaN for a prompt with none."""
    total, count = np.zeros(n_prompts), np.zeros(n_prompts)
    ok = ~np.isnan(values)
    np.add.at(total, owner[ok], values[ok])
    np.add.at(count, owner[ok], 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def mean_ci(values: np.ndarray, n_boot: int, seed: int) -> tuple[float | None, list | None, int]:
    """(mean, 95% bootstrap percentile interval, n) of the non-NaN ``values`` (one per
    prompt), resampled ``n_boot`` times with replacement; (None, None, 0) when none."""
    v = np.asarray(values, float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return None, None, 0
    rng = np.random.default_rng(seed)
    boot = v[rng.integers(0, len(v), (n_boot, len(v)))].mean(1) if n_boot else np.array([v.mean()])
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float(v.mean()), [float(lo), float(hi)], len(v)


def _diversity(feats: np.ndarray, per_prompt: int, n_prompts: int) -> np.ndarray:
    """Each prompt's mean cosine distance between its generations (repeat-major rows): (P,)."""
    f = feats.reshape(per_prompt, n_prompts, -1)  # (R, P, D)
    gram = np.einsum("rpd,spd->prs", f, f)  # (P, R, R)
    off = ~np.eye(per_prompt, dtype=bool)
    return (1.0 - gram[:, off]).mean(1)


def _fid(judges: Judges, feats: np.ndarray, keep_real: np.ndarray, n_boot: int, seed: int):
    """FID of ``feats`` against the real test images ``keep_real`` (a mask), with its
    interval; None when either side has fewer than 2 rows."""
    real = judges.f_test[keep_real]
    if len(real) < 2 or len(feats) < 2:
        return None, None
    return M.fid(real, feats), list(
        M.fid_bootstrap_ci(real, feats, n_boot=min(n_boot, 50), seed=seed)
    )


def _group_figures(
    judges: Judges, per: dict, owner, idx, feats, div, keep: np.ndarray, n_boot: int, seed: int
) -> dict[str, Any]:
    """Every figure, with its interval, of the prompts ``keep`` (a mask over prompts)."""
    out: dict[str, Any] = {}
    for name, values in per.items():
        mean, ci, n = mean_ci(_per_prompt(values, owner, len(idx))[keep], n_boot, seed)
        out[name], out[f"{name}_ci"] = mean, ci
        if name in ("style_acc", "tone_acc"):
            out[f"n_{name[:-4]}"] = n
    parts = np.array(judges.attrs.get("part", [""] * len(judges.captions)))
    wanted_parts = set(parts[idx[keep]].tolist())
    real_mask = np.isin(parts, list(wanted_parts))
    out["fid"], out["fid_ci"] = _fid(judges, feats[keep[owner]], real_mask, n_boot, seed)
    if div is not None:
        out["diversity"], out["diversity_ci"], _ = mean_ci(div[keep], n_boot, seed)
    out["n_prompts"], out["n_images"] = int(keep.sum()), int(keep[owner].sum())
    return out


def _groups(judges: Judges, idx: np.ndarray) -> dict[str, np.ndarray]:
    """ "all", then each part of the test split: masks over the prompted ``idx``."""
    parts = np.array(judges.attrs.get("part", [""] * len(judges.captions)))[idx]
    out = {"all": np.ones(len(idx), bool)}
    out.update({p: parts == p for p in sorted(set(parts.tolist())) if p})
    return out


def score_images(
    judges: Judges, x: torch.Tensor, idx: np.ndarray, per_prompt: int, *, seed: int, n_boot: int
) -> dict[str, Any]:
    """Score uint8 images ``x`` (repeat-major, ``per_prompt`` for each prompted test image
    ``idx``) beside the floor and the shuffled prompts: the record's "table"."""
    n_prompts = len(idx)
    owner = np.tile(np.arange(n_prompts), per_prompt)  # (M,) prompt of each image
    feats = judges.judge.image_features(x)
    facts = _image_facts(judges, x, feats)
    perm = np.random.default_rng(seed).permutation(n_prompts)
    real = judges.test.x[idx]
    real_facts = _image_facts(judges, real, judges.f_test[idx])
    div = _diversity(feats, per_prompt, n_prompts) if per_prompt >= 2 else None
    kinds = {
        "generated": (_per_image(judges, facts, idx[owner]), feats, owner, div),
        "floor": (
            _per_image(judges, real_facts, idx),
            judges.f_test[idx],
            np.arange(n_prompts),
            None,
        ),
        "shuffled": (_per_image(judges, facts, idx[perm][owner]), feats, owner, None),
    }
    table = {}
    for group, keep in _groups(judges, idx).items():
        table[group] = {
            kind: _group_figures(judges, per, own, idx, f, d, keep, n_boot, seed)
            for kind, (per, f, own, d) in kinds.items()
        }
    return table


def _diversity_reference(judges: Judges, idx: np.ndarray) -> float:
    """Mean cosine distance between the real test images of different prompted captions."""
    f = judges.f_test[idx]
    gram = f @ f.T
    off = ~np.eye(len(f), dtype=bool)
    return float((1.0 - gram[off]).mean()) if off.any() else 0.0


def score_prompts(
    generate: Generate,
    data: DataConfig,
    *,
    n: int | None = None,
    per_prompt: int = 1,
    seed: int = 0,
    n_boot: int = 200,
    prompts: list[str] | None = None,
    judges: Judges | None = None,
    splits: tuple | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate for the test captions of ``data`` (all, a seeded ``n`` of them, or
    ``prompts``) with ``generate(prompts, seed) -> (N, C, H, W) floats in [-1, 1]`` and
    score the images beside the floor and the shuffled prompts (see the module docstring).
    ``judges``: a ``Judges`` made before (a sweep reuses one); ``splits``: (train, val,
    test) when the caller has them loaded."""
    if prompts is not None and len(prompts) == 0:
        raise GenlabError("no prompts to score: the prompt list is empty")
    judges = judges or Judges(data, splits, progress=progress)
    idx = pick_prompts(judges, n, seed, prompts)
    chosen = [judges.captions[i] for i in idx]
    x = generate_images(generate, chosen, tuple(judges.test.x.shape[1:]), per_prompt, seed)
    table = score_images(judges, x, idx, per_prompt, seed=seed, n_boot=n_boot)
    rec: dict[str, Any] = {k: table["all"]["generated"].get(k) for k in FIGURES}
    rec.update(floor=table["all"]["floor"], shuffled=table["all"]["shuffled"], table=table)
    rec["diversity_reference"] = _diversity_reference(judges, idx)
    rec["prompts_preview"] = chosen[:5]
    rec["protocol"] = {
        "kind": "prompts",
        "version": PROMPT_VERSION,
        "data": data.name,
        "real_split": "test",
        "n_prompts": len(idx),
        "n_test": len(judges.captions),
        "n": n,
        "per_prompt": per_prompt,
        "seed": seed,
        "n_boot": n_boot,
        "prompts": "given"
        if prompts is not None
        else ("all test captions" if n is None else "a seeded subset"),
        "controls": None,
        "weights": None,
        "weights_sha256": None,
        "step": None,
        **judges.protocol(),
        "clip_score": "100 x mean cosine of image and prompt in the judge's space",
        "retrieval": f"among the {len(judges.distinct)} distinct test captions",
        "fid": "in the judge's image features, against the real test images of the part",
        "copy": f"nearest training image (train and val) in pixels, nearer than the "
        f"{COPY_PERCENTILE:g}st percentile of the real test images' nearest distances",
        "intervals": f"95% bootstrap percentiles over prompts ({n_boot} resamples)",
        "floor": "the real test images of the prompts, scored the same way",
        "shuffled": "the generations against a seeded random permutation of the prompts",
    }
    rec["time"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return rec


def run_generator(
    run, controls: dict | None = None, batch_size: int = 100, progress: bool = True
) -> Generate:
    """``generate(prompts, seed)`` for a run whose model takes prompts: its sampler with
    ``controls`` (checked against what the family declares; the prompt is the protocol's),
    ``batch_size`` prompts at a time from one generator seeded with ``seed``."""
    full = run.model.check_controls(dict(controls or {}))
    if (controls or {}).get("prompt") is not None:
        raise GenlabError("the prompt protocol prompts with the test captions; drop --prompt")
    full.pop("prompt", None)

    def generate(prompts: list[str], seed: int) -> torch.Tensor:
        g = torch.Generator(device=run.model.device).manual_seed(seed)
        out = []
        with tqdm(
            total=len(prompts),
            desc="sampling",
            unit="img",
            file=sys.stderr,
            disable=not progress,
            delay=1.0,
        ) as bar:
            for start in range(0, len(prompts), batch_size):
                chunk = list(prompts[start : start + batch_size])
                x = run.model.sample(len(chunk), generator=g, prompt=chunk, **full)
                out.append(x.detach().float().cpu())
                bar.update(len(chunk))
        return torch.cat(out)

    return generate


def prompt_controls(run, controls: dict | None) -> dict:
    """The controls a prompt record names: all the family's, checked, but the prompt."""
    full = run.model.check_controls(dict(controls or {}))
    full.pop("prompt", None)
    return full


def evaluate_prompts(
    run,
    *,
    n: int | None = None,
    per_prompt: int = 1,
    seed: int = 0,
    controls: dict | None = None,
    n_boot: int = 200,
    judges: Judges | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """``score_prompts`` of a run whose model takes prompts, its protocol naming the
    controls and the weights measured."""
    if not getattr(run.model, "takes_prompt", False):
        raise GenlabError(f"the {run.config.family} family does not take prompts")
    generate = run_generator(run, controls, progress=progress)
    judges = judges or Judges(run.config.data, progress=progress)
    rec = score_prompts(
        generate,
        run.config.data,
        n=n,
        per_prompt=per_prompt,
        seed=seed,
        n_boot=n_boot,
        judges=judges,
        progress=progress,
    )
    rec["protocol"].update(controls=prompt_controls(run, controls), **run.identity())
    return rec
