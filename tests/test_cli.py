"""The CLI end to end (digits and a small RGB image folder), the README's Python
example, and bad input: one line, exit status 2, no traceback, nothing lost."""

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import genlab
from genlab.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = ["--preset", "tiny", "--quiet"]


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def cvae(tmp_path_factory) -> Path:
    """A tiny conditional VAE on the embedded digits, trained through the CLI."""
    out = tmp_path_factory.mktemp("runs") / "cvae"
    assert main(["train", "vae", "--out", str(out), *TINY, "model.conditional=true"]) == 0
    return out


def test_train_writes_a_complete_run(cvae):
    names = {p.name for p in cvae.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "ema.safetensors",
        "best.safetensors",
        "metrics.jsonl",
        "samples",
        "state",
    } <= names
    assert sorted(p.name for p in (cvae / "samples").iterdir()) == [
        "step-00000010.png",
        "step-00000020.png",
    ]
    lines = (cvae / "metrics.jsonl").read_text().splitlines()
    assert any('"val_loss"' in line for line in lines)


def test_sample_png_npz_folder_and_interpolation(cvae, tmp_path, capsys):
    code, _, _ = run_cli(capsys, "sample", cvae, "-n", 12, "--out", tmp_path / "g.png")
    assert code == 0 and Image.open(tmp_path / "g.png").size[0] > 100

    assert run_cli(capsys, "sample", cvae, "-n", 12, "--out", tmp_path / "s.npz")[0] == 0
    z = np.load(tmp_path / "s.npz")
    assert z["x"].shape == (12, 8, 8, 1) and z["x"].dtype == np.uint8
    assert z["y"].tolist() == [i % 10 for i in range(12)]  # no --label: cycle the classes

    assert (
        run_cli(capsys, "sample", cvae, "-n", 4, "--label", "7", "--out", tmp_path / "sevens.npz")[
            0
        ]
        == 0
    )
    assert np.load(tmp_path / "sevens.npz")["y"].tolist() == [7, 7, 7, 7]

    assert run_cli(capsys, "sample", cvae, "-n", 3, "--out", f"{tmp_path / 'each'}/")[0] == 0
    assert sorted(p.name for p in (tmp_path / "each").iterdir()) == [
        "000000.png",
        "000001.png",
        "000002.png",
    ]

    code, _, _ = run_cli(
        capsys, "sample", cvae, "-n", 2, "--interpolate", 5, "--out", tmp_path / "i.png"
    )
    assert code == 0


def test_same_seed_same_samples_and_temperature_zero_is_the_mean(cvae, tmp_path, capsys):
    for name in ("a", "b"):
        run_cli(capsys, "sample", cvae, "-n", 6, "--seed", 5, "--out", tmp_path / f"{name}.npz")
    assert np.array_equal(np.load(tmp_path / "a.npz")["x"], np.load(tmp_path / "b.npz")["x"])
    run = genlab.load(cvae)
    cold = run.sample(4, seed=1, temperature=0.0, label=[3, 3, 3, 3])
    assert torch.allclose(cold[0], cold[3])  # z = 0 for every sample


def test_eval_scores_samples_beside_the_floor_and_records_the_protocol(cvae, capsys):
    code, out, _ = run_cli(
        capsys, "eval", cvae, "--n", 200, "--metrics", "samples,nll", "--k", 8, "--nll-n", 20
    )
    assert code == 0 and "fid" in out and "floor" in out and "iwae_nll" in out
    rec = json.loads((cvae / "eval" / "metrics.json").read_text())
    for key in (
        "fid",
        "kid",
        "precision",
        "recall",
        "density",
        "coverage",
        "is",
        "class_consistency",
        "ms_ssim",
        "copy_share",
        "iwae_nll",
    ):
        assert isinstance(rec[key], float), key
    assert set(rec["floor"]) >= {"fid", "precision", "recall", "class_consistency"}
    p = rec["protocol"]
    assert p["n_generated"] == p["n_floor"] == 200 and p["real_split"] == "test"
    assert len(p["extractor"]["weights_sha256"]) == 64 and p["extractor"]["test_accuracy"] > 0.9
    assert p["likelihood"]["k"] == 8 and rec["n"] == 20
    # the floor is what real unseen-vs-seen data scores: better than a 20-step model
    assert rec["floor"]["fid"] < rec["fid"] and rec["floor"]["class_consistency"] > 0.9
    # one record per protocol: another n adds a file, the first stays
    records = sorted((cvae / "eval").glob("samples-*.json"))
    assert run_cli(capsys, "eval", cvae, "--n", 100)[0] == 0
    assert set(records) < set((cvae / "eval").glob("samples-*.json"))
    code, out, _ = run_cli(capsys, "info", cvae)
    assert code == 0 and "vae" in out and "step 20 of 20" in out


