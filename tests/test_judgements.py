"""Human judgements (metrics/human.py; the studio's routes are serve/judgements.py): the file keeps
every whole answer through a SIGKILL and mends a torn line; HYPE and Bradley-Terry give
the known answers on hand-made and simulated judgements; `genlab compare` shows them."""

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from genlab.errors import RunError
from genlab.metrics import human as J
from genlab.report.judgements import human_section


def ref(path, name=None):
    return {"id": name or Path(path).name, "name": name or Path(path).name, "path": str(path)}


def guess(path, truth, answer, **extra):
    return {
        "kind": "real_or_generated",
        "data": "images",
        "run": ref(path),
        "truth": truth,
        "answer": answer,
        "correct": truth == answer,
        "rater": "r1",
        **extra,
    }


def choice(left, right, answer, **extra):
    winner = {"left": str(left), "right": str(right)}.get(answer)
    return {
        "kind": "pairwise",
        "data": "images",
        "runs": [ref(left), ref(right)],
        "answer": answer,
        "winner": winner,
        "seed": 0,
        "controls": {},
        "rater": "r1",
        **extra,
    }


def lines_parse(path: Path) -> list[bool]:
    """Whether each line of the file is JSON (the newline that ends the last one aside)."""
    lines = path.read_bytes().split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    out = []
    for line in lines:
        try:
            json.loads(line)
            out.append(True)
        except ValueError:
            out.append(False)
    return out


# --- storage ------------------------------------------------------------------------------


def test_append_then_read_keeps_every_record_in_order(tmp_path):
    recs = [J.append(tmp_path, guess("/r", "real", "real", i=i)) for i in range(50)]
    assert all(len(r["id"]) == 32 and r["time"].endswith("+00:00") for r in recs)
    assert J.append(tmp_path, {"id": "mine", "time": "then", "kind": "x"})["id"] == "mine"
    back = J.read(tmp_path)
    assert [r["i"] for r in back[:50]] == list(range(50)) and back[-1]["time"] == "then"
    assert len({r["id"] for r in back}) == 51
    assert (tmp_path / J.FILE).read_bytes().count(b"\n") == 51
    assert J.read(tmp_path / "nowhere") == []


def test_appends_from_many_threads_each_make_one_whole_line(tmp_path):
    def work(t):
        for i in range(25):
            J.append(tmp_path, {"kind": "x", "t": t, "i": i, "text": "a\nb" * 50})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    back = J.read(tmp_path)
    assert len(back) == 200 and {(r["t"], r["i"]) for r in back} == {
        (t, i) for t in range(8) for i in range(25)
    }


def test_a_torn_last_line_is_skipped_then_cut_off_by_the_next_append(tmp_path):
    for i in range(3):
        J.append(tmp_path, {"kind": "x", "i": i})
    path = tmp_path / J.FILE
    with open(path, "ab") as f:
        f.write(b'{"kind": "x", "i": 3, "tru')  # a crash mid-write
    assert [r["i"] for r in J.read(tmp_path)] == [0, 1, 2]
    J.append(tmp_path, {"kind": "x", "i": 4})
    assert [r["i"] for r in J.read(tmp_path)] == [0, 1, 2, 4]
    assert path.read_bytes().endswith(b"\n") and all(lines_parse(path))

    path.write_bytes(b'{"kind": "x", "i"')  # torn with no whole line before it
    J.append(tmp_path, {"kind": "x", "i": 5})
    assert [r["i"] for r in J.read(tmp_path)] == [5]


def test_a_damaged_line_in_the_middle_is_an_error_naming_it(tmp_path):
    J.append(tmp_path, {"kind": "x"})
    with open(tmp_path / J.FILE, "ab") as f:
        f.write(b"not json\n")
    J.append(tmp_path, {"kind": "x"})
    with pytest.raises(RunError, match=r"judgements.jsonl line 2"):
        J.read(tmp_path)


