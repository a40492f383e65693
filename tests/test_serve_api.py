"""The studio's HTTP API against a real `genlab serve` over tiny trained runs (vae, gan,
diffusion: conditional 8x8 digits; lstm: text): runs and their declared controls, jobs
streamed as Server-Sent Events (images with novelty, diffusion previews, tokens with their
probabilities), cancelling, PNG provenance round trips, the gallery, OpenAI's client, human
judgements and a full queue. Plain stdlib HTTP (benchmarks/_studio.py), no httpx.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import start_studio
from PIL import Image

from genlab.registry import get
from genlab.rundir import current_sha256

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import _studio as S  # noqa: E402

RUNS = {"vae": "vae", "gan": "gan", "diffusion": "diffusion", "lstm": "rnn"}


def call(base: str, method: str, path: str, body=S._NO_BODY, **kw) -> S.Reply:
    r = S.request(base, method, path, body, **kw)
    assert (
        "content-security-policy" in r.headers and r.headers["x-content-type-options"] == "nosniff"
    )
    return r


def post(base: str, path: str, body, expect: int = 200) -> dict:
    r = call(base, "POST", path, body)
    assert r.status == expect, (r.status, r.body[:500])
    return r.json()


def generate(base: str, body: dict) -> tuple[str, list[tuple[str, object]]]:
    """(job id, every event) of one generation."""
    job = post(base, "/api/generate", body, expect=202)
    assert job["events"] == f"/api/jobs/{job['job']}/events"
    with S.EventStream(base, job["events"]) as stream:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        evs = list(stream)
    assert evs[-1] == ("done", {}), evs[-3:]
    return job["job"], evs


def result(evs) -> dict:
    kinds = [k for k, _ in evs]
    assert "result" in kinds, [e for e in evs if e[0] == "error"]
    return next(d for k, d in evs if k == "result")


def png_bytes(uri: str) -> bytes:
    assert uri.startswith("data:image/png;base64,")
    return base64.b64decode(uri.split(",", 1)[1])


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("L")).copy()


def timesteps(runs: Path) -> int:
    return json.loads((runs / "diffusion" / "config.json").read_text())["model"]["timesteps"]


# -- runs --------------------------------------------------------------------------------
def test_runs_are_listed_with_their_familys_declared_controls(studio, studio_runs):
    r = call(studio.base, "GET", "/api/runs")
    assert r.status == 200
    runs = {d["id"]: d for d in r.json()["runs"]}
    assert set(runs) == set(RUNS)
    for rid, family in RUNS.items():
        d = runs[rid]
        assert d["family"] == family and d["name"] == rid
        assert d["kind"] == ("text" if rid == "lstm" else "images")
        for key in (
            "shape",
            "classes",
            "conditional",
            "has_latent",
            "weights",
            "step",
            "training",
            "eval",
            "controls",
        ):
            assert key in d, (rid, key)
        assert d["weights_sha256"] == current_sha256(studio_runs / rid, d["weights"])
        declared = get(family).controls
        assert set(d["controls"]) == set(declared)  # all conditional: label, guidance too
        for name, c in declared.items():
            got = d["controls"][name]
            assert got["type"] == c.type.__name__
            assert got["default"] == c.default and got["many"] == c.many
            assert got["low"] == c.low and got["high"] == c.high
            assert got["choices"] == (list(c.choices) if c.choices else None)
    assert runs["vae"]["shape"] == [1, 8, 8] and len(runs["vae"]["classes"]) == 10
    assert runs["vae"]["has_latent"] and runs["gan"]["has_latent"]
    assert not runs["diffusion"]["has_latent"]
    one = call(studio.base, "GET", "/api/runs/vae").json()
    assert one["id"] == "vae" and one["curves"]["train"], one["curves"]


# -- generate ----------------------------------------------------------------------------
@pytest.mark.parametrize("run", ["vae", "gan", "diffusion"])
def test_images_come_with_their_nearest_training_image_and_a_copy_verdict(studio, run):
    _, evs = generate(
        studio.base, {"run": run, "seed": 1, "n": 4, "controls": {"label": 3}, "save": False}
    )
    kinds = [k for k, _ in evs]
    assert kinds[0] in ("queued", "start") and "start" in kinds
    res = result(evs)
    assert [it["i"] for it in res["items"]] == [0, 1, 2, 3]
    for it in res["items"]:
        assert pixels(png_bytes(it["png"])).shape == (8, 8)
        assert it["label"] == 3
        nov = it["novelty"]
        assert pixels(png_bytes(nov["nearest"])).shape == (8, 8)
        assert isinstance(nov["distance"], float) and nov["distance"] >= 0
        assert isinstance(nov["threshold"], float) and nov["threshold"] > 0
        assert nov["copy"] is (nov["distance"] < nov["threshold"])
        assert it["meta"]["run"] == run and it["meta"]["seed"] == 1
    assert res["meta"]["n"] == 4


def test_diffusion_streams_previews_before_its_result(studio, studio_runs):
    steps = min(200, timesteps(studio_runs))  # the tiny run has fewer timesteps than 200
    _, evs = generate(
        studio.base,
        {
            "run": "diffusion",
            "seed": 2,
            "n": 16,
            "save": False,
            "controls": {"sampling_steps": steps},
        },
    )
    kinds = [k for k, _ in evs]
    first_result = kinds.index("result")
    previews = [d for k, d in evs[:first_result] if k == "preview"]
    assert len(previews) >= 2, kinds
    assert previews[-1]["step"] == steps and previews[-1]["total"] == steps
    assert all(len(p["images"]) == 16 for p in previews)
    pixels(png_bytes(previews[0]["images"][0]))
    progress = [d for k, d in evs if k == "progress"]
    assert [p["done"] for p in progress] == list(range(1, steps + 1))


def test_text_streams_tokens_with_probabilities_that_add_up_to_the_result(studio):
    prompt = "Once upon a time"
    _, evs = generate(
        studio.base,
        {
            "run": "lstm",
            "seed": 3,
            "n": 1,
            "save": False,
            "controls": {"prompt": prompt, "max_new_tokens": 24, "temperature": 0.8},
        },
    )
    kinds = [k for k, _ in evs]
    tokens = [d for k, d in evs if k == "token"]
    assert len(tokens) == 24 and kinds.index("result") > max(
        i for i, k in enumerate(kinds) if k == "token"
    )
    for t in tokens:
        assert t["i"] == 0 and isinstance(t["text"], str)
        assert 0 < t["p"] <= 1
        assert t["top"] and all(set(a) == {"text", "p"} and 0 < a["p"] <= 1 for a in t["top"])
        assert [a["p"] for a in t["top"]] == sorted((a["p"] for a in t["top"]), reverse=True)
    (item,) = result(evs)["items"]
    assert "".join(t["text"] for t in tokens) == item["text"]
    assert item["prompt"] == prompt and item["finish_reason"] == "length"
    assert set(item["novelty"]) == {"span_words", "span", "start", "end"}


def _long_job(base: str, runs: Path) -> dict:
    """A diffusion job of a second or more (64 images at the run's most steps)."""
    return post(
        base,
        "/api/generate",
        {
            "run": "diffusion",
            "seed": 0,
            "n": 64,
            "save": False,
            "controls": {"sampling_steps": min(1000, timesteps(runs)), "sampler": "ddpm"},
        },
        202,
    )


def test_cancel_stops_a_running_job(studio, studio_runs):
    job = _long_job(studio.base, studio_runs)
    kinds = []
    with S.EventStream(studio.base, job["events"]) as stream:
        for kind, _ in stream:
            kinds.append(kind)
            if kind == "progress" and kinds.count("progress") == 1:
                assert post(studio.base, f"/api/jobs/{job['job']}/cancel", {}) == {
                    "cancelled": True
                }
    assert kinds[-2:] == ["cancelled", "done"] and "result" not in kinds, kinds[-5:]
    state = call(studio.base, "GET", f"/api/jobs/{job['job']}").json()
    assert state["done"] and state["cancelled"] and state["result"] is None
    # a finished job cannot be cancelled again
    assert post(studio.base, f"/api/jobs/{job['job']}/cancel", {}) == {"cancelled": False}


def test_closing_the_event_stream_cancels_the_job(studio, studio_runs):
    job = _long_job(studio.base, studio_runs)
    stream = S.EventStream(studio.base, job["events"])
    for kind, _ in stream:
        if kind == "progress":
            break
    stream.close()
    deadline = time.monotonic() + 15
    while True:
        state = call(studio.base, "GET", f"/api/jobs/{job['job']}").json()
        if state["done"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert state["done"] and state["cancelled"] and state["result"] is None, state


# -- provenance and the gallery --------------------------------------------------------------
@pytest.mark.parametrize(
    "run,controls",
    [
        ("vae", {"temperature": 0.7, "label": 3}),
        ("gan", {"truncation": 1.5}),
        ("diffusion", {"sampling_steps": 12, "sampler": "ddpm", "guidance": 1.5, "label": 5}),
    ],
)
def test_a_saved_png_dropped_back_regenerates_the_same_pixels(studio, studio_runs, run, controls):
    _, evs = generate(
        studio.base, {"run": run, "seed": 11, "n": 6, "controls": controls, "save": False}
    )
    item = result(evs)["items"][4]
    png = png_bytes(item["png"])
    with Image.open(io.BytesIO(png)) as im:
        chunk = json.loads(im.text["genlab"])
    assert chunk["run"] == run and chunk["seed"] == 11 and chunk["index"] == 4
    # every control as used (the family's defaults filled in), the given ones as given
    assert set(chunk["controls"]) == set(get(run).controls)  # run ids here are family names
    assert {k: chunk["controls"][k] for k in controls} == controls
    assert chunk["n"] == 6 and chunk["mode"] == "sample"
    assert chunk["weights_sha256"] == current_sha256(studio_runs / run, chunk["weights"])

    back = post(studio.base, "/api/provenance", {"png": base64.b64encode(png).decode()})
    assert back == {"meta": chunk, "run_known": True, "weights_match": True}
    meta = back["meta"]
    _, again = generate(
        studio.base,
        {
            "run": meta["run"],
            "seed": meta["seed"],
            "n": meta["n"],
            "controls": meta["controls"],
            "mode": meta["mode"],
            "save": False,
        },
    )
    twin = result(again)["items"][meta["index"]]
    assert np.array_equal(pixels(png_bytes(twin["png"])), pixels(png))
    # a data URI is taken as well as bare base64
    assert post(studio.base, "/api/provenance", {"png": item["png"]})["meta"] == chunk


def test_a_png_without_provenance_is_refused_with_a_clear_line(studio):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, "PNG")
    r = call(
        studio.base, "POST", "/api/provenance", {"png": base64.b64encode(buf.getvalue()).decode()}
    )
    assert r.status == 400 and "provenance" in r.detail and "\n" not in r.detail


def test_the_gallery_lists_what_was_saved_newest_first(studio):
    _, evs = generate(studio.base, {"run": "gan", "seed": 4, "n": 3, "save": True})
    items = result(evs)["items"]
    files = [it["file"] for it in items]
    gallery = call(studio.base, "GET", "/api/runs/gan/gallery").json()["items"]
    assert [g["file"] for g in gallery[:3]] == files[::-1]
    for g in gallery[:3]:
        it = items[files.index(g["file"])]
        assert g["kind"] == "image" and g["png"] == it["png"] and g["meta"] == it["meta"]
    _, evs = generate(
        studio.base,
        {
            "run": "lstm",
            "seed": 4,
            "n": 1,
            "save": True,
            "controls": {"prompt": "The", "max_new_tokens": 8},
        },
    )
    (it,) = result(evs)["items"]
    (g,) = call(studio.base, "GET", "/api/runs/lstm/gallery").json()["items"][:1]
    assert g["file"] == it["file"] and g["kind"] == "text"
    assert (g["text"], g["prompt"], g["meta"]) == (it["text"], "The", it["meta"])
    # save: false keeps nothing
    before = call(studio.base, "GET", "/api/runs/gan/gallery").json()["items"]
    generate(studio.base, {"run": "gan", "seed": 5, "n": 2, "save": False})
    assert call(studio.base, "GET", "/api/runs/gan/gallery").json()["items"] == before


# -- OpenAI's client -----------------------------------------------------------------------
def test_openai_client_streams_what_genlab_sample_prints(studio, studio_runs):
    import openai

    client = openai.OpenAI(base_url=studio.base + "/v1", api_key="x", max_retries=0)
    assert "lstm" in [m.id for m in client.models.list()]
    prompt, k, temp, top_p, seed = "Once upon a time", 30, 0.8, 0.9, 7
    stream = client.completions.create(
        model="lstm",
        prompt=prompt,
        max_tokens=k,
        temperature=temp,
        top_p=top_p,
        seed=seed,
        stream=True,
    )
    chunks = [c.choices[0].text for c in stream if c.choices]
    assert len([c for c in chunks if c]) > 1
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "genlab",
            "sample",
            str(studio_runs / "lstm"),
            "--prompt",
            prompt,
            "--max-new-tokens",
            str(k),
            "--temperature",
            str(temp),
            "--top-p",
            str(top_p),
            "--seed",
            str(seed),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.startswith(prompt) and cli.stdout.endswith("\n")
    assert "".join(chunks) == cli.stdout[len(prompt) : -1]

    whole = client.completions.create(
        model="lstm", prompt=prompt, max_tokens=k, temperature=temp, top_p=top_p, seed=seed
    )
    assert whole.choices[0].text == "".join(chunks)
    assert whole.choices[0].finish_reason == "length"
    assert whole.usage.completion_tokens == k


def test_the_readmes_openai_example_runs_as_written(studio, capsys):
    """The README's OpenAI client block, with this server's address swapped in."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "openai" in b)
    code = block.replace("http://127.0.0.1:8000", studio.base)
    exec(compile(code, "README.md", "exec"), {})
    assert len(capsys.readouterr().out) > 20  # it streamed a story of up to 100 characters


def test_closing_a_streamed_completion_cancels_its_job(studio):
    conn = http.client.HTTPConnection(studio.base.split("//")[1], timeout=30)
    conn.request(
        "POST",
        "/v1/completions",
        json.dumps(
            {"model": "lstm", "prompt": "Once", "max_tokens": 2048, "stream": True, "seed": 1}
        ),
        {"Content-Type": "application/json"},
    )
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("content-type").startswith("text/event-stream")
    first = json.loads(r.readline().decode().removeprefix("data: "))
    conn.close()
    job = first["id"].removeprefix("cmpl-")
    deadline = time.monotonic() + 15
    while True:
        state = call(studio.base, "GET", f"/api/jobs/{job}").json()
        if state["done"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert state["done"] and state["cancelled"] and state["result"] is None, state


# -- human judgements ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def judged(studio_runs, tmp_path_factory):
    """A studio over a private copy of the runs: judgements start from none."""
    runs = S.copy_runs(studio_runs, tmp_path_factory.mktemp("judged") / "runs")
    s = start_studio([runs])
    yield s, runs
    s.stop()


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_blind_real_or_generated_answer_is_recorded_and_measured(judged):
    s, runs = judged
    trial = post(s.base, "/api/trials", {"kind": "real_or_generated", "run": "vae"})
    assert set(trial) == {"trial", "png"} and pixels(png_bytes(trial["png"])).shape == (8, 8)
    out = post(
        s.base, "/api/judgements", {"trial": trial["trial"], "answer": "real", "rater": "r1"}
    )
    assert out["recorded"] is True and out["truth"] in ("real", "generated")
    assert out["correct"] is (out["truth"] == "real")
    (rec,) = _lines(runs / "vae" / "judgements.jsonl")
    assert rec["kind"] == "real_or_generated" and rec["answer"] == "real"
    assert rec["truth"] == out["truth"] and rec["run"]["id"] == "vae"
    assert rec["rater"] == "r1"
    summary = call(s.base, "GET", "/api/judgements?runs=vae").json()
    assert summary["hype"]["vae"]["n"] == 1
    assert summary["hype"]["vae"]["error_rate"] == (0.0 if out["correct"] else 1.0)
    assert out["summary"] == summary
    # a trial is answered once
    again = call(s.base, "POST", "/api/judgements", {"trial": trial["trial"], "answer": "real"})
    assert again.status == 404 and "trial" in again.detail
    text = post(s.base, "/api/trials", {"kind": "real_or_generated", "run": "lstm"})
    assert set(text) == {"trial", "text"} and text["text"]


def test_a_pairwise_answer_is_stored_in_both_runs_and_fitted(judged):
    s, runs = judged
    trial = post(
        s.base,
        "/api/trials",
        {"kind": "pairwise", "runs": ["vae", "gan"], "seed": 5, "controls": {"label": 2}},
    )
    assert set(trial) == {"trial", "left", "right"}
    assert {"png"} == set(trial["left"]) == set(trial["right"])
    out = post(s.base, "/api/judgements", {"trial": trial["trial"], "answer": "left"})
    assert out["recorded"] is True and out["correct"] is None
    a = _lines(runs / "vae" / "judgements.jsonl")[-1]
    b = _lines(runs / "gan" / "judgements.jsonl")[-1]
    assert a == b and a["kind"] == "pairwise" and a["answer"] == "left"
    assert {r["id"] for r in a["runs"]} == {"vae", "gan"}
    assert a["winner"] == a["runs"][0]["path"]
    bt = call(s.base, "GET", "/api/judgements?runs=vae,gan").json()["bradley_terry"]
    assert bt["n"] == 1 and bt == out["summary"]["bradley_terry"]
    best, worst = bt["scores"]
    assert best["run"] == a["runs"][0]["id"] and (best["wins"], worst["losses"]) == (1, 1)
    assert best["score"] > worst["score"]
    mixed = call(s.base, "POST", "/api/trials", {"kind": "pairwise", "runs": ["vae", "lstm"]})
    assert mixed.status == 400 and "same kind" in mixed.detail


# -- a full queue ------------------------------------------------------------------------------
def test_a_full_queue_answers_429_with_retry_after(studio_runs):
    s = start_studio([studio_runs], "--queue", "1")
    try:
        body = {
            "run": "diffusion",
            "seed": 0,
            "n": 64,
            "save": False,
            "controls": {"sampling_steps": timesteps(studio_runs), "sampler": "ddpm"},
        }
        replies = [call(s.base, "POST", "/api/generate", body) for _ in range(5)]
        statuses = [r.status for r in replies]
        assert statuses[0] == 202 and 429 in statuses, statuses
        for r in replies:
            if r.status == 429:
                assert int(r.headers["retry-after"]) >= 1 and "busy" in r.detail
            else:
                post(s.base, f"/api/jobs/{r.json()['job']}/cancel", {})
    finally:
        s.stop()
