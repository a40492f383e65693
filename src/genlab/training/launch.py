"""Start or resume a run: configs in, a run directory out.

    from genlab.training.launch import train
    summary = train("vae", out="runs/vae", overrides=["data.name=digits", "train.steps=500"])

This is what ``genlab train`` calls, in one process or under ``torchrun``.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, NamedTuple

import torch

from genlab.config import apply_overrides
from genlab.data import DataInfo, TensorData, TokenData, data_info, load_corpus, load_data
from genlab.data.images import validation_split
from genlab.data.tokenizers import build_tokenizer, load_tokenizer
from genlab.errors import ConfigError, DataError, RunError
from genlab.fsutil import load_tensors, read_json
from genlab.hf.gpt2 import is_transformers_folder, read_gpt2
from genlab.registry import get
from genlab.rundir import WEIGHT_FILES, RunConfig, build_model, is_run, read_config, write_config
from genlab.training.distributed import Distributed
from genlab.training.trainer import Trainer


def check_out_dir(out: Path, resume: bool) -> None:
    """Refuse, before anything is written, to train over something already there."""
    if resume:
        if not is_run(out):
            raise RunError(f"--resume: {out} holds no genlab run; start it without --resume")
        return
    if is_run(out):
        raise RunError(
            f"{out} already holds a run; continue it with --resume, or choose another --out"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunError(f"{out} exists and is not an empty folder; choose another --out")


def resumed_config(out: Path, family: str | None, overrides: list[str]) -> RunConfig:
    """The saved config with the overrides a resume may change (steps, time, logging, device)."""
    saved, _ = read_config(out)
    if family and family != saved.family:
        raise ConfigError(f"{out} holds a {saved.family} run, not {family}")
    cfg = apply_overrides(saved, overrides)
    if cfg.model != saved.model or cfg.data != saved.data:
        raise ConfigError(
            "--resume continues a run as it was: model.* and data.* cannot change "
            "(start a new run with --out elsewhere)"
        )
    fixed = ("batch_size", "seed", "grad_accum", "betas", "weight_decay")
    for name in fixed:
        if getattr(cfg.train, name) != getattr(saved.train, name):
            raise ConfigError(f"--resume cannot change train.{name}; start a new run instead")
    return cfg


def train(
    family: str | None,
    out: str | Path,
    *,
    preset: str = "default",
    overrides: list[str] = (),
    resume: bool = False,
    progress: bool = True,
    until: int | None = None,
    init_from: str | Path | None = None,
) -> dict[str, Any]:
    """Train a new run into ``out`` (or continue it with ``resume``); returns a summary.

    ``until`` stops this session at that step (checkpointed); resume continues it.
    ``init_from`` starts from another run's weights (same family and architecture; a text
    run keeps that run's tokenizer): pretrain, then fine-tune on other data.
    """
    if init_from is not None and resume:
        raise ConfigError("--init-from starts a new run; --resume continues one: use one")
    out = Path(out)
    check_out_dir(out, resume)
    if resume:
        cfg = resumed_config(out, family, list(overrides))
    else:
        if family is None:
            raise ConfigError("name a model family, e.g. `genlab train vae`")
        cfg = RunConfig.new(family, preset, list(overrides))
    init = None
    if init_from is not None:
        cfg, init = _init_config(cfg, Path(init_from), list(overrides))
    env = Distributed(cfg.train.device)
    quiet = not (progress and env.main)
    if get(cfg.family).data_kind == "text":
        data = _text_data(cfg, out, resume, init, quiet)
    else:
        data = _image_data(cfg, quiet, _given_tokenizer(out, resume, init))
    if resume:
        _check_same_data(out, cfg, data.info)
    torch.manual_seed(cfg.train.seed)  # the same initial weights on every rank
    model = build_model(cfg, data.info)
    model.tokenizer = data.tokenizer
    if model.takes_prompt:  # the training grids draw the first validation captions
        model.preview_prompts = list(dict.fromkeys(data.captions))[: cfg.train.grid_size]
    if init is not None:
        _load_init_weights(model, *init)
    # the trainer restores a resumed run's checkpoint here: a damaged one stops
    # us before anything on disk changes
    trainer = Trainer(
        out,
        cfg,
        model,
        data.train,
        data.val,
        resume=resume,
        progress=progress,
        dist_env=env,
    )
    if env.main:
        _write_run(out, cfg, data, resume, init)
        if not quiet:
            n_params = sum(p.numel() for p in model.parameters())
            print(
                f"genlab: {cfg.family} ({n_params / 1e6:.2f}M parameters) on {data.about}"
                + (f", starting from {init[0]} ({init[1]} weights)" if init else "")
                + f"; device {env.device}, {env.world} process(es) -> {out}",
                file=sys.stderr,
            )
    env.barrier()
    summary = trainer.fit(until=until)
    summary["config"] = dataclasses.asdict(cfg.train)
    return summary


class _Data(NamedTuple):
    """A run's data: the splits, their shape or vocabulary, the tokenizer (text, captions)
    and a line about them; captioned images: the validation captions."""

    train: TensorData
    val: TensorData
    info: DataInfo
    tokenizer: Any
    about: str
    captions: list[str] = []


def _given_tokenizer(out: Path, resume: bool, init):
    """The tokenizer a resumed run saved, or the one of the run it starts from; None for a
    new run (which builds its own)."""
    saved = out / "tokenizer.json" if resume else init and init[0] / "tokenizer.json"
    return load_tokenizer(saved) if saved and saved.is_file() else None


def _text_data(cfg: RunConfig, out: Path, resume: bool, init, quiet: bool) -> _Data:
    """The corpus, tokenized with the run's saved tokenizer (a resume), the one of the run
    or transformers folder it starts from (``init``), or a new one."""
    if init is not None and init[2] is not None:  # a transformers folder's own
        given = init[2].tokenizer
    else:
        saved = out / "tokenizer.json" if resume else init and init[0] / "tokenizer.json"
        given = load_tokenizer(saved) if saved else None
    corpus = load_corpus(cfg.data, given, progress=not quiet)
    tokenizer, info = corpus.tokenizer, DataInfo.text(corpus.tokenizer.vocab_size)
    train = _token_data(corpus.train, cfg, "training")
    val = _token_data(corpus.val, cfg, "validation")
    about = (
        f"{corpus.text.name} ({len(corpus.train):,} training and {len(corpus.val):,} "
        f"validation tokens, {cfg.data.tokenizer} vocabulary of {info.vocab_size:,}) "
        f"from {corpus.text.source}"
    )
    return _Data(train, val, info, tokenizer, about)


def _image_data(cfg: RunConfig, quiet: bool, tokenizer=None) -> _Data:
    """The image set's train split for training, its validation split (a slice of training
    where the set has one, else its test split) for validation; for a family that takes a
    prompt, each image's caption as token ids too."""
    train_set = load_data(cfg.data, "train", progress=not quiet)
    test_set = load_data(cfg.data, validation_split(cfg.data.name), progress=not quiet)
    info = data_info(train_set)
    about = f"{train_set.name} {tuple(info.shape)} x {len(train_set.x)} from {train_set.source}"
    if not get(cfg.family).takes_prompt:
        train, val = TensorData.from_images(train_set), TensorData.from_images(test_set)
        return _Data(train, val, info, None, about)
    for part in (train_set, test_set):
        if part.captions is None:
            raise DataError(
                f"{cfg.data.name}: these images have no captions, and {cfg.family} draws "
                "from text; give a captioned set (emoji, shapes) or a folder with a "
                'metadata.jsonl of {"file_name": ..., "text": ...} lines'
            )
    if tokenizer is None:
        tokenizer = build_tokenizer(cfg.data.tokenizer, train_set.captions, cfg.data.vocab_size)
    context = cfg.model.text_context
    train = TensorData.from_images(train_set, caption_ids(tokenizer, train_set.captions, context))
    val = TensorData.from_images(test_set, caption_ids(tokenizer, test_set.captions, context))
    info = DataInfo.images(info.shape, info.classes, vocab_size=tokenizer.vocab_size)
    about += f", captions in a {cfg.data.tokenizer} vocabulary of {tokenizer.vocab_size:,}"
    return _Data(train, val, info, tokenizer, about, list(test_set.captions))


