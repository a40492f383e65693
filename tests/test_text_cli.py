"""The text sampling controls where users touch them: `genlab sample RUN ... --out x.jsonl`.

One small GPT is trained on the embedded pydoc corpus (characters are its tokens) for long
enough that its next-character distribution is far from uniform; every flag is then given on
the command line and its effect read back from the samples written: each assertion would fail
if the flag were ignored. Where a flag's promise is about the model's probabilities (top-k,
min-p), the loaded model scores every emitted character again with a full forward pass."""

import json

import pytest
import torch

import genlab
from genlab.cli import main

M = 30  # new tokens a sample; 1 prompt token + 30 fit the context of 32: no window shifts
N = 8  # samples a call


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "gpt"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
        genlab.train(
            "gpt",
            out,
            preset="tiny",
            overrides=[
                "data.name=pydoc",
                "train.device=cpu",
                "model.n_embd=32",
                "model.block_size=32",
                "train.batch_size=16",
                "train.steps=250",
                "train.lr=1e-2",
                "train.eval_every=250",
                "train.sample_every=1000",
                "train.checkpoint_every=1000",
            ],
            progress=False,
        )
    return out


@pytest.fixture(scope="module")
def model(run):
    m = genlab.load(run, device="cpu").model
    assert m.tokenizer.kind == "char" and m.block_size >= M + 1
    return m


def sample(run, tmp_path, *flags, n=N, seed=0, m=M) -> list[str]:
    """The texts `genlab sample RUN -n n --seed seed --max-new-tokens m FLAGS --out` writes."""
    out = tmp_path / f"s{len(list(tmp_path.iterdir()))}.jsonl"
    argv = ["sample", str(run), "-n", str(n), "--seed", str(seed), "--max-new-tokens", str(m)]
    assert main([*argv, "--device", "cpu", *flags, "--out", str(out)]) == 0
    recs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["i"] for r in recs] == list(range(n)) and all(r["seed"] == seed for r in recs)
    return [r["text"] for r in recs]


def scores(model, text: str) -> list[tuple[float, list[float]]]:
    """For each character of a sample (which followed the prompt, an end-of-text): its
    probability at temperature 1 and the sorted probabilities of all tokens at that step."""
    if not text:  # the first draw was an end-of-text
        return []
    ids = model.encode_prompt("") + model.tokenizer.encode(text)
    with torch.no_grad():
        probs = model.logits(torch.tensor([ids[:-1]])).float().softmax(-1)[0]
    return [
        (probs[t, tok].item(), probs[t].sort(descending=True).values.tolist())
        for t, tok in enumerate(ids[1:])
    ]


def ranks(model, texts) -> list[int]:
    """How many tokens were more likely than each emitted one (0: it was the argmax)."""
    return [sum(q > p * (1 + 1e-4) for q in ps) for s in texts for p, ps in scores(model, s)]


def ratios(model, texts) -> list[float]:
    """Each emitted token's probability over the most likely token's at that step."""
    return [p / ps[0] for s in texts for p, ps in scores(model, s)]


def repeats(ids: list[int], k: int) -> int:
    """How many k-grams of ``ids`` are a repeat of an earlier one."""
    grams = [tuple(ids[i : i + k]) for i in range(len(ids) - k + 1)]
    return len(grams) - len(set(grams))


def test_top_k_one_is_greedy_and_top_k_keeps_only_the_k_most_likely(run, model, tmp_path):
    plain = sample(run, tmp_path)
    greedy = sample(run, tmp_path, "--temperature", "0")
    assert sample(run, tmp_path, "--top-k", "1") == greedy
    assert len(set(greedy)) == 1 and plain != greedy
    assert max(ranks(model, plain)) >= 3  # plain sampling does draw unlikely characters
    top3 = sample(run, tmp_path, "--top-k", "3")
    assert top3 != plain and max(ranks(model, top3)) <= 2


def test_min_p_drops_tokens_below_its_share_of_the_top_probability(run, model, tmp_path):
    plain = sample(run, tmp_path)
    greedy = sample(run, tmp_path, "--temperature", "0")
    assert min(ratios(model, plain)) < 0.3
    kept = sample(run, tmp_path, "--min-p", "0.3")
    assert kept != plain and min(ratios(model, kept)) >= 0.3 * (1 - 1e-4)
    assert sample(run, tmp_path, "--min-p", "1") == greedy


