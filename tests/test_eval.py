"""`genlab eval --samples`: any tool's samples on genlab's protocol. Training images fed
back as samples are flagged as copies; unseen real images are not, and score like the floor."""

import json

import numpy as np
import pytest

from genlab.cli import main
from genlab.data import DataConfig, load_data

# one genlab cache for the module: the domain classifier is trained once
pytestmark = pytest.mark.usefixtures("use_module_cache")


def _npz(path, images, labels=None):
    x = images.x.permute(0, 2, 3, 1).numpy() if hasattr(images, "x") else images
    arrays = {"x": x}
    if labels is not None:
        arrays["y"] = labels
    np.savez(path, **arrays)
    return path


def _eval(capsys, samples, out):
    code = main(["eval", "--samples", str(samples), "--data", "digits", "--out", str(out)])
    err = capsys.readouterr().err
    return code, err


def test_training_images_fed_back_are_copies_and_unseen_ones_are_not(tmp_path, capsys):
    train = load_data(DataConfig(), "train")
    test = load_data(DataConfig(), "test")
    first = slice(0, 297)
    copies = _npz(
        tmp_path / "copies.npz", train.x[first].permute(0, 2, 3, 1).numpy(), train.y[first].numpy()
    )
    assert _eval(capsys, copies, tmp_path / "copies.json")[0] == 0
    rec = json.loads((tmp_path / "copies.json").read_text())
    assert rec["copy_share"] > 0.95 and rec["class_consistency"] > 0.95

    fresh = _npz(tmp_path / "fresh.npz", test, test.y.numpy())
    assert _eval(capsys, fresh, tmp_path / "fresh.json")[0] == 0
    rec = json.loads((tmp_path / "fresh.json").read_text())
    assert rec["copy_share"] < 0.05
    assert (
        rec["protocol"]["samples"].endswith("fresh.npz") and rec["protocol"]["n_generated"] == 297
    )
    for key in ("fid", "kid", "precision", "recall", "density", "coverage", "is"):
        assert isinstance(rec[key], float) and isinstance(rec["floor"][key], float), key
    # real test images against the test split itself: FID far below any model's
    assert rec["fid"] < rec["floor"]["fid"]


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: np.savez(p, x=np.zeros((20, 16, 16, 1), np.uint8)), "resize them to match"),
        (lambda p: np.savez(p, x=np.zeros((20, 8, 8, 1), np.float32)), "must be uint8"),
        (lambda p: np.savez(p, images=np.zeros((20, 8, 8), np.uint8)), "no array 'x'"),
        (lambda p: p.write_text("not an npz"), "not a readable .npz"),
        (lambda p: None, "does not exist"),
        (lambda p: np.savez(p, x=np.zeros((20, 8, 8), np.uint8), y=np.zeros(3)), "3 labels for 20"),
    ],
)
def test_bad_samples_files_are_one_line_errors(tmp_path, capsys, make, words):
    path = tmp_path / "s.npz"
    make(path)
    code, err = _eval(capsys, path, tmp_path / "m.json")
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "m.json").exists()