def caption_ids(tokenizer, captions: list[str], context: int) -> torch.Tensor:
    """(N, context) token ids of ``captions``, -1 after each; a caption longer than the
    text encoder's context is cut to fit (with one warning saying how many were)."""
    out = torch.full((len(captions), context), -1, dtype=torch.long)
    cut = 0
    for i, c in enumerate(captions):
        ids = tokenizer.encode(c)
        cut += len(ids) > context
        ids = ids[:context]
        out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    if cut:
        print(
            f"genlab: warning: {cut:,} of {len(captions):,} captions are longer than "
            f"model.text_context={context} tokens and were cut; raise it to keep them whole",
            file=sys.stderr,
        )
    return out


def _check_same_data(out: Path, cfg: RunConfig, info: DataInfo) -> None:
    """A resumed run's data must still have the shape (or vocabulary) it was trained on."""
    _, saved = read_config(out)
    if (tuple(saved.shape), saved.classes, saved.vocab_size) != (
        tuple(info.shape),
        info.classes,
        info.vocab_size,
    ):
        raise RunError(
            f"the data at {cfg.data.name!r} no longer matches the run "
            f"({saved.shape or saved.vocab_size} vs {info.shape or info.vocab_size}); "
            "restore it or start a new run"
        )


def _write_run(out: Path, cfg: RunConfig, data: _Data, resume: bool, init) -> None:
    """The run folder's config.json (and, for a new text run, its tokenizer)."""
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        write_config(out, cfg, data.info, init_from=init and str(init[0]))
    else:
        write_config(out, cfg, data.info, init_from=_saved_init(out))
    if data.tokenizer is not None and not resume:
        data.tokenizer.save(out / "tokenizer.json")


