"""Sound as data (data/audio.py): WAV files read exactly, labelled, fitted to one length and
rate, turned into spectrogram images; bad files get one clear line; and every image family
trains and samples on sound unchanged."""

from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import tone_clips, write_wav

import genlab
from genlab.data import DataConfig, load_data
from genlab.data.audio import fit_length, load_audio, read_wav
from genlab.data.spectrogram import Spectrogram
from genlab.errors import DataError
from genlab.registry import get, names
from genlab.training.launch import train


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_every_pcm_width_reads_back_the_samples_written(tmp_path, width):
    x = np.sin(np.linspace(0, 20, 500)) * 0.8
    x, rate, channels = read_wav(write_wav(tmp_path / "a.wav", x, 8000, width=width))
    assert rate == 8000 and channels == 1 and x.dtype == np.float32
    step = 2.0 / 2 ** (8 * width)
    assert np.abs(x - np.sin(np.linspace(0, 20, 500)) * 0.8).max() <= step + 1e-6


def test_stereo_is_mixed_down_to_mono(tmp_path):
    left, right = np.full(100, 0.5), np.full(100, -0.1)
    path = write_wav(tmp_path / "s.wav", np.stack([left, right], 1), 8000)
    x, _, channels = read_wav(path)
    assert channels == 2 and np.allclose(x, 0.2, atol=1e-4)


def test_labels_from_the_file_name_prefix_or_class_folders(tmp_path):
    prefixed = tone_clips(tmp_path / "prefixed", per_class=5)
    ds = load_audio(str(prefixed), "train", progress=False)
    assert ds.classes == ["0", "1", "2"] and ds.x.shape[1:] == (1, 64, 64)
    assert ds.x.dtype == torch.uint8 and ds.wave.shape[1] == 4096
    foldered = tmp_path / "foldered"
    for p in prefixed.glob("*.wav"):
        dest = foldered / f"class{p.name[0]}" / p.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(p.read_bytes())
    both = load_audio(str(foldered), "train", progress=False)
    assert both.classes == ["class0", "class1", "class2"]
    # the same clips, the same split: the images are the same
    assert torch.equal(both.x, ds.x) and torch.equal(both.y, ds.y)


def test_short_clips_are_centred_and_long_ones_keep_their_loudest_part():
    short, cropped = fit_length(np.ones(10, np.float32), 20)
    assert not cropped and short[:5].sum() == 0 and short[5:15].sum() == 10 and short[15:].sum() == 0
    x = np.zeros(100, np.float32)
    x[60:70] = 1.0  # the word, late in a long recording
    long, cropped = fit_length(x, 20)
    assert cropped and long.sum() == 10


