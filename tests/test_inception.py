"""--extractor inception: standard preprocessing, any TorchScript file recorded by sha256,
real features cached by content, and bad weights refused in one line.

The real network (87 MB) is not in CI; a small TorchScript module of the same interface
((N, 3, 299, 299) in -> (N, D) features) stands in for it here.
"""

import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from genlab.cli import main
from genlab.data import DataConfig, load_data
from genlab.fsutil import sha256_file
from genlab.metrics import inception as I

# one genlab cache for the module: the domain classifier is trained once
pytestmark = pytest.mark.usefixtures("use_module_cache")


class _Stand(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 16, 8, stride=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1:] == (3, 299, 299)
        return torch.nn.functional.adaptive_avg_pool2d(self.conv(x).relu(), 2).flatten(1)


@pytest.fixture
def stand_in(tmp_path):
    path = tmp_path / "stand_in.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is what FID ships
        torch.jit.script(_Stand()).save(str(path))
    return path


def test_preprocessing_is_the_standard_one():
    x = torch.tensor([0, 128, 255], dtype=torch.uint8).repeat_interleave(64).view(3, 1, 8, 8)
    y = I.preprocess(x)
    assert y.shape == (3, 3, 299, 299) and y.dtype == torch.float32
    # p/128 - 1: 0 -> -1, 128 -> 0, 255 -> 0.9921875 (TensorFlow's range); a constant image
    # stays constant through the bilinear resize, and gray is repeated to 3 channels
    for img, value in zip(y, (-1.0, 0.0, 0.9921875)):
        assert torch.allclose(img, torch.full_like(img, value))
    ramp = torch.arange(64, dtype=torch.uint8).view(1, 1, 8, 8).repeat(1, 3, 1, 1)
    up = I.preprocess(ramp)
    expected = torch.nn.functional.interpolate(
        ramp.float() / 128 - 1, size=(299, 299), mode="bilinear", align_corners=False
    )
    assert torch.equal(up, expected)


def _npz(path, x, y):
    np.savez(path, x=x.permute(0, 2, 3, 1).numpy(), y=y.numpy())
    return path


def test_eval_with_a_given_torchscript_records_it_and_caches_real_features(
    stand_in, tmp_path, capsys, monkeypatch
):
    test = load_data(DataConfig(), "test")
    samples = _npz(tmp_path / "s.npz", test.x[:100], test.y[:100])
    seen = []
    features = I.InceptionExtractor.features

    def counting(self, x, *a, **k):
        seen.append(len(x))
        return features(self, x, *a, **k)

    monkeypatch.setattr(I.InceptionExtractor, "features", counting)
    args = ["eval", "--samples", str(samples), "--data", "digits", "--extractor", "inception"]
    out = tmp_path / "m.json"
    assert main([*args, "--inception", str(stand_in), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "not the standard FID Inception network" in err
    rec = json.loads(out.read_text())
    ex = rec["protocol"]["extractor"]
    assert ex["name"] == "inception" and ex["standard"] is False
    assert ex["weights_sha256"] == sha256_file(stand_in)
    assert "299x299" in ex["resize"] and ex["input_range"] == "p/128 - 1"
    # the score and class consistency still come from the domain classifier
    assert rec["protocol"]["class_probabilities"]["name"] == "classifier"
    assert rec["class_consistency"] > 0.9 and rec["fid"] >= 0
    assert sorted(seen) == [100, 100, 297]  # the test split, the floor's subset, the samples

    # second time ($GENLAB_INCEPTION this time): only the samples are featurised
    seen.clear()
    monkeypatch.setenv("GENLAB_INCEPTION", str(stand_in))
    assert main([*args, "--out", str(tmp_path / "m2.json")]) == 0
    assert seen == [100]
    again = json.loads((tmp_path / "m2.json").read_text())
    assert again["fid"] == rec["fid"] and again["floor"] == rec["floor"]


@pytest.mark.parametrize("kind", ["missing", "pickle"])
def test_bad_inception_weights_are_one_line_exit_2(kind, tmp_path, capsys):
    test = load_data(DataConfig(), "test")
    samples = _npz(tmp_path / "s.npz", test.x[:20], test.y[:20])
    weights = tmp_path / "w.pt"
    if kind == "pickle":
        torch.save({"a": torch.zeros(3)}, weights)  # a state dict, not TorchScript
    out = tmp_path / "m.json"
    code = main(
        ["eval", "--samples", str(samples), "--data", "digits", "--extractor", "inception"]
        + ["--inception", str(weights), "--out", str(out)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not out.exists()
    last = err[-1]
    assert last.startswith("genlab: error:") and "Traceback" not in "".join(err)
    assert ("not a file" if kind == "missing" else "not a loadable TorchScript") in last