def test_info_family_and_data_list(capsys):
    code, out, _ = run_cli(capsys, "info", "--family", "vae")
    assert code == 0 and "model.latent_dim" in out and "--temperature" in out
    code, out, _ = run_cli(capsys, "data", "list")
    assert code == 0 and "digits" in out and "mnist" in out and "embedded" in out


def test_python_api_example_from_readme(cvae, tmp_path):
    """The README's Python lines, run as written (with the run path swapped in)."""
    readme = (REPO / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "runs/demo/vae" in b)
    code = block.replace('"runs/demo/vae"', repr(str(cvae))).replace(
        '"grid.png"', repr(str(tmp_path / "g.png"))
    )
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "g.png").exists()


def _rgb_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for cls, colour in (("red", 0), ("blue", 2)):
        (root / cls).mkdir(parents=True)
        for i in range(24):
            a = rng.integers(0, 60, (16, 16, 3), dtype=np.uint8)
            a[4:12, 4:12, colour] = 200 + rng.integers(0, 50)
            Image.fromarray(a).save(root / cls / f"{i}.png")
    return root


def test_rgb_image_folder_end_to_end(tmp_path, capsys):
    data = _rgb_folder(tmp_path / "imgs")
    out = tmp_path / "run"
    code, _, err = run_cli(
        capsys, "train", "vae", "--data", data, "--out", out, *TINY, "model.conditional=true"
    )
    assert code == 0, err
    run = genlab.load(out)
    assert run.info.shape == (3, 16, 16) and run.info.classes == ["blue", "red"]
    assert run.model.likelihood == "logistic"
    assert run_cli(capsys, "sample", out, "-n", 4, "--out", tmp_path / "s.npz")[0] == 0
    assert np.load(tmp_path / "s.npz")["x"].shape == (4, 16, 16, 3)


