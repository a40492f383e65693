"""Outputs of a run trained on sound, where people hear and see them: `genlab sample` writes
WAVs (a folder/, one .wav), arrays (.npz) and spectrogram grids (.png); `--say TEXT` speaks a
text one generated clip a character; `--gl-iters` is refused where there is no sound; the
report plays the clips offline; the studio's items carry their WAV and it says a text.

One tiny conditional VAE is trained once (seconds) on the tone fixture: 3 classes, "0"-"2".
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genlab.cli import main
from genlab.outputs.audio import flip_frequency
from genlab.outputs.images import make_grid
from genlab.speech import GAP, PAUSE, join, say_clips, trim

RATE, SAMPLES = 8000, 4096


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tone_folder) -> Path:
    """A folder holding the tiny audio run (``tone``) and the same run without its sound
    transform (``picture``: a run that makes images)."""
    from genlab.training.launch import train

    root = tmp_path_factory.mktemp("audio") / "runs"
    overrides = ["data.name=" + str(tone_folder), "model.conditional=true", "train.steps=30"]
    train("vae", root / "tone", preset="tiny", overrides=overrides, progress=False)
    return root


@pytest.fixture(scope="module")
def run_dir(runs) -> Path:
    return runs / "tone"


@pytest.fixture(scope="module")
def image_run(runs, tmp_path_factory) -> Path:
    """The audio run's weights as an image run: its config without the spectrogram."""
    out = tmp_path_factory.mktemp("picture") / "picture"
    shutil.copytree(runs / "tone", out, ignore=shutil.ignore_patterns("state", "samples"))
    cfg = json.loads((out / "config.json").read_text())
    cfg["data_info"]["audio"] = None
    (out / "config.json").write_text(json.dumps(cfg))
    return out


@pytest.fixture(scope="module")
def run(run_dir):
    import genlab

    return genlab.load(run_dir)


def sample(capsys, *args) -> tuple[int, str]:
    """(exit status, stderr) of `genlab sample ARGS`."""
    capsys.readouterr()
    rc = main(["sample", *map(str, args)])
    return rc, capsys.readouterr().err


def read_wav(path_or_bytes) -> tuple[np.ndarray, int]:
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    with wave.open(src, "rb") as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        rate, frames = w.getframerate(), w.readframes(w.getnframes())
    return np.frombuffer(frames, "<i2").astype(np.float32) / 32767, rate


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genlab: error: "), err
    return lines[0]


# -- genlab sample --------------------------------------------------------------------------
def test_a_folder_gets_one_wav_per_sample_at_the_runs_rate_and_length(run_dir, tmp_path, capsys):
    rc, err = sample(capsys, run_dir, "-n", 4, "--label", 1, "--out", f"{tmp_path / 'ones'}/")
    assert rc == 0, err
    files = sorted((tmp_path / "ones").iterdir())
    assert [f.name for f in files] == [f"{i:06d}.wav" for i in range(4)]
    waves = [read_wav(f) for f in files]
    assert all(rate == RATE and len(w) == SAMPLES for w, rate in waves)
    assert all(np.abs(w).max() > 1e-3 for w, _ in waves)  # sound, not silence
    assert "4 clips" in err


def test_a_wav_takes_one_sample_and_refuses_more(run_dir, tmp_path, capsys):
    rc, err = sample(capsys, run_dir, "--label", 2, "--out", tmp_path / "one.wav")  # -n 1 implied
    assert rc == 0, err
    w, rate = read_wav(tmp_path / "one.wav")
    assert (rate, len(w)) == (RATE, SAMPLES)
    rc, err = sample(capsys, run_dir, "-n", 3, "--out", tmp_path / "three.wav")
    assert rc == 2 and not (tmp_path / "three.wav").exists()
    line = one_line(err)
    assert "one sample" in line and "folder/" in line and "--say" in line


def test_npz_holds_audio_rate_labels_and_spectrograms_as_the_folder_sounds(
    run_dir, tmp_path, capsys
):
    rc, err = sample(capsys, run_dir, "-n", 5, "--seed", 3, "--out", tmp_path / "s.npz")
    assert rc == 0, err
    with np.load(tmp_path / "s.npz") as d:
        assert set(d.files) == {"audio", "sample_rate", "y", "x"}
        audio, x = d["audio"], d["x"]
        assert audio.dtype == np.float32 and audio.shape == (5, SAMPLES)
        assert np.abs(audio).max() <= 1.0
        assert int(d["sample_rate"]) == RATE
        assert d["y"].tolist() == [0, 1, 2, 0, 1]  # the classes in turn
        assert x.dtype == np.uint8 and x.shape == (5, 64, 64, 1)
    # the same seed writes the same sound whatever the output
    rc, err = sample(capsys, run_dir, "-n", 5, "--seed", 3, "--out", f"{tmp_path / 'f'}/")
    assert rc == 0, err
    w, _ = read_wav(tmp_path / "f" / "000004.wav")
    assert np.abs(w - audio[4]).max() < 2 / 32767
    # the .png grid is those spectrograms, low frequencies at the bottom, a class a column
    rc, err = sample(capsys, run_dir, "-n", 5, "--seed", 3, "--out", tmp_path / "s.png")
    assert rc == 0, err
    with Image.open(tmp_path / "s.png") as im:
        grid = np.asarray(im)
    assert np.array_equal(grid, make_grid(flip_frequency(x), 3)[..., 0])


