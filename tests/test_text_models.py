"""The GPT and the RNN: causality, tied weights, the KV cache and the RNN state giving exactly
what recomputation gives, every generation control, streaming, token windows, fine-tuning
from another run, and bad text input from the command line."""

import json
import re
from pathlib import Path

import pytest
import torch

import genlab
from genlab.cli import main
from genlab.data import TokenData
from genlab.data.fetch import cache_dir
from genlab.data.tokenizers import build_tokenizer
from genlab.models.ar.generate import filter_logits, generate
from genlab.models.ar.gpt import GPT, GPTConfig
from genlab.models.ar.rnn import RNN, RNNConfig
from genlab.models.base import DataInfo
from genlab.registry import get, names
from genlab.rundir import RunConfig

VOCAB = 40
REPO = Path(__file__).resolve().parents[1]


def _gpt(block=16, **kw):
    torch.manual_seed(0)
    return GPT(
        GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=block, **kw), DataInfo.text(VOCAB)
    ).eval()


def _rnn(cell="lstm"):
    torch.manual_seed(0)
    return RNN(RNNConfig(cell=cell, hidden=32, layers=2), DataInfo.text(VOCAB)).eval()


def _prompt(n=5, seed=1):
    return torch.randint(0, VOCAB, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def test_gpt_is_causal_and_ties_its_output_to_the_embedding():
    model = _gpt()
    x = torch.randint(0, VOCAB, (2, 12))
    y = x.clone()
    y[:, 8:] = (y[:, 8:] + 1) % VOCAB  # change the future only
    a, b = model.logits(x), model.logits(y)
    assert torch.allclose(a[:, :8], b[:, :8], atol=1e-6)
    assert not torch.allclose(a[:, 8:], b[:, 8:])
    assert sum(p is model.wte.weight for p in model.parameters()) == 1  # counted once
    assert "lm_head" not in dict(model.named_parameters())


@pytest.mark.parametrize("make", [lambda: _gpt(block=16), _rnn, lambda: _rnn("gru")])
def test_cached_generation_gives_exactly_the_tokens_of_recomputation(make):
    # 5 + 40 tokens overflow the GPT's 16-token context twice: the window moves the same
    # way in both paths
    model = make()
    prompts = [_prompt(5, 1), _prompt(5, 2)]
    cached = generate(model, prompts, max_new_tokens=40, temperature=0)
    fresh = generate(model, prompts, max_new_tokens=40, temperature=0, use_cache=False)
    assert cached == fresh and len(cached[0]) == 40


def test_gpt_cache_logits_match_the_full_forward():
    model = _gpt(block=32)
    x = torch.randint(0, VOCAB, (2, 20))
    full = model.logits(x)
    logits, state = model.step(x[:, :10], None)
    assert torch.allclose(logits, full[:, 9], atol=1e-5)
    for t in range(10, 20):
        logits, state = model.step(x[:, t : t + 1], state)
        assert torch.allclose(logits, full[:, t], atol=1e-5)


def test_filters_keep_the_most_likely_token_and_cut_the_tail():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    keep = lambda out: (out > float("-inf")).squeeze(0).tolist()  # noqa: E731
    assert keep(filter_logits(logits, top_k=2)) == [True, True, False, False]
    assert keep(filter_logits(logits, top_p=0.7)) == [True, True, False, False]
    assert keep(filter_logits(logits, top_p=0.01)) == [True, False, False, False]
    assert keep(filter_logits(logits, min_p=0.5)) == [True, True, False, False]  # 0.3 >= 0.25


def test_greedy_limits_of_the_sampling_controls():
    model = _gpt()
    p = [_prompt()]
    greedy = generate(model, p, max_new_tokens=20, temperature=0)
    for kw in ({"top_k": 1}, {"top_p": 1e-6}, {"min_p": 1.0}):
        g = torch.Generator().manual_seed(0)
        assert generate(model, p, max_new_tokens=20, generator=g, **kw) == greedy, kw


def test_no_repeat_ngram_and_repetition_penalty():
    model = _gpt()
    p = [_prompt()]
    out = generate(model, p, max_new_tokens=60, temperature=0, no_repeat_ngram=2)[0]
    seq = p[0] + out
    bigrams = list(zip(seq, seq[1:]))
    assert len(bigrams) == len(set(bigrams))
    plain = generate(model, p, max_new_tokens=60, temperature=0)[0]
    assert len(set(plain)) < len(set(plain + [-1]))  # a small greedy model repeats itself
    penalized = generate(model, p, max_new_tokens=60, temperature=0, repetition_penalty=5.0)[0]
    assert len(set(penalized)) > len(set(plain))


def test_sequences_end_at_end_of_text_and_callbacks_stream_every_token():
    model = _gpt()
    first = generate(model, [_prompt()], max_new_tokens=30, repetition_penalty=3.0, temperature=0)[
        0
    ]
    k = next(i for i in range(2, 30) if first[i] not in first[:i])
    eot = first[k]  # pretend this greedy token is the end-of-text
    seen = []
    out = generate(
        model,
        [_prompt()],
        max_new_tokens=30,
        repetition_penalty=3.0,
        temperature=0,
        eot_id=eot,
        on_token=lambda i, t: seen.append(t),
    )[0]
    assert out == first[:k] == seen


def _char_model(family="gpt"):
    text = "the cat sat on the mat. the dog sat on the log.\n"
    tok = build_tokenizer("char", [text])
    torch.manual_seed(0)
    if family == "gpt":
        cfg = GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=32)
        model = GPT(cfg, DataInfo.text(tok.vocab_size))
    else:
        model = RNN(RNNConfig(hidden=16, layers=1), DataInfo.text(tok.vocab_size))
    model.tokenizer = tok
    return model.eval(), tok


