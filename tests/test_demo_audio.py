"""`genlab demo --audio` end to end on the real FSDD recordings (a few seconds of training):
it ends with a clip per digit, a said number, the figures beside floor and ceiling, and a
report that plays them."""

from genlab import demo_audio
from genlab.cli import main


def test_the_audio_demo_ends_with_wavs_figures_and_a_report(shared_data, tmp_path, monkeypatch,
                                                            capsys):
    monkeypatch.setenv("GENLAB_DATA_MIRROR", str(shared_data))
    monkeypatch.setattr(demo_audio, "N_EVAL", 100)  # the figures' n; the demo uses 500
    out = tmp_path / "demo-audio"
    assert main(["demo", "--audio", "--minutes", "0.1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    samples = out / "gan" / "samples"
    assert sorted(p.name for p in samples.glob("digit-*.wav")) == [f"digit-{d}.wav" for d in range(10)]
    assert (samples / "say-2026.wav").stat().st_size > 1000
    html = (out / "report.html").read_text()
    assert html.count("<audio") >= 10 and "data:audio/wav;base64," in html
    for row in ("real test clips (floor)", "real clips through Griffin-Lim", "GAN samples"):
        assert row in printed


def test_the_audio_demo_refuses_a_nonsense_budget(capsys):
    assert main(["demo", "--audio", "--minutes", "0"]) == 2
    assert "--minutes must be" in capsys.readouterr().err