def test_repetition_penalty_makes_repeated_tokens_rarer(run, model, tmp_path):
    enc = model.tokenizer.encode

    def share(texts):  # the share of characters already seen earlier in their sample
        return sum(len(t) - len(set(t)) for t in texts) / sum(len(t) for t in texts)

    plain, penalized = (
        sample(run, tmp_path, "--repetition-penalty", p, n=16) for p in ("1.0", "10")
    )
    assert all(len(enc(t)) == len(t) for t in plain)  # characters are the tokens
    assert share(penalized) < 0.5 * share(plain)


@pytest.mark.parametrize("temperature", ["1", "0"])
def test_no_repeat_ngram_never_repeats_a_token_bigram(run, model, tmp_path, temperature):
    enc = model.tokenizer.encode
    free = sample(run, tmp_path, "--temperature", temperature, m=60)
    banned = sample(run, tmp_path, "--temperature", temperature, "--no-repeat-ngram", "2", m=60)
    assert sum(repeats(enc(t), 2) for t in free) > 0
    assert all(repeats(enc(t), 2) == 0 for t in banned)
    assert sum(map(len, banned)) >= 0.9 * sum(map(len, free))  # not just shorter


def test_stop_ends_each_sample_at_the_first_occurrence(run, tmp_path, capsys):
    free = sample(run, tmp_path, seed=3)
    # 2-character strings from the middle of two samples, which they may hold earlier too
    i, j = [k for k, t in enumerate(free) if len(t) >= M // 2 + 2][:2]
    stop, other = free[i][M // 2 : M // 2 + 2], free[j][M // 2 : M // 2 + 2]
    assert stop != other
    cut = [t[: t.find(stop)] if stop in t else t for t in free]
    stopped = sample(run, tmp_path, "--stop", stop, seed=3)
    assert stopped == cut and stopped[i] != free[i]  # the same draws, ended at the stop
    assert all(stop not in t for t in stopped)
    # several --stop: the earliest of them; a sample that holds neither runs on
    first = [min([t.find(s) for s in (stop, other) if s in t], default=len(t)) for t in free]
    both = sample(run, tmp_path, "--stop", stop, "--stop", other, seed=3)
    assert both == [t[:k] for t, k in zip(free, first)] and both != stopped
    # streamed to the terminal (no --out): the text stops there too
    capsys.readouterr()
    argv = ["sample", str(run), "--device", "cpu", "--seed", "3", "--max-new-tokens", str(M)]
    assert main(argv) == 0
    streamed = capsys.readouterr().out[:-1]  # (the sample's closing newline)
    assert len(streamed) >= M // 2 + 2
    stop = streamed[M // 2 : M // 2 + 2]
    assert main([*argv, "--stop", stop]) == 0
    assert capsys.readouterr().out == streamed[: streamed.find(stop)] + "\n"
    # a character that only begins a stop string waits, and is shown when the stop never comes
    assert main([*argv, "--stop", stop[0] + "\x00"]) == 0
    assert capsys.readouterr().out == streamed + "\n"


def test_no_repeat_ngram_of_one_runs_out_of_tokens_without_failing(run, model, tmp_path):
    # 1-grams: every character at most once; past the vocabulary a sample has nothing left
    # to draw and ends there (the prompt's end-of-text counts as used)
    m = model.vocab_size + 20
    for temperature in ("1", "0"):
        texts = sample(
            run, tmp_path, "--temperature", temperature, "--no-repeat-ngram", "1", n=2, m=m
        )
        assert all(len(t) == len(set(t)) == model.vocab_size - 1 for t in texts)


@pytest.mark.parametrize(
    "flag,value,name",
    [
        ("--top-p", "1.5", "top_p"),
        ("--top-k", "-1", "top_k"),
        ("--min-p", "2", "min_p"),
        ("--repetition-penalty", "0.5", "repetition_penalty"),
        ("--no-repeat-ngram", "-2", "no_repeat_ngram"),
        ("--temperature", "-1", "temperature"),
    ],
)
def test_an_out_of_range_control_is_one_line_and_exit_2(run, tmp_path, capsys, flag, value, name):
    out = tmp_path / "x.jsonl"
    assert main(["sample", str(run), "--device", "cpu", flag, value, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("genlab: error:")
    assert name in err and value in err and "Traceback" not in err
    assert not out.exists()
