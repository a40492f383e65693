"""`genlab compare`: one self-contained page, with the leaderboard, grids, curves and the
family's knob swept at >= 4 settings; a second compare reuses the cached sweep."""

import re

import pytest

import genlab
from genlab.cli import main
from genlab.metrics import protocol


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, extra in (("cvae", ["model.conditional=true"]), ("vae", [])):
        genlab.train("vae", root / name, preset="tiny", overrides=extra, progress=False)
    return [root / "cvae", root / "vae"]


@pytest.fixture(autouse=True)
def _one_classifier(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path_factory.getbasetemp() / "report-cache"))


def test_compare_writes_one_self_contained_page(runs, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["compare", *map(str, runs), "--out", str(out), "--n", "100"]) == 0
    page = out.read_text()
    assert "Leaderboard" in page and "floor" in page
    assert page.count('src="data:image/png;base64,') == 2  # one grid per run
    # nothing to fetch: the only URL is the SVG namespace
    assert set(re.findall(r"https?://[^\"' )]+", page)) == {"http://www.w3.org/2000/svg"}
    assert "<script" not in page and "<link" not in page
    # the sweep: each run's temperature at >= 4 settings, FID with intervals
    values = genlab.load(runs[0]).model.sweep[1]
    assert len(values) >= 4
    assert page.count("FID vs temperature") == 2 and page.count("quality and diversity") == 2
    assert page.count("<svg") == 2 * 2 + 2  # two sweep plots per run, two training plots
    for run in runs:
        assert len(list((run / "eval").glob("samples-*.json"))) == len(values)
        assert not (run / "eval" / "metrics.json").exists()  # sweeps leave "latest" alone


def test_a_second_compare_uses_the_cached_sweep(runs, tmp_path, monkeypatch):
    main(["compare", str(runs[0]), "--out", str(tmp_path / "a.html"), "--n", "100"])

    def no_new_work(*args, **kwargs):
        raise AssertionError("the sweep should have come from the cache")

    monkeypatch.setattr(protocol, "evaluate_samples", no_new_work)
    assert main(["compare", str(runs[0]), "--out", str(tmp_path / "b.html"), "--n", "100"]) == 0
    strip = lambda s: re.sub(r"written [0-9-]+ [0-9:]+", "", s)  # noqa: E731
    assert strip((tmp_path / "a.html").read_text()) == strip((tmp_path / "b.html").read_text())


def test_compare_refuses_what_is_not_a_run(tmp_path, capsys):
    assert main(["compare", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    assert not (tmp_path / "r.html").exists()


def test_a_diffusion_run_gets_its_steps_and_guidance_swept_or_a_note(tmp_path):
    from genlab.report.html import build_report

    run = tmp_path / "diff"
    genlab.train(
        "diffusion", run, preset="tiny", overrides=["model.conditional=true"], progress=False
    )
    model = genlab.load(run).model
    knobs = dict(model.sweeps())
    assert set(knobs) == {"sampling_steps", "guidance"} and len(knobs["guidance"]) >= 4
    # the tiny preset has 50 timesteps: no setting beyond them is swept
    assert max(knobs["sampling_steps"]) <= 50 and len(knobs["sampling_steps"]) >= 4
    page = build_report([run], tmp_path / "r.html", n=20, progress=False).read_text()
    assert "FID vs sampling_steps" in page and "FID vs guidance" in page
    assert page.count("<svg") == 2 * 2 + 2
    quick = build_report(
        [run], tmp_path / "q.html", n=20, progress=False, skip_sweeps=("diffusion",)
    ).read_text()
    assert "FID vs" not in quick and "Not swept on this page" in quick
    assert quick.count("<svg") == 2  # the training curves only


def test_compare_gives_text_runs_their_own_section(runs, tmp_path):
    gpt = tmp_path / "gpt"
    genlab.train("gpt", gpt, preset="tiny", overrides=["data.name=pydoc"], progress=False)
    out = tmp_path / "report.html"
    assert main(["compare", str(runs[0]), str(gpt), "--out", str(out), "--n", "10"]) == 0
    page = out.read_text()
    assert "Leaderboard" in page and "<h2>Text</h2>" in page and "real held-out text" in page
    # temperature and top-p each swept at >= 4 settings, cached as eval records
    for knob in ("temperature", "top_p"):
        assert f"diversity and originality vs {knob}" in page
    records = list((gpt / "eval").glob("text-*.json"))
    sweeps = genlab.load(gpt).model.sweeps()
    # temperature 1 and top-p 1 are the same protocol, measured once; plus the main record
    assert len(records) == 1 + sum(len(v) for _, v in sweeps) - 1
    assert page.count("<pre>") == 3  # three stories
