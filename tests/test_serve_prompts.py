"""The studio and its OpenAI-compatible image route over a run that draws what a prompt says
(a tiny txt2img run on the embedded captioned shapes), against a real `genlab serve` with a
token: OpenAI's own client gets the pixels `genlab sample` writes, with the prompt in each
PNG; bad requests get one line in OpenAI's error shape; the page's API streams previews,
keeps the prompt in every output, sweeps guidance in a strip, and judges prompt runs on
held-out captions. Plain stdlib HTTP (benchmarks/_studio.py) beside the openai client.
"""

from __future__ import annotations

import base64
import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import start_studio
from PIL import Image

from genlab.cli import main
from genlab.outputs.provenance import read_provenance
from genlab.registry import get

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import _studio as S  # noqa: E402

TOKEN = "t2i-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROMPT = "a large red circle, top left"


@pytest.fixture(scope="module")
def studio(prompt_runs):
    """`genlab serve` over the prompt runs, guarded by a token as on a network."""
    s = start_studio([prompt_runs], "--token", TOKEN)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(studio):
    import openai

    return openai.OpenAI(base_url=studio.base + "/v1", api_key=TOKEN, max_retries=0)


def post(base: str, path: str, body, expect: int = 200, headers=None) -> dict:
    r = S.request(base, "POST", path, body, headers={**AUTH, **(headers or {})})
    assert r.status == expect, (r.status, r.body[:500])
    return r.json()


def generate(base: str, body: dict) -> list[tuple[str, object]]:
    job = post(base, "/api/generate", body, expect=202)
    with S.EventStream(base, job["events"], headers=AUTH) as stream:
        evs = list(stream)
    assert evs[-1] == ("done", {}), evs[-3:]
    return evs


def result(evs) -> dict:
    assert "result" in [k for k, _ in evs], [e for e in evs if e[0] == "error"]
    return next(d for k, d in evs if k == "result")


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB")).copy()


def uri_bytes(uri: str) -> bytes:
    return base64.b64decode(uri.split(",", 1)[1])


def refusal(base: str, body: dict, status: int = 400) -> str:
    """The one line a refused image request gets, in OpenAI's error shape."""
    r = S.request(base, "POST", "/v1/images/generations", body, headers=AUTH)
    assert r.status == status, (r.status, r.body[:300])
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["message"] == r.json()["detail"]
    assert err["message"] and "\n" not in err["message"]
    return err["message"]


# -- OpenAI's client ----------------------------------------------------------------------
def test_openai_client_gets_the_pixels_genlab_sample_writes(client, prompt_runs, tmp_path):
    assert "t2i" in [m.id for m in client.models.list()]
    resp = client.images.generate(
        model="t2i",
        prompt=PROMPT,
        n=2,
        response_format="b64_json",
        extra_body={"seed": 3, "sampling_steps": 4},
    )
    assert isinstance(resp.created, int) and len(resp.data) == 2
    out = tmp_path / "cli"
    argv = [
        "sample",
        str(prompt_runs / "t2i"),
        "--prompt",
        PROMPT,
        "-n",
        "2",
        "--seed",
        "3",
        "--sampling-steps",
        "4",
        "--out",
        f"{out}/",
    ]
    assert main(argv) == 0
    for i, image in enumerate(resp.data):
        assert image.revised_prompt == PROMPT  # short enough: read whole
        png = base64.b64decode(image.b64_json)
        written = (out / f"{i:06d}.png").read_bytes()
        assert pixels(png).shape == (16, 16, 3)
        assert np.array_equal(pixels(png), pixels(written)), i
        meta = read_provenance(png)
        assert meta["controls"]["prompt"] == PROMPT and meta["run"] == "t2i"
        assert meta["seed"] == 3 and meta["index"] == i and meta["controls"]["sampling_steps"] == 4
        assert meta["controls"] == read_provenance(written)["controls"]