def test_stop_strings_cut_the_text_and_streaming_matches_the_result():
    model, tok = _char_model()
    g = torch.Generator().manual_seed(0)
    full = model.sample(3, generator=g, prompt="the ", max_new_tokens=80)
    stop = next(c for c in "atoe" if all(c in t for t in full))
    pieces: dict[int, str] = {}
    g = torch.Generator().manual_seed(0)
    cut = model.sample(
        3,
        generator=g,
        prompt="the ",
        max_new_tokens=80,
        stop=[stop],
        on_text=lambda i, s: pieces.__setitem__(i, pieces.get(i, "") + s),
    )
    assert cut == [t[: t.index(stop)] for t in full]
    assert [pieces.get(i, "") for i in range(3)] == cut


def test_sampling_is_seeded_and_a_prompt_outside_the_vocabulary_is_an_error():
    model, _ = _char_model("rnn")
    a = model.sample(2, generator=torch.Generator().manual_seed(5), prompt="the")
    b = model.sample(2, generator=torch.Generator().manual_seed(5), prompt="the")
    assert a == b
    with pytest.raises(genlab.errors.DataError, match="'Z'"):
        model.sample(1, prompt="Zebra")


def test_token_windows_train_everywhere_and_validate_every_token_once():
    data = TokenData(torch.arange(100), block=8)
    assert len(data) == 92  # start positions of a full 9-token window
    b = data.batch(torch.tensor([0, 91]))
    assert b["x"].tolist() == [list(range(0, 9)), list(range(91, 100))]
    predicted = []
    for batch in data.batches(4):
        x = batch["x"]
        assert batch["count"] == x.size(0) * (x.size(1) - 1)
        predicted += x[:, 1:].reshape(-1).tolist()
    assert predicted == list(range(1, 100))  # each target once, the last window shorter