def _token_data(tokens: torch.Tensor, cfg: RunConfig, split: str) -> TokenData:
    block = cfg.model.block_size
    if len(tokens) < block + 2:
        raise DataError(
            f"the {split} split of {cfg.data.name!r} has {len(tokens)} tokens, too few for "
            f"windows of model.block_size={block}; give more text or lower model.block_size"
        )
    return TokenData(tokens, block)


def _init_config(cfg: RunConfig, src: Path, overrides: list[str]) -> tuple[RunConfig, tuple]:
    """The new run's config with the architecture (and tokenizer) of run ``src``, or of a
    transformers GPT-2 folder; model.* overrides still apply (e.g. a new dropout, a shorter
    context). Returns it and (src, which weights, the ported folder or None)."""
    if is_transformers_folder(src):
        if cfg.family != "gpt":
            raise ConfigError(
                f"--init-from {src} is a transformers model folder: it starts a gpt run, "
                f"not {cfg.family}"
            )
        ported = read_gpt2(src)
        model = dataclasses.replace(cfg.model, **ported.model)
        data = dataclasses.replace(
            cfg.data, tokenizer="bpe", vocab_size=ported.tokenizer.vocab_size
        )
        cfg = dataclasses.replace(cfg, model=model, data=data)
        cfg = apply_overrides(cfg, [o for o in overrides if o.startswith("model.")])
        if cfg.model.block_size > ported.model["block_size"]:
            raise ConfigError(
                f"--init-from {src} has {ported.model['block_size']} positions: "
                f"model.block_size={cfg.model.block_size} cannot exceed them"
            )
        return cfg, (src, "transformers", ported)
    if not is_run(src):
        raise RunError(
            f"--init-from {src}: not a genlab run, nor a transformers model folder (config.json "
            "with a model_type); give the --out folder of a run, or a GPT-2 folder saved by "
            "transformers' save_pretrained"
        )
    saved, _ = read_config(src)
    if saved.family != cfg.family:
        raise ConfigError(
            f"--init-from {src} holds a {saved.family} run; it cannot start a {cfg.family} run"
        )
    weights = "ema" if (src / WEIGHT_FILES["ema"]).exists() else "model"
    if not (src / WEIGHT_FILES[weights]).exists():
        raise RunError(f"--init-from {src} has saved no weights yet; train it first")
    cfg = dataclasses.replace(cfg, model=saved.model)
    if get(cfg.family).data_kind == "text" or get(cfg.family).takes_prompt:
        data = dataclasses.replace(
            cfg.data, tokenizer=saved.data.tokenizer, vocab_size=saved.data.vocab_size
        )
        cfg = dataclasses.replace(cfg, data=data)
    cfg = apply_overrides(cfg, [o for o in overrides if o.startswith("model.")])
    return cfg, (src, weights, None)


def _load_init_weights(model, src: Path, weights: str, ported) -> None:
    if ported is not None:  # a transformers folder, already mapped; positions cut to fit
        state = dict(ported.state)
        state["wpe.weight"] = state["wpe.weight"][: model.config.block_size]
    else:
        state = load_tensors(src / WEIGHT_FILES[weights])
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise RunError(
            f"--init-from {src}: its weights do not fit this model "
            f"({str(e).splitlines()[0][:100]}); keep its model.* settings"
        ) from None


def _saved_init(out: Path) -> str | None:
    return read_json(out / "config.json").get("init_from")