def test_the_genlab_controls_and_a_negative_prompt_pass_through(client, prompt_runs, tmp_path):
    extra = {
        "seed": 5,
        "sampling_steps": 3,
        "guidance": 2.5,
        "sampler": "ddim",
        "negative_prompt": "a blue square",
    }
    resp = client.images.generate(
        model="t2i", prompt="a small green triangle", n=1, size="16x16", extra_body=extra
    )
    meta = read_provenance(base64.b64decode(resp.data[0].b64_json))
    assert {k: meta["controls"][k] for k in extra if k != "seed"} == {
        k: v for k, v in extra.items() if k != "seed"
    }
    assert resp.model_extra.get("seed") == 5  # genlab says which seed it used
    argv = [
        "sample",
        str(prompt_runs / "t2i"),
        "--prompt",
        "a small green triangle",
        "-n",
        "1",
        "--seed",
        "5",
        "--sampling-steps",
        "3",
        "--guidance",
        "2.5",
        "--sampler",
        "ddim",
        "--negative-prompt",
        "a blue square",
        "--out",
        f"{tmp_path}/",
    ]
    assert main(argv) == 0
    same = pixels((tmp_path / "000000.png").read_bytes())
    assert np.array_equal(pixels(base64.b64decode(resp.data[0].b64_json)), same)


def test_a_prompt_longer_than_the_encoder_reads_comes_back_cut(client):
    long = ", ".join(["a large red circle, top left"] * 6)
    resp = client.images.generate(
        model="t2i", prompt=long, n=1, extra_body={"seed": 0, "sampling_steps": 2}
    )
    read = resp.data[0].revised_prompt
    assert read and long.startswith(read) and len(read) < len(long)
    assert read_provenance(base64.b64decode(resp.data[0].b64_json))["controls"]["prompt"] == long


def test_bad_image_requests_get_one_line_in_openais_shape(studio, client):
    import openai

    base = studio.base
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(model="t2i", prompt="", n=1)
    assert e.value.status_code == 400 and "empty" in e.value.body["message"]
    assert "\n" not in e.value.body["message"]
    assert "empty" in refusal(base, {"model": "t2i", "prompt": "   "})
    assert "16x16" in refusal(base, {"model": "t2i", "prompt": PROMPT, "size": "1024x1024"})
    line = refusal(base, {"model": "vae", "prompt": PROMPT})
    assert "takes no prompt" in line and "vae" in line
    assert "url" in refusal(base, {"model": "t2i", "prompt": PROMPT, "response_format": "url"})
    assert refusal(base, {"model": "t2i", "prompt": PROMPT, "n": 17}).startswith("n:")
    assert "quality" in refusal(base, {"model": "t2i", "prompt": PROMPT, "quality": "hd"})
    assert "timesteps" in refusal(base, {"model": "t2i", "prompt": PROMPT, "sampling_steps": 51})
    assert "nope" in refusal(base, {"model": "nope", "prompt": PROMPT}, status=404)


def test_the_image_route_has_the_guard_of_every_other(studio):
    body = {"model": "t2i", "prompt": PROMPT, "seed": 0, "sampling_steps": 1}
    path = "/v1/images/generations"
    assert S.request(studio.base, "POST", path, body).status == 401  # no token
    wrong = {"Authorization": "Bearer " + "z" * 32}
    assert S.request(studio.base, "POST", path, body, headers=wrong).status == 401
    evil = {**AUTH, "Origin": "http://evil.example"}
    assert S.request(studio.base, "POST", path, body, headers=evil).status == 403
    other_host = {**AUTH, "Host": "evil.example"}
    assert S.request(studio.base, "POST", path, body, headers=other_host).status == 403
    assert S.request(studio.base, "POST", path, body, headers=AUTH).status == 200


