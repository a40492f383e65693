"""The domain classifier: accuracy on digits, features and probabilities, the cache.

One classifier is trained on digits for the whole module (about 15 s on one thread);
the cache tests train for a few steps only (``fast_train``).
"""

import hashlib
import pickle

import numpy as np
import pytest
import torch

from genlab.data import DataConfig, load_data
from genlab.data.fetch import cache_dir
from genlab.data.images import load_images
from genlab.errors import GenlabError
from genlab.fsutil import read_json, write_json
from genlab.metrics import features
from genlab.metrics.features import (
    DomainClassifier,
    Extractor,
    data_fingerprint,
    get_classifier,
    train_classifier,
)

DIGITS = DataConfig(name="digits")


@pytest.fixture(scope="module")
def digits():
    return load_data(DIGITS, "train", progress=False), load_data(DIGITS, "test", progress=False)


@pytest.fixture(scope="module")
def trained(digits):
    """(Extractor, test accuracy) of a classifier trained once with the default recipe."""
    train, test = digits
    model, acc = train_classifier(train, test, seed=0, progress=False)
    ext = Extractor(
        model,
        weights_sha256="0" * 64,
        test_accuracy=acc,
        fingerprint=data_fingerprint(train),
        classes=train.classes,
    )
    return ext, acc


@pytest.fixture
def fast_train(monkeypatch):
    """get_classifier trains for 3 steps; returns the list of data set names it trained on."""
    calls = []
    real = features.train_classifier

    def quick(train, test, **kwargs):
        calls.append(train.name)
        return real(train, test, **{**kwargs, "steps": 3})

    monkeypatch.setattr(features, "train_classifier", quick)
    return calls


def _npz(path, n=40, labels=True, change_pixel=False):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 8, 8), dtype=np.uint8)
    if change_pixel:
        x[0, 0, 0] ^= 1
    arrays = {"x": x, "y": np.arange(n) % 2} if labels else {"x": x}
    np.savez(path, **arrays)
    return str(path)


# ---- the classifier --------------------------------------------------------------------------


def test_digits_accuracy(trained):
    _, acc = trained
    assert acc >= 0.95


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 64, 64), (3, 12, 20)])
def test_classifier_shapes(shape):
    net = DomainClassifier(shape, num_classes=5).eval()
    x = torch.rand(2, *shape) * 2 - 1
    assert net(x).shape == (2, 5)
    assert net.features(x).shape == (2, 128)


def test_classifier_rejects_tiny_images():
    with pytest.raises(GenlabError, match="data.size"):
        DomainClassifier((1, 4, 4), num_classes=10)


def test_training_is_deterministic_and_leaves_global_rng(digits):
    train, test = digits
    before = torch.random.get_rng_state()
    a, _ = train_classifier(train, test, steps=3, seed=1, progress=False)
    b, _ = train_classifier(train, test, steps=3, seed=1, progress=False)
    c, _ = train_classifier(train, test, steps=3, seed=2, progress=False)
    assert torch.equal(torch.random.get_rng_state(), before)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


# ---- features and probabilities --------------------------------------------------------------


def test_features_shape_dtype_deterministic(trained, digits):
    ext, _ = trained
    x = digits[1].x
    f = ext.features(x)
    assert f.shape == (len(x), 128) and f.dtype == np.float64
    assert np.isfinite(f).all() and f.std() > 0
    np.testing.assert_array_equal(f, ext.features(x))
    np.testing.assert_allclose(f, ext.features(x, batch_size=7), rtol=1e-5, atol=1e-6)


def test_uint8_and_float_inputs_agree(trained, digits):
    ext, _ = trained
    x = digits[1].x[:50]
    as_float = x.float() / 127.5 - 1  # (50, 1, 8, 8) in [-1, 1]
    np.testing.assert_allclose(ext.features(x), ext.features(as_float), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ext.probs(x), ext.probs(as_float.numpy()), rtol=1e-6, atol=1e-9)


def test_probs_and_class_consistency(trained, digits):
    ext, _ = trained
    test = digits[1]
    p = ext.probs(test.x)
    assert p.shape == (len(test.x), 10) and p.dtype == np.float64
    assert (p >= 0).all()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-12)
    consistency = (p.argmax(1) == test.y.numpy()).mean()  # predicted class matches the label
    assert consistency >= 0.95


