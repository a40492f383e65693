"""Evaluation records belong to the weights they measured.

A record is keyed by the sha256 of the weights file and names the training step, so
extending a run gives new figures at the new step, the old record stays as history, and
the report never shows it as current; unchanged weights still reuse the cached record."""

import json

import pytest

import genlab
from genlab.cli import main
from genlab.evaluate import cached_evaluate_samples, cached_evaluate_text, evaluate

# one genlab cache for the module: the domain classifier is trained once
pytestmark = pytest.mark.usefixtures("use_module_cache")


def _no_sampling(run, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("sampled although a record of these weights was cached")

    monkeypatch.setattr(run.model, "sample", refuse)


def test_image_eval_is_redone_after_training_and_reused_on_the_same_weights(
    tmp_path, monkeypatch, capsys
):
    out = tmp_path / "vae"
    common = ["data.name=digits", "train.device=cpu"]
    genlab.train("vae", out, preset="tiny", overrides=common, progress=False)
    first = evaluate(genlab.load(out), n=40, progress=False)
    assert first["protocol"]["step"] == 20 and first["protocol"]["weights"] == "ema"
    assert len(first["protocol"]["weights_sha256"]) == 64

    # the same weights: the cached record is used, nothing is sampled again
    run = genlab.load(out)
    _no_sampling(run, monkeypatch)
    again = cached_evaluate_samples(run, n=40, progress=False)
    assert again["fid"] == first["fid"] and again["protocol"]["step"] == 20

    # extend the run: new weights, so new figures at the new step
    genlab.train(None, out, resume=True, overrides=["train.steps=60"], progress=False)
    run = genlab.load(out)
    assert run.step == 60
    later = cached_evaluate_samples(run, n=40, progress=False)
    assert later["protocol"]["step"] == 60
    assert later["protocol"]["weights_sha256"] != first["protocol"]["weights_sha256"]
    assert later["fid"] != first["fid"]
    records = sorted((out / "eval").glob("samples-*.json"))
    assert len(records) == 2, "the older record stays as history"
    steps = sorted(json.loads(p.read_text())["protocol"]["step"] for p in records)
    assert steps == [20, 60]

    # `genlab eval` on the extended run records step 60 as the latest, and info says so
    rec = evaluate(genlab.load(out), n=40, progress=False)
    assert rec["fid"] == later["fid"]
    latest = json.loads((out / "eval" / "metrics.json").read_text())
    assert latest["protocol"]["step"] == 60
    assert main(["info", str(out)]) == 0
    assert "step 60" in capsys.readouterr().out.split("latest eval")[1]


def test_text_eval_is_redone_after_training(tmp_path, monkeypatch):
    out = tmp_path / "rnn"
    common = ["data.name=pydoc", "train.device=cpu"]
    genlab.train("rnn", out, preset="tiny", overrides=common, progress=False)
    first = cached_evaluate_text(genlab.load(out), n=4, metrics=("samples", "nll"), progress=False)
    assert first["protocol"]["step"] == 20

    run = genlab.load(out)
    _no_sampling(run, monkeypatch)
    assert cached_evaluate_text(run, n=4, metrics=("samples", "nll"), progress=False) == first

    genlab.train(None, out, resume=True, overrides=["train.steps=40"], progress=False)
    later = cached_evaluate_text(genlab.load(out), n=4, metrics=("samples", "nll"), progress=False)
    assert later["protocol"]["step"] == 40
    assert later["val_loss"] != first["val_loss"]
    assert len(list((out / "eval").glob("text-*.json"))) == 2