def test_gl_iters_is_a_control_of_sound_runs_only(run_dir, image_run, tmp_path, capsys):
    rc, err = sample(capsys, run_dir, "-n", 1, "--gl-iters", 0, "--out", tmp_path / "a.wav")
    assert rc == 0, err
    rc, err = sample(capsys, run_dir, "-n", 1, "--gl-iters", 1001, "--out", tmp_path / "b.wav")
    assert rc == 2 and "--gl-iters must be between 0 and 1,000" in one_line(err)
    rc, err = sample(capsys, image_run, "-n", 4, "--gl-iters", 8, "--out", tmp_path / "g.png")
    assert rc == 2 and not (tmp_path / "g.png").exists()
    assert "--gl-iters is for runs trained on sound" in one_line(err)
    rc, err = sample(capsys, image_run, "-n", 4, "--out", tmp_path / "g.png")  # images unchanged
    assert rc == 0, err


# -- say --------------------------------------------------------------------------------------
def test_say_writes_one_wav_of_the_trimmed_clips_and_gaps(run, run_dir, tmp_path, capsys):
    rc, err = sample(capsys, run_dir, "--say", "2012", "--seed", 4, "--out", tmp_path / "s.wav")
    assert rc == 0, err
    w, rate = read_wav(tmp_path / "s.wav")
    clips = say_clips(run, "2012", seed=4)
    gap = int(round(GAP * RATE))
    assert rate == RATE
    assert len(w) == sum(len(c) for c in clips) + 3 * gap
    assert all(0 < len(c) <= SAMPLES for c in clips)
    start = len(clips[0])
    assert np.abs(w[start : start + gap]).max() == 0  # the gap is silence
    # a space is a longer pause
    spaced = join(say_clips(run, "2 0", seed=4), RATE)
    assert len(spaced) == sum(len(c) for c in say_clips(run, "20", seed=4)) + PAUSE * gap


def test_say_names_a_character_the_run_has_no_class_for(run_dir, tmp_path, capsys):
    rc, err = sample(capsys, run_dir, "--say", "2x1", "--out", tmp_path / "no.wav")
    assert rc == 2 and not (tmp_path / "no.wav").exists()
    line = one_line(err)
    assert "'x'" in line and "0, 1, 2" in line
    rc, err = sample(capsys, run_dir, "--say", "12", "--out", tmp_path / "no.npz")
    assert rc == 2 and "--out NAME.wav" in one_line(err)
    rc, err = sample(capsys, run_dir, "--say", "12", "-n", 3, "--out", tmp_path / "no.wav")
    assert rc == 2 and "-n" in one_line(err)


def test_say_is_for_sound_runs(image_run, tmp_path, capsys):
    rc, err = sample(capsys, image_run, "--say", "12", "--out", tmp_path / "no.wav")
    assert rc == 2 and "--say is for runs trained on sound" in one_line(err)


def test_trim_cuts_the_silence_at_both_ends_with_a_margin():
    t = np.arange(2000) / RATE
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    x = np.concatenate([np.zeros(1600), tone, 1e-4 * np.ones(2400)]).astype(np.float32)
    y = trim(x, RATE)
    assert 2000 <= len(y) <= 2000 + 2 * 80 + 2 * 40  # the tone, within a frame and a margin
    assert trim(np.zeros(4096, np.float32), RATE).size == 0


# -- the report ------------------------------------------------------------------------------
def test_the_report_plays_generated_and_real_clips_offline(run_dir, tmp_path, monkeypatch):
    import genlab.report.html as report

    def fake_record(run, **kw):  # the metrics are another module's: here, only the page
        return {
            "fid": 1.0,
            "fid_ci": [0.5, 1.5],
            "floor": {"fid": 0.1},
            "protocol": {"extractor": {"name": "stub", "standard": True}, "n_generated": 3,
                         "real_split": "test", "n_real": 3, "data": "tones"},
        }

    monkeypatch.setattr(report, "cached_evaluate_samples", fake_record)
    out = report.build_report([run_dir], tmp_path / "r.html", n=3, progress=False,
                              skip_sweeps=("vae",))
    page = out.read_text()
    assert "<h2>Sound</h2>" in page
    players = re.findall(r'<audio controls[^>]*src="data:audio/wav;base64,([^"]+)"', page)
    assert len(players) == 3 + 3  # one per class, and the 3 clips of the test split
    w, rate = read_wav(base64.b64decode(players[0]))
    assert (rate, len(w)) == (RATE, SAMPLES)
    assert "generated 3 · 2" in page and "real 1" in page
    assert not re.search(r'(src|href)="(?!data:)', page)  # one offline file: nothing fetched