def test_gpt_learns_a_repeating_text():
    model, tok = _char_model()
    model.train()
    ids = tok.encode("the cat sat on the mat. " * 8)
    x = torch.tensor([ids[i : i + 33] for i in range(0, 150, 5)])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = model.loss({"x": x})["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2
    model.eval()
    out = model.sample(1, prompt="the cat ", temperature=0, max_new_tokens=16)[0]
    assert out.startswith("sat on the mat.")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "gpt"
    genlab.train("gpt", out, preset="tiny", overrides=["data.name=pydoc"], progress=False)
    return out


def test_a_text_run_keeps_its_tokenizer_and_logs_tokens(pretrained):
    assert (pretrained / "tokenizer.json").is_file()
    recs = [json.loads(line) for line in (pretrained / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in recs if "loss" in r]
    val = [r for r in recs if "val_loss" in r]
    assert train[-1]["tokens"] == 20 * 8 * 16  # steps x batch x block
    assert val and "non-overlapping windows of 16" in val[-1]["val_protocol"]
    assert list((pretrained / "samples").glob("*.txt"))


def test_init_from_starts_from_the_weights_and_tokenizer_of_another_run(pretrained, tmp_path):
    corpus = tmp_path / "tales.txt"
    corpus.write_text("Once there was a king who had three daughters.\n" * 40)
    out = tmp_path / "tuned"
    # lr 0: the weights stay where --init-from put them
    genlab.train(
        "gpt",
        out,
        preset="tiny",
        overrides=[f"data.name={corpus}", "train.lr=0", "train.ema_decay=0"],
        progress=False,
        init_from=pretrained,
    )
    assert (out / "tokenizer.json").read_bytes() == (pretrained / "tokenizer.json").read_bytes()
    assert json.loads((out / "config.json").read_text())["init_from"] == str(pretrained)
    a = genlab.load(pretrained, weights="ema").model.state_dict()
    b = genlab.load(out).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "make, args, message",
    [
        (lambda p: p.write_bytes(b""), [], "empty"),
        (lambda p: p.write_bytes(b"caf\xe9 au lait\n" * 50), [], "UTF-8"),
    ],
)
def test_bad_corpora_are_one_line_and_exit_2(tmp_path, capsys, make, args, message):
    corpus = tmp_path / "corpus.txt"
    make(corpus)
    code = main(["train", "gpt", "--data", str(corpus), "--out", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not (tmp_path / "r").exists()


def test_bad_text_sampling_is_one_line_and_exit_2(pretrained, tmp_path, capsys):
    for args in (
        ["--prompt", "\u2603 snowman"],  # not a character of the corpus
        ["--label", "3"],  # an image control
        ["--out", str(tmp_path / "s.png")],
        ["--top-p", "1.5"],
    ):
        code = main(["sample", str(pretrained), *args])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, (args, err)
    assert not (tmp_path / "s.png").exists()


def test_sample_writes_txt_and_jsonl(pretrained, tmp_path, capsys):
    assert (
        main(
            [
                "sample",
                str(pretrained),
                "--prompt",
                "The ",
                "-n",
                "3",
                "--out",
                str(tmp_path / "s.jsonl"),
            ]
        )
        == 0
    )
    lines = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["i"] for r in lines] == [0, 1, 2] and all(r["prompt"] == "The " for r in lines)
    assert (
        main(["sample", str(pretrained), "--prompt", "The ", "--out", str(tmp_path / "s.txt")]) == 0
    )
    assert (tmp_path / "s.txt").read_text().count("The ") >= 5
    assert main(["sample", str(pretrained), "--prompt", "The ", "--max-new-tokens", "20"]) == 0
    assert capsys.readouterr().out.startswith("The ")


def test_eval_of_a_text_run_records_likelihood_and_sample_metrics(pretrained, capsys):
    assert main(["eval", str(pretrained), "--n", "4", "--max-new-tokens", "30"]) == 0
    rec = json.loads((pretrained / "eval" / "metrics.json").read_text())
    assert rec["bits_per_char"] == pytest.approx(rec["val_loss"] / 0.6931471805599453, rel=1e-6)
    for key in ("distinct_2", "self_bleu", "novelty_4", "copied_span_max", "repetition_rate"):
        assert key in rec and key in rec["reference"]
    assert rec["protocol"]["n_generated"] == 4
    assert re.search(r"validation bits/character\s+\d", capsys.readouterr().out)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "digits"], "not a text data set"),  # an image set for a text family
        (["--data", "pydoc", "model.n_head=3"], "divide evenly"),
        (["--data", "pydoc", "--init-from", "/no/such/run"], "not a genlab run"),
    ],
)
def test_bad_text_training_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    code = main(["train", "gpt", "--out", str(tmp_path / "r"), "--quiet", *args])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("family", ["gpt", "rnn"])
def test_tiny_preset_with_no_data_trains_on_the_embedded_grimms(tmp_path, capsys, family):
    # conftest: an empty cache and no mirror; nothing may be fetched
    out = tmp_path / "r"
    code = main(["train", family, "--preset", "tiny", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["data"]["name"] == "grimms"
    assert (out / "model.safetensors").is_file()
    assert not any(cache_dir().rglob("*"))


def test_each_family_defaults_to_data_of_its_kind_and_presets_still_choose():
    for family in names():
        expected = "grimms" if get(family).data_kind == "text" else "digits"
        if get(family).takes_prompt:  # captioned images, drawn by genlab's code
            expected = "shapes"
        assert RunConfig.new(family, "tiny").data.name == expected, family
    assert RunConfig.new("gpt").data.name == "tinyshakespeare"  # the presets that name data
    assert RunConfig.new("gpt", "cpu").data.name == "tinyshakespeare"
    assert RunConfig.new("gpt", "stories").data.name == "tinystories-2mb"
    assert RunConfig.new("rnn").data.name == "tinyshakespeare"
    assert RunConfig.new("rnn", "tiny", ["data.name=pydoc"]).data.name == "pydoc"


def test_init_from_a_run_of_another_family_is_refused(pretrained, tmp_path, capsys):
    code = main(
        [
            "train",
            "rnn",
            "--data",
            "pydoc",
            "--out",
            str(tmp_path / "r"),
            "--quiet",
            "--init-from",
            str(pretrained),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "holds a gpt run" in err and not (tmp_path / "r").exists()


def test_python_text_example_from_readme(pretrained):
    """The README's Python block on text, run as written (with the run path swapped in)."""
    readme = (REPO / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "runs/stories" in b)
    code = "import genlab\n" + block.replace('"runs/stories"', repr(str(pretrained)))
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert len(scope["stories"]) == 3 and all(isinstance(t, str) for t in scope["stories"])