def test_sigkill_while_appending_loses_at_most_the_line_being_written(tmp_path):
    code = textwrap.dedent(
        f"""
        from genlab.metrics.human import append
        i = 0
        while True:
            append({str(tmp_path)!r}, {{"kind": "x", "i": i, "pad": "z" * 4000}})
            i += 1
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    path = tmp_path / J.FILE
    deadline = time.monotonic() + 60
    while not path.exists() and time.monotonic() < deadline:  # the imports take a moment
        time.sleep(0.02)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL
    ok = lines_parse(path)
    assert all(ok[:-1]), "only the last line may be torn"
    assert ok[-1] or not path.read_bytes().endswith(b"\n"), "a torn line has no newline"
    n = len(J.read(tmp_path))
    assert n > 0 and [r["i"] for r in J.read(tmp_path)] == list(range(n))
    J.append(tmp_path, {"kind": "x", "i": n})
    assert path.read_bytes().endswith(b"\n") and all(lines_parse(path))
    assert [r["i"] for r in J.read(tmp_path)] == list(range(n + 1))


# --- HYPE ---------------------------------------------------------------------------------


def test_hype_is_the_share_people_got_wrong_with_a_sane_interval():
    run = "/runs/vae"
    recs = (
        [guess(run, "generated", "real")] * 3  # fooled
        + [guess(run, "real", "generated")]  # a real one doubted
        + [guess(run, "generated", "generated")] * 2
        + [guess(run, "real", "real")] * 4
        + [guess("/runs/other", "generated", "real")] * 5  # another run's: not counted
        + [choice(run, "/runs/other", "left")]
    )
    h = J.hype(recs, run)
    assert h["error_rate"] == pytest.approx(0.4) and h["n"] == 10
    assert (h["n_real"], h["n_generated"]) == (5, 5)
    assert h["fake_error_rate"] == pytest.approx(0.6) and h["real_error_rate"] == pytest.approx(0.2)
    lo, hi = h["ci"]
    assert 0.0 < lo < 0.4 < hi < 1.0 and hi - lo < 0.65
    assert lo == pytest.approx(0.168, abs=0.002) and hi == pytest.approx(0.687, abs=0.002)
    assert J.hype(recs, "/runs/none")["error_rate"] is None
    # an interval at the edge stays inside [0, 1] and narrows with n
    all_right = J.hype([guess(run, "real", "real")] * 100, run)
    assert all_right["error_rate"] == 0 and all_right["ci"][0] == 0 and all_right["ci"][1] < 0.05


def test_hype_counts_a_record_stored_twice_once_and_refuses_nonsense():
    rec = {**guess("/r", "real", "generated"), "id": "same"}
    assert J.hype([rec, rec], "/r")["n"] == 1
    with pytest.raises(RunError, match="judgement bad"):
        J.hype([{**guess("/r", "real", "maybe"), "id": "bad"}], "/r")


# --- Bradley-Terry ------------------------------------------------------------------------


def simulate(strengths: dict, n: int, seed: int = 0, tie: float = 0.0) -> list[dict]:
    rng = np.random.default_rng(seed)
    paths, recs = list(strengths), []
    for i in range(n):
        left, right = rng.choice(len(paths), 2, replace=False)
        pl, pr = strengths[paths[left]], strengths[paths[right]]
        u = rng.random()
        answer = "tie" if u < tie else ("left" if rng.random() < pl / (pl + pr) else "right")
        recs.append(choice(paths[left], paths[right], answer, id=f"g{i}"))
    return recs


def test_bradley_terry_recovers_known_strengths():
    truth = {"/runs/best": 4.0, "/runs/mid": 1.0, "/runs/worst": 0.25}
    bt = J.bradley_terry(simulate(truth, 300))
    assert bt["n"] == 300
    best, mid, worst = bt["scores"]
    assert [s["path"] for s in bt["scores"]] == list(truth)
    assert best["name"] == "best"
    assert sum(s["score"] for s in bt["scores"]) == pytest.approx(0, abs=1e-9)
    # true log-strengths, centred: +1.39, 0, -1.39
    assert best["score"] == pytest.approx(np.log(4), abs=0.4)
    assert worst["score"] == pytest.approx(-np.log(4), abs=0.4)
    assert best["ci"][0] > worst["score"] and best["ci"][0] > worst["ci"][1]
    for s in bt["scores"]:
        assert s["ci"][0] <= s["score"] <= s["ci"][1]
        assert s["elo"] == pytest.approx(1000 + 400 * s["score"] / np.log(10))
        assert s["elo_ci"][0] <= s["elo"] <= s["elo_ci"][1]
    assert sum(s["wins"] for s in bt["scores"]) == sum(s["losses"] for s in bt["scores"]) == 300
    assert J.bradley_terry(simulate(truth, 300), seed=0) == bt  # seeded bootstrap


def test_bradley_terry_dedupes_counts_ties_half_and_restricts_to_paths():
    recs = [choice("/a", "/b", "left", id="1"), choice("/a", "/b", "tie", id="2")]
    bt = J.bradley_terry(recs + recs)  # each stored in both runs' files
    assert bt["n"] == 2
    a, b = bt["scores"]
    assert (a["path"], a["wins"], a["losses"], a["ties"]) == ("/a", 1, 0, 1)
    assert (b["wins"], b["losses"], b["ties"]) == (0, 1, 1)
    # with the prior (one virtual tie a pair): a scored 1.5 + 0.5, b 0.5 + 0.5 -> 2 : 1
    assert a["score"] - b["score"] == pytest.approx(np.log(2), abs=1e-6)
    ties = J.bradley_terry([choice("/a", "/b", "tie", id=str(i)) for i in range(9)])
    assert all(s["score"] == pytest.approx(0, abs=1e-9) for s in ties["scores"])
    # games against a run outside ``paths`` are left out
    more = recs + [choice("/a", "/c", "right", id="3")]
    assert J.bradley_terry(more, paths=["/a", "/b"])["n"] == 2
    assert J.bradley_terry(more)["n"] == 3
    assert J.bradley_terry([], paths=["/a"]) == {"n": 0, "scores": []}


def test_a_run_that_never_loses_keeps_a_finite_score():
    bt = J.bradley_terry([choice("/a", "/b", "left", id=str(i)) for i in range(200)], n_boot=20)
    a, b = bt["scores"]
    assert a["path"] == "/a" and a["losses"] == 0
    assert all(np.isfinite([a["score"], a["elo"], *a["ci"], b["score"], *b["ci"]]))
    assert a["score"] > 1 > -1 > b["score"]


def test_summary_reads_every_runs_file_and_dedupes_shared_choices(tmp_path):
    a, b, c = (tmp_path / n for n in "abc")
    for d in (a, b, c):
        d.mkdir()
    for i in range(6):
        J.append(a, guess(a, "generated", "real" if i < 3 else "generated"))
        rec = J.append(a, choice(a, b, "left"))
        J.append(b, rec)  # the server writes it to both runs, same id
    J.append(a, choice(a, c, "right"))  # c is not compared below
    s = J.summary([a, tmp_path / "b" / ".." / "b"])
    assert s["hype"][str(a)]["error_rate"] == pytest.approx(0.5)
    assert s["hype"][str(b)]["n"] == 0
    bt = s["bradley_terry"]
    assert bt["n"] == 6 and [r["path"] for r in bt["scores"]] == [str(a), str(b)]
    assert bt["scores"][0]["wins"] == 6


# --- the report ---------------------------------------------------------------------------


def test_the_human_section_shows_hype_and_the_ranking(tmp_path):
    a, b = tmp_path / "vae", tmp_path / "gan<b>"
    a.mkdir(), b.mkdir()
    assert human_section([a, b]) == ""  # nobody judged anything: no section
    for i in range(10):  # 4 of 10 wrong
        truth, other = ("generated", "real") if i % 2 else ("real", "generated")
        J.append(a, guess(a, truth, other if i < 4 else truth))
    for i in range(12):
        rec = J.append(a, choice(a, b, "right" if i < 9 else "tie"))
        J.append(b, rec)
    page = human_section([a, b])
    assert "<h2>Human judgements</h2>" in page and "50% means people cannot tell" in page
    assert "gan&lt;b&gt;" in page and "<b>" not in page
    h = J.summary([a])["hype"][str(a)]
    assert f"{h['error_rate']:.1%}" in page and f"{h['ci'][0]:.1%}" in page
    assert "12 side-by-side choice(s)" in page and "9&ndash;0&ndash;3" in page
    assert "40.0%" in page and "10 (5 real, 5 generated)" in page
    assert '<tr><td>1</td><td class="l">gan&lt;b&gt;</td>' in page  # b won 9 of 12
    assert "[no spread]" not in page
    c = tmp_path / "c"
    c.mkdir()
    J.append(c, choice(c, a, "left"))  # one choice: a bootstrap cannot vary it, and says so
    assert "[no spread]" in human_section([a, c])


@pytest.mark.usefixtures("use_module_cache")
def test_compare_shows_the_human_judgements_beside_the_automatic_figures(tmp_path):
    import genlab
    from genlab.report.html import build_report

    run = tmp_path / "vae"
    genlab.train("vae", run, preset="tiny", progress=False)
    plain = build_report([run], tmp_path / "a.html", n=20, progress=False, skip_sweeps=("vae",))
    assert "Human judgements" not in plain.read_text()
    for i in range(20):
        J.append(run, guess(run, "generated", "real" if i < 7 else "generated"))
    page = build_report([run], tmp_path / "b.html", n=20, progress=False, skip_sweeps=("vae",))
    text = page.read_text()
    assert "Leaderboard" in text and "<h2>Human judgements</h2>" in text
    assert "35.0%" in text and "20 (0 real, 20 generated)" in text