# -- bad input -------------------------------------------------------------
def _bad_inputs(tmp: Path, cvae: Path, shared: Path | None):
    """(name, argv, folder whose files must survive untouched)."""
    cases = []
    empty = tmp / "empty"
    empty.mkdir()
    cases.append(("empty folder", ["train", "vae", "--data", empty, "--out", tmp / "o1"], None))
    text = tmp / "story.txt"
    text.write_text("once upon a time\n")
    cases.append(("text as images", ["train", "vae", "--data", text, "--out", tmp / "o2"], None))
    mixed = tmp / "mixed"
    mixed.mkdir()
    Image.new("L", (8, 8)).save(mixed / "a.png")
    Image.new("L", (12, 9)).save(mixed / "b.png")
    cases.append(("mixed sizes", ["train", "vae", "--data", mixed, "--out", tmp / "o3"], None))
    cases.append(
        ("unknown override", ["train", "vae", "--out", tmp / "o4", "model.latnt_dim=3"], None)
    )
    cases.append(
        ("mistyped override", ["train", "vae", "--out", tmp / "o5", "train.lr=fast"], None)
    )
    cases.append(("unknown family", ["train", "gan2", "--out", tmp / "o6"], None))
    stranger = tmp / "stranger"
    stranger.mkdir()
    (stranger / "notes.md").write_text("hello")
    cases.append(("not a run", ["sample", stranger, "--out", tmp / "x.png"], stranger))
    cases.append(("missing run", ["info", tmp / "nope"], None))
    cases.append(("out holds a run", ["train", "vae", "--out", cvae, *TINY], cvae))
    cases.append(
        (
            "control the family lacks",
            ["sample", cvae, "--truncation", "0.5", "--out", tmp / "t.png"],
            cvae,
        )
    )
    cases.append(
        ("label out of range", ["sample", cvae, "--label", "12", "--out", tmp / "l.png"], cvae)
    )
    cases.append(("unknown output type", ["sample", cvae, "--out", tmp / "x.gif"], cvae))
    cases.append(
        ("unknown data set", ["train", "vae", "--data", "imagenet-64", "--out", tmp / "o7"], None)
    )
    if shared is not None:
        trunc = tmp / "mnist_trunc"
        shutil.copytree(shared / "mnist", trunc)
        blob = (trunc / "train-images-idx3-ubyte.gz").read_bytes()
        (trunc / "train-images-idx3-ubyte.gz").write_bytes(blob[: len(blob) // 2])
        cases.append(
            ("truncated gz", ["train", "vae", "--data", trunc, "--out", tmp / "o8"], trunc)
        )
    return cases


def test_bad_input_is_one_line_exit_2_and_touches_nothing(cvae, tmp_path, capsys, request):
    try:
        shared = request.getfixturevalue("shared_data")
    except pytest.skip.Exception:
        shared = None
    before_run = _snapshot(cvae)
    for name, argv, keep in _bad_inputs(tmp_path, cvae, shared):
        before = _snapshot(keep) if keep else None
        code, out, err = run_cli(capsys, *argv)
        lines = [x for x in err.splitlines() if x.strip()]
        assert code == 2, f"{name}: exit {code}, {err}"
        assert len(lines) == 1 and lines[0].startswith("genlab: error: "), f"{name}: {err!r}"
        assert "Traceback" not in err
        if keep:
            assert _snapshot(keep) == before, f"{name} changed {keep}"
        for o in ("o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8"):
            assert not (tmp_path / o).exists(), f"{name} created {o}"
    assert _snapshot(cvae) == before_run


def test_a_pickle_in_place_of_weights_is_refused(cvae, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(cvae, run)
    torch.save({"w": torch.zeros(2)}, run / "ema.safetensors")  # a pickle under the right name
    torch.save({"w": torch.zeros(2)}, run / "state" / "step-00000020" / "model.safetensors")
    before = _snapshot(run)
    for argv in (
        ["sample", run, "--out", tmp_path / "x.png"],
        ["train", "--out", run, "--resume", "--steps", "30", "--quiet"],
    ):
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and "not a readable safetensors file" in err and len(err.splitlines()) == 1
    assert _snapshot(run) == before


def test_console_script_exit_status_and_no_traceback(tmp_path):
    """The installed command, in a real process: bad input exits 2 in one line."""
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "genlab",
            "train",
            "vae",
            "--out",
            str(tmp_path / "o"),
            "model.nope=1",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_a_larger_steps_extends_a_finished_run(cvae, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(cvae, run)
    code, _, err = run_cli(capsys, "train", "--out", run, "--resume", "--steps", 25, "--quiet")
    assert code == 0, err
    assert run_cli(capsys, "info", run)[1].count("step 25 of 25") == 1
    steps = [
        json.loads(x)["step"]
        for x in (run / "metrics.jsonl").read_text().splitlines()
        if '"lr"' in x
    ]
    assert steps == list(range(1, 26))
    assert (run / "samples" / "step-00000025.png").exists()
    # a finished run asked to resume with no more steps has nothing to do, and says so
    before = _snapshot(run)
    code, _, err = run_cli(capsys, "train", "--out", run, "--resume")
    assert code == 0 and "nothing to do" in err
    assert {k: v for k, v in _snapshot(run).items() if k != "config.json"} == {
        k: v for k, v in before.items() if k != "config.json"
    }


def test_demo_runs_end_to_end_and_never_overwrites(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "30"]) == 0
    printed = capsys.readouterr().out
    files = ["report.html"]
    for family in ("vae", "gan"):
        files += [f"{family}/{f}" for f in ("samples.png", "interpolation.png", "metrics.jsonl")]
        record = json.loads((out / family / "eval" / "metrics.json").read_text())
        assert {"fid", "precision", "class_consistency", "copy_share"} <= set(record), family
        assert family.upper() in printed
    # the text part: no mirror here (conftest), so an LSTM on the embedded Grimms' tales
    text = json.loads((out / "lstm" / "eval" / "metrics.json").read_text())
    assert {"bits_per_char", "known_words"} <= set(text) and "known_words" in text["reference"]
    assert json.loads((out / "lstm" / "config.json").read_text())["data"]["name"] == "grimms"
    assert "LSTM on Grimms' Fairy Tales" in printed and "of its words known" in printed
    files.append("lstm/sample.txt")
    for name in files:
        assert (out / name).exists(), name
    for name in ("report.html", "vae/samples.png", "gan/interpolation.png"):
        assert str(out / name) in printed
    assert "real-vs-real floor" in printed and "VAE test NLL" in printed
    page = (out / "report.html").read_text()
    assert "temperature" in page and "truncation" in page
    before = _snapshot(out)
    assert main(["demo", "--out", str(out), "--steps", "2"]) == 0
    assert (tmp_path / "demo-2" / "gan" / "samples.png").exists() and _snapshot(out) == before