def test_the_readmes_image_example_runs_as_written(client, monkeypatch, tmp_path):
    """The README's images.generate block, with the client of the block before it (here
    with this server's address and token)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "images." in b)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {"client": client})
    (png,) = tmp_path.glob("*.png")
    assert read_provenance(png.read_bytes())["controls"]["prompt"]


# -- the studio's own API -------------------------------------------------------------------
def test_a_prompt_run_is_described_with_its_prompt_and_guidance(studio):
    r = S.request(studio.base, "GET", "/api/runs", headers=AUTH)
    runs = {d["id"]: d for d in r.json()["runs"]}
    t2i, vae = runs["t2i"], runs["vae"]
    assert t2i["takes_prompt"] is True and vae["takes_prompt"] is False
    assert set(t2i["controls"]) == set(get("txt2img").controls)  # guidance too: it steers
    assert t2i["controls"]["prompt"]["type"] == "str" and t2i["controls"]["prompt"]["many"]
    assert t2i["shape"] == [3, 16, 16] and not t2i["conditional"]


def test_the_studio_streams_previews_and_keeps_each_samples_prompt(studio, prompt_runs):
    prompts = [PROMPT, "a small blue square, bottom right"]
    body = {"run": "t2i", "seed": 2, "n": 4, "controls": {"prompt": prompts, "sampling_steps": 50}}
    evs = generate(studio.base, body)
    kinds = [k for k, _ in evs]
    assert "preview" in kinds and kinds.index("preview") < kinds.index("result")
    res = result(evs)
    for it in res["items"]:
        mine = prompts[it["i"] % 2]
        assert it["prompt"] == it["prompt_read"] == mine
        assert it["meta"]["controls"]["prompt"] == mine  # each PNG: its own prompt
        assert it["meta"]["controls"]["guidance"] == get("txt2img").default_guidance
        assert read_provenance(uri_bytes(it["png"]))["controls"]["prompt"] == mine
        kept = read_provenance((prompt_runs / "t2i" / "studio" / it["file"]).read_bytes())
        assert kept["controls"]["prompt"] == mine  # the gallery file too
    assert res["meta"]["controls"]["prompt"] == prompts
    gallery = S.request(studio.base, "GET", "/api/runs/t2i/gallery", headers=AUTH).json()
    assert gallery["items"][0]["meta"]["controls"]["prompt"] in prompts


def test_the_studio_refuses_an_empty_or_missing_prompt_in_one_line(studio):
    for controls in ({"prompt": ""}, {}, {"prompt": [PROMPT, " "]}):
        r = S.request(
            studio.base,
            "POST",
            "/api/generate",
            {"run": "t2i", "n": 2, "controls": controls},
            headers=AUTH,
        )
        assert r.status == 400 and "prompt" in r.detail and "\n" not in r.detail, r.body
    r = S.request(
        studio.base,
        "POST",
        "/api/generate",
        {"run": "t2i", "n": 1, "controls": {"prompt": [PROMPT] * 2}},
        headers=AUTH,
    )
    assert r.status == 400 and "2 prompts for 1 samples" in r.detail


def test_a_guidance_strip_of_a_prompt_run_redraws_the_sample_with_its_prompt(studio):
    prompts = [PROMPT, "a small blue square, bottom right"]
    batch = {
        "run": "t2i",
        "seed": 4,
        "n": 2,
        "save": False,
        "controls": {"prompt": prompts, "sampling_steps": 5},
    }
    plain = result(generate(studio.base, batch))["items"][1]
    strip = {**batch, "mode": "strip", "index": 1, "vary": {"name": "guidance", "values": [1, 4]}}
    items = result(generate(studio.base, strip))["items"]
    assert [it["value"] for it in items] == [1, 4]
    assert all(it["prompt"] == prompts[1] for it in items)
    assert np.array_equal(pixels(uri_bytes(items[1]["png"])), pixels(uri_bytes(plain["png"])))


def test_a_blind_trial_of_a_prompt_run_shows_a_held_out_caption(studio):
    t = post(studio.base, "/api/trials", {"kind": "real_or_generated", "run": "t2i"})
    assert t["png"].startswith("data:image/png;base64,")
    assert isinstance(t["prompt"], str) and t["prompt"].strip()
    rec = post(studio.base, "/api/judgements", {"trial": t["trial"], "answer": "real"})
    assert rec["recorded"] and rec["truth"] in ("real", "generated")
    r = S.request(
        studio.base,
        "POST",
        "/api/trials",
        {"kind": "pairwise", "runs": ["t2i", "vae"]},
        headers=AUTH,
    )
    assert r.status == 400 and "prompt" in r.detail
