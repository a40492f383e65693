"""txt2img: the prompt reaches the U-Net (and only the prompt's real tokens do), caption
dropout trains the unconditional model, guidance steers from the negative prompt, bad
prompts and caption-less data are refused in one line, and every PNG says its prompt."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.cli import main
from genlab.data import DataInfo
from genlab.data.tokenizers import build_tokenizer
from genlab.errors import ConfigError
from genlab.models.diffusion import TextDiffusion, TextDiffusionConfig
from genlab.models.diffusion.text_encoder import PAD

CAPTIONS = [
    "a small red circle, top left",
    "a large blue square, bottom right",
    "woman surfing, medium-dark skin tone, twitter style",
]


def model(**kw) -> TextDiffusion:
    tok = build_tokenizer("bpe", CAPTIONS * 20, 300)
    cfg = dict(width=8, blocks=1, timesteps=50, text_width=16, text_layers=1, text_heads=2)
    cfg.update(kw)
    torch.manual_seed(0)
    m = TextDiffusion(
        TextDiffusionConfig(**cfg), DataInfo.images((3, 16, 16), vocab_size=tok.vocab_size)
    )
    m.tokenizer = tok
    for p in m.parameters():  # a non-zero network: zero-initialised outputs hide the prompt
        p.data.normal_(0, 0.1)
    return m.eval()


def test_the_prompt_changes_the_prediction_and_padding_does_not():
    m = model()
    x, t = torch.randn(2, 3, 16, 16), torch.full((2,), 25)
    ids = m.encode_prompts(CAPTIONS[:2])
    a = m.net(x, t, **m.context(ids))
    b = m.net(x, t, **m.context(m.encode_prompts(CAPTIONS[1:3])))
    assert not torch.allclose(a[0], b[0], atol=1e-4)  # another prompt, another prediction
    # the same prompts with more padding after them: the same prediction
    longer = torch.cat([ids, torch.full((2, 5), PAD)], dim=1)
    m.text.context = longer.shape[1]
    m.text.pos.data = torch.cat([m.text.pos.data, torch.zeros(1, 5, m.text.pos.shape[2])], 1)
    c = m.net(x, t, **m.context(longer))
    torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-5)


def test_caption_dropout_trains_the_empty_prompt_and_validation_keeps_every_caption():
    m = model(caption_dropout=0.5)
    seen = []
    m.text.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].clone()))
    ids = m.encode_prompts(CAPTIONS[:1] * 400)
    batch = {"x": torch.rand(400, 3, 16, 16) * 2 - 1, "text": ids}
    m.train()
    m.loss(batch)
    empty = (seen[-1] == PAD).all(1).float().mean().item()
    assert 0.4 < empty < 0.6
    m.eval()
    m.loss(batch)
    assert not (seen[-1] == PAD).all(1).any()


def test_guidance_steers_from_the_negative_prompt():
    m = model()
    x, t = torch.randn(2, 3, 16, 16), torch.full((2,), 30)
    cond, null = m.prompt_condition(2, "a small red circle, top left", "top left")
    c, u = m.net(x, t, **cond), m.net(x, t, **null)
    for w in (0.0, 1.0, 4.0):
        x0, eps = m.denoiser(cond, null, w)(x, t)
        want = m.schedule.split(u + w * (c - u), x, t, "v")
        torch.testing.assert_close(x0, want[0], rtol=1e-4, atol=1e-5)
    # no negative prompt: the empty prompt is what guidance steers from
    _, empty = m.prompt_condition(2, "a small red circle, top left", None)
    assert empty["context_mask"][:, 0].all() and not empty["context_mask"][:, 1:].any()


def test_bad_prompts(capsys):
    m = model()
    with pytest.raises(ConfigError, match="empty prompt"):
        m.sample(1, prompt="   ", sampling_steps=2)
    with pytest.raises(ConfigError, match="give one"):
        m.sample(1, sampling_steps=2)
    long = ", ".join(["a small red circle"] * 20)
    x = m.sample(1, prompt=long, sampling_steps=2)
    assert x.shape == (1, 3, 16, 16)
    assert "this model reads 32" in capsys.readouterr().err  # cut, with a warning


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("t2i") / "run"
    assert main(["train", "txt2img", "--preset", "tiny", "--out", str(out), "train.steps=10"]) == 0
    return out


def test_sample_writes_the_prompt_into_every_png(tiny_run, tmp_path):
    folder = tmp_path / "apples"
    args = ["sample", str(tiny_run), "--prompt", "a large red circle, top left", "-n", "3"]
    assert main([*args, "--sampling-steps", "3", "--out", f"{folder}/"]) == 0
    for i in range(3):
        meta = json.loads(Image.open(folder / f"{i:06d}.png").text["genlab"])
        assert meta["controls"]["prompt"] == "a large red circle, top left"
        assert meta["index"] == i and meta["seed"] == 0 and meta["weights_sha256"]
    # the same prompt, seed and controls as a grid: the same pixels
    assert main([*args, "--sampling-steps", "3", "--out", str(tmp_path / "g.npz")]) == 0
    arrays = np.load(tmp_path / "g.npz")["x"]
    assert np.array_equal(arrays[1], np.asarray(Image.open(folder / "000001.png")))


def test_prompts_file_gives_a_row_a_prompt(tiny_run, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a large red circle, top left\n\na small blue square, bottom right\n")
    out = tmp_path / "rows.png"
    cmd = ["sample", str(tiny_run), "--prompts", str(prompts), "-n", "4", "--out", str(out)]
    assert main([*cmd, "--sampling-steps", "2"]) == 0
    im = Image.open(out)
    meta = json.loads(im.text["genlab"])
    assert meta["controls"]["prompt"] == [
        "a large red circle, top left",
        "a small blue square, bottom right",
    ]
    cell = 48 + 2  # 16x16 images shown at 48 pixels, 2 between
    assert im.size == (4 * cell + 2, 2 * cell + 2)


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--prompt", ""], "empty prompt"),
        ([], "draws what a prompt says"),
        (["--label", "1", "--prompt", "x"], "does not take --label"),
        (["--prompts", "missing.txt"], "no such file"),
    ],
)
def test_bad_sample_requests_are_one_line(tiny_run, tmp_path, capsys, flags, says, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "keep.png"
    out.write_bytes(b"precious")
    assert main(["sample", str(tiny_run), *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
    assert out.read_bytes() == b"precious"  # nothing on disk lost


def test_prompt_on_a_class_conditional_run_is_one_line(tmp_path, capsys):
    run = tmp_path / "cond"
    assert main(["train", "diffusion", "--preset", "tiny", "--out", str(run),
                 "model.conditional=true", "train.steps=2"]) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "--prompt", "a cat", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--label" in err[0] and "txt2img" in err[0]


def test_a_caption_less_folder_is_refused_in_one_line(tmp_path, capsys):
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(20):
        Image.fromarray(np.full((16, 16, 3), i * 10, np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "run"
    assert main(["train", "txt2img", "--preset", "tiny", "--out", str(out),
                 f"data.name={folder}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no captions" in err[0] and "metadata.jsonl" in err[0], err
    assert not (out / "config.json").exists()