def test_a_clip_at_another_rate_is_resampled_or_refused(tmp_path):
    t = np.arange(16000 * 3 // 10) / 16000
    for k in range(2):
        write_wav(tmp_path / "r" / f"{k}_a_{k}.wav", 0.5 * np.sin(2 * np.pi * 1000 * t), 16000)
        write_wav(tmp_path / "r" / f"{k}_b_{k}.wav", 0.5 * np.sin(2 * np.pi * 1000 * t), 16000)
    ds = load_audio(str(tmp_path / "r"), "train", progress=False)
    tr = Spectrogram.from_dict(ds.audio)
    peak = tr.log_magnitude(ds.wave)[:, :, 20:30].mean(-1).argmax(-1)
    assert (peak == 16).all()  # 1 kHz is still 1 kHz at 8 kHz (bin width 62.5 Hz)
    with pytest.raises(DataError, match="16,000 Hz.*data.resample=true"):
        load_audio(str(tmp_path / "r"), "train", resample=False, progress=False)


def test_load_data_routes_sound_and_the_run_keeps_the_transform(tone_folder, tmp_path):
    ds = load_data(DataConfig(name=str(tone_folder)), "test", progress=False)
    assert ds.audio["mean"] is not None and len(ds.audio["mean"]) == 64
    out = tmp_path / "run"
    train("vae", out, preset="tiny", overrides=[f"data.name={tone_folder}", "train.steps=2"],
          progress=False)
    run = genlab.load(out)
    assert run.info.audio == ds.audio  # the statistics of the training split, saved in the run


# the whole registry's image families that draw a class (sound clips come with no captions)
IMAGE_FAMILIES = [
    f for f in names() if get(f).data_kind == "images" and not get(f).takes_prompt
]


@pytest.mark.parametrize("family", IMAGE_FAMILIES)
def test_every_image_family_trains_and_samples_on_sound(family, tone_folder, tmp_path):
    out = tmp_path / family
    overrides = [f"data.name={tone_folder}", "model.conditional=true", "train.steps=6"]
    train(family, out, preset="tiny", overrides=overrides, progress=False)
    run = genlab.load(out)
    x = run.sample(3, seed=0, label=[0, 1, 2])
    assert x.shape == (3, 1, 64, 64) and x.min() >= -1 and x.max() <= 1
    wave = Spectrogram.from_dict(run.info.audio).to_wave(x, iters=4)
    assert wave.shape == (3, 4096) and torch.isfinite(wave).all()


# -- bad input: one line, exit status 2, nothing on disk lost -----------------------------------
def _not_a_wav(folder):
    (folder / "0_x_0.wav").write_text("this is not audio")


def _truncated(folder):
    p = write_wav(folder / "0_x_0.wav", np.zeros(800), 8000)
    p.write_bytes(p.read_bytes()[:-300])


def _wide(folder):
    """A PCM WAV header declaring 64-bit samples."""
    data = b"\0" * 64
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 8000 * 8, 8, 64)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data"
    body += struct.pack("<I", len(data)) + data
    (folder / "0_x_0.wav").write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def _float_wav(folder):
    fmt = struct.pack("<HHIIHH", 3, 1, 8000, 8000 * 4, 4, 32)  # IEEE float: not PCM
    data = np.zeros(100, "<f4").tobytes()
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data"
    body += struct.pack("<I", len(data)) + data
    (folder / "0_x_0.wav").write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def _other_rate(folder):
    write_wav(folder / "0_x_0.wav", np.zeros(800), 16000)


BAD = {
    "not a wav": (_not_a_wav, [], "not a PCM WAV"),
    "truncated": (_truncated, [], "truncated WAV"),
    "64-bit samples": (_wide, [], "64-bit samples are not supported"),
    "float samples": (_float_wav, [], "not a PCM WAV"),
    "another rate, no resampling": (_other_rate, ["data.resample=false"], "16,000 Hz"),
    "empty folder": (lambda folder: None, [], "empty folder"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_sound_files_give_one_clear_line_and_status_2(case, tmp_path, tone_folder):
    make, overrides, message = BAD[case]
    folder = tmp_path / "clips"
    folder.mkdir()
    if case != "empty folder":
        for p in list(tone_folder.glob("*.wav"))[:6]:  # good clips beside the bad one
            (folder / p.name).write_bytes(p.read_bytes())
    make(folder)
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    res = subprocess.run(
        [sys.executable, "-m", "genlab", "train", "vae", "--data", str(folder), "--out",
         str(out / "new"), "--steps", "2", *overrides],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("genlab: error:"), res.stderr
    assert message in lines[0]
    assert (out / "keep.txt").read_text() == "mine" and not (out / "new" / "config.json").exists()


def test_fsdd_is_split_as_published(shared_data, monkeypatch):
    """Recordings numbered 0-4 are the test set (300), 5-49 training (2,700)."""
    monkeypatch.setenv("GENLAB_DATA_MIRROR", str(shared_data))
    train_set = load_data(DataConfig(name="fsdd"), "train", progress=False)
    test_set = load_data(DataConfig(name="fsdd"), "test", progress=False)
    assert len(train_set.x) == 2700 and len(test_set.x) == 300
    assert train_set.classes == [str(d) for d in range(10)]
    assert torch.bincount(test_set.y).tolist() == [30] * 10
    assert test_set.x.shape[1:] == (1, 64, 64) and test_set.wave.shape[1:] == (4096,)