# -- the studio ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def studio(runs):
    from conftest import start_studio

    s = start_studio([runs])
    yield s
    s.stop()


def api(studio, method: str, path: str, body=None) -> tuple[int, dict, dict]:
    import http.client

    host, port = studio.base.removeprefix("http://").rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if studio.token:
        headers["Authorization"] = f"Bearer {studio.token}"
    c.request(method, path, json.dumps(body) if body is not None else None, headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, json.loads(data or b"{}")


def job_result(studio, body: dict) -> dict:
    import time

    status, _, job = api(studio, "POST", "/api/generate", body)
    assert status == 202, job
    for _ in range(600):
        _, _, state = api(studio, "GET", f"/api/jobs/{job['job']}")
        if state["done"]:
            assert state["error"] is None, state
            return state["result"]
        time.sleep(0.1)
    raise AssertionError("the job did not finish")


def wav_of(uri: str) -> tuple[np.ndarray, int]:
    assert uri.startswith("data:audio/wav;base64,")
    return read_wav(base64.b64decode(uri.split(",", 1)[1]))


def test_the_studio_plays_an_audio_runs_samples_and_says_a_text(studio):
    status, headers, listing = api(studio, "GET", "/api/runs")
    assert status == 200 and "media-src 'self' data: blob:" in headers["content-security-policy"]
    (tone,) = [r for r in listing["runs"] if r["id"] == "tone"]
    assert tone["audio"] is True and tone["classes"] == ["0", "1", "2"]

    res = job_result(studio, {"run": "tone", "n": 3, "seed": 1, "save": False})
    assert len(res["items"]) == 3
    for item in res["items"]:
        w, rate = wav_of(item["wav"])
        assert (rate, len(w)) == (RATE, SAMPLES)
        assert item["png"].startswith("data:image/png;base64,")

    res = job_result(studio, {"run": "tone", "mode": "say", "text": "201", "seed": 2})
    (item,) = res["items"]
    w, rate = wav_of(item["wav"])
    assert rate == RATE and 2 * GAP * RATE < len(w) <= 3 * SAMPLES + 2 * GAP * RATE
    assert item["meta"]["mode"] == "say" and item["meta"]["text"] == "201"
    with Image.open(io.BytesIO(base64.b64decode(item["png"].split(",", 1)[1]))) as im:
        assert im.height == 64 and im.width >= len(w) // 64  # one column a hop

    status, _, err = api(studio, "POST", "/api/generate", {"run": "tone", "mode": "say", "text": "27"})
    assert status == 400 and "'7'" in err["detail"] and "0, 1, 2" in err["detail"]
    status, _, err = api(studio, "POST", "/api/generate", {"run": "tone", "mode": "say", "text": "1" * 33})
    assert status == 400


def test_the_studio_page_plays_clips_and_says_a_number(studio):
    """In headless chromium (skipped without it): a player under each sample of the audio
    run, the say box, a said text's player, and a character without a class refused."""
    import os

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed")
    if not Path(chromium).exists():
        if os.environ.get("GENLAB_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed")
        pytest.skip("chromium is not installed")
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(studio.url)
            page.wait_for_selector("#run option[value='tone']", state="attached")
            page.select_option("#run", "tone")
            page.wait_for_selector("#controls [data-control]")
            assert page.is_visible("#say-box")
            page.fill("#n", "3")
            page.click("#generate")
            page.wait_for_selector("#results .sample audio")
            assert page.locator("#results .sample audio").count() == 3
            duration = page.evaluate(
                """() => new Promise((done) => { const a = document.querySelector('#results audio');
                if (a.readyState >= 1) return done(a.duration);
                a.addEventListener('loadedmetadata', () => done(a.duration));
                a.addEventListener('error', () => done(-1)); })"""
            )
            assert duration == pytest.approx(SAMPLES / RATE, abs=0.01)  # the CSP lets it play
            page.fill("#say-text", "201")
            page.click("#say")
            page.wait_for_selector("#results .say-sample audio")
            assert "said" in page.text_content("#status")
            page.fill("#say-text", "27")
            page.click("#say")
            page.wait_for_function("document.querySelector('#status').textContent.includes('7')")
            assert "no class" in page.text_content("#status")
        finally:
            browser.close()
    assert not errors, errors


def test_the_blind_test_on_sound_plays_clips(run_dir):
    """A real-or-generated trial of a sound run carries a clip to listen to."""
    import json
    import urllib.request

    from conftest import start_studio

    s = start_studio([run_dir.parent])
    try:
        seen = set()
        for _ in range(8):
            req = urllib.request.Request(
                s.base + "/api/trials",
                data=json.dumps({"kind": "real_or_generated",
                                 "run": run_dir.name}).encode(),
                headers={"Content-Type": "application/json"},
            )
            trial = json.load(urllib.request.urlopen(req, timeout=60))
            assert trial["wav"].startswith("data:audio/wav;base64,")
            assert trial["png"].startswith("data:image/png;base64,")
            seen.add(trial["wav"])
        assert len(seen) > 1
    finally:
        s.stop()