def test_wrong_image_shape_is_one_line(trained):
    ext, _ = trained
    with pytest.raises(GenlabError) as e:
        ext.features(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
    assert "\n" not in str(e.value) and "(N, 1, 8, 8)" in str(e.value)


def test_protocol(trained):
    ext, acc = trained
    p = ext.protocol()
    assert p["name"] == "classifier" and p["resize"] is None
    assert p["input_shape"] == [1, 8, 8] and p["test_accuracy"] == acc
    assert len(p["fingerprint"]) == 64 and len(p["weights_sha256"]) == 64


# ---- fingerprint and cache ---------------------------------------------------------------------


def test_fingerprint_follows_the_data(tmp_path):
    a = load_images(_npz(tmp_path / "a.npz"), "train", progress=False)
    b = load_images(_npz(tmp_path / "b.npz", change_pixel=True), "train", progress=False)
    again = load_images(_npz(tmp_path / "c.npz"), "train", progress=False)
    assert data_fingerprint(a) == data_fingerprint(again)  # content, not the path
    assert data_fingerprint(a) != data_fingerprint(b)


def test_get_classifier_caches(fast_train, capsys):
    first = get_classifier(DIGITS, progress=False)
    assert fast_train == ["digits"]
    assert "trained a domain classifier" in capsys.readouterr().err
    weights = cache_dir() / "classifiers" / f"{first.fingerprint}.safetensors"
    assert first.weights_sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()

    second = get_classifier(DIGITS, progress=False)
    assert fast_train == ["digits"]  # loaded, not retrained
    assert capsys.readouterr().err == ""
    assert second.protocol() == first.protocol()
    x = load_data(DIGITS, "test", progress=False).x[:20]
    np.testing.assert_array_equal(first.features(x), second.features(x))

    get_classifier(DIGITS, progress=False, retrain=True)
    assert fast_train == ["digits", "digits"]


def test_changed_data_gets_its_own_classifier(tmp_path, fast_train):
    a = get_classifier(DataConfig(name=_npz(tmp_path / "a.npz")), progress=False)
    b = get_classifier(DataConfig(name=_npz(tmp_path / "b.npz", change_pixel=True)), progress=False)
    assert len(fast_train) == 2 and a.fingerprint != b.fingerprint
    assert len(list((cache_dir() / "classifiers").glob("*.json"))) == 2


@pytest.mark.parametrize("damage", ["pickle", "pickle_with_matching_sha", "truncated"])
def test_damaged_cache_is_retrained_not_unpickled(
    tmp_path, fast_train, monkeypatch, capsys, damage
):
    cfg = DataConfig(name=_npz(tmp_path / "a.npz"))
    ext = get_classifier(cfg, progress=False)
    weights = cache_dir() / "classifiers" / f"{ext.fingerprint}.safetensors"
    meta_path = weights.with_suffix(".json")
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    else:
        blob = pickle.dumps({"head.weight": np.zeros(3)})
        weights.write_bytes(blob)
        if damage == "pickle_with_matching_sha":  # gets past the sha check to the parser
            meta = read_json(meta_path)
            meta["weights_sha256"] = hashlib.sha256(blob).hexdigest()
            write_json(meta_path, meta)

    def refuse(*args, **kwargs):
        raise AssertionError("a cached classifier must never be unpickled")

    for name in ("load", "loads"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    capsys.readouterr()
    again = get_classifier(cfg, progress=False)
    err = capsys.readouterr().err
    assert "unusable" in err and "retraining" in err and "trained a domain classifier" in err
    assert len(fast_train) == 2
    assert again.weights_sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    get_classifier(cfg, progress=False)  # the rewritten entry loads
    assert len(fast_train) == 2


def test_unlabelled_data_is_one_line_error(tmp_path, fast_train):
    with pytest.raises(GenlabError) as e:
        get_classifier(DataConfig(name=_npz(tmp_path / "u.npz", labels=False)), progress=False)
    message = str(e.value)
    assert "\n" not in message and "labels" in message and "--extractor inception" in message
    assert fast_train == []
