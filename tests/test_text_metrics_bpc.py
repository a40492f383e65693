"""Bits per character of a run whose tokens are longer than one character, checked against a
figure worked by hand: metrics/text_protocol.likelihood divides the validation NLL (in bits)
by the characters the PREDICTED tokens spell (not the number of tokens, not the first token,
which nothing predicts; an end-of-text counts as one character)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from genlab.data import DataInfo
from genlab.data.text import EOT
from genlab.data.tokenizers import Tokenizer, build_tokenizer
from genlab.metrics.text_protocol import likelihood
from genlab.models.ar.lm import LanguageModel


class Pieces(Tokenizer):
    """A fixed vocabulary of multi-character pieces, matched longest first (id 0: EOT)."""

    kind = "bpe"

    def __init__(self, pieces):
        self.pieces = [EOT, *pieces]
        self.vocab_size, self.eot_id = len(self.pieces), 0

    def _encode_many(self, texts):
        out = []
        for text in texts:
            ids, i = [], 0
            while i < len(text):
                j = max(
                    (j for j, p in enumerate(self.pieces) if text.startswith(p, i)),
                    key=lambda j: len(self.pieces[j]),
                )
                ids.append(j)
                i += len(self.pieces[j])
            out.append(np.array(ids, dtype=np.int64))
        return out

    def _decode(self, ids):
        return "".join(self.pieces[i] for i in ids)


class Unigram(LanguageModel):
    """Every next token has the same fixed probabilities, whatever came before."""

    family = "unigram"

    def __init__(self, probs):
        super().__init__(SimpleNamespace(), DataInfo.text(len(probs)))
        self.probs = list(probs)
        self.logp = torch.nn.Parameter(torch.tensor(probs, dtype=torch.float64).log())

    def logits(self, idx):
        return self.logp.float().expand(*idx.shape, -1)


class ExactUnigram(Unigram):
    """The same model, its NLL summed in float64 from the targets of the windows it is given
    (the real evaluate works in float32, good to ~1e-7)."""

    def evaluate(self, batches, progress=None):
        total, count = 0.0, 0
        for batch in batches:
            targets = batch["x"][:, 1:].reshape(-1).tolist()
            total += sum(-math.log(self.probs[t]) for t in targets)
            count += len(targets)
        return {"nll_sum": total, "tokens": count}


def _run(model, block):
    return SimpleNamespace(
        model=model, config=SimpleNamespace(model=SimpleNamespace(block_size=block))
    )


# Worked by hand. Vocabulary: 0 EOT, 1 "the ", 2 "cat", 3 "."; the model gives them
# probabilities 1/8, 1/2, 1/4, 1/8, i.e. each costs 3, 1, 2, 3 bits wherever it stands.
# Validation documents "the cat." and "cat." -> ids 1 2 3 0 | 2 3 0 (7 tokens).
# Predicted: everything after the first token ("the ", which nothing predicts):
#   token      cat  .  EOT  cat  .  EOT
#   bits        2   3   3    2   3   3    = 16 bits = 16 ln 2 nats, over 6 tokens
#   characters  3   1   1    3   1   1    = 10 (an EOT counts as one)
# bits per character = 16 / 10 = 1.6; bits per token = 16 / 6.
# The classic slips give other figures: 16 / 6 (per token), 16 / 14 (counting "the "),
# 16 / 34 (counting EOT as its 13-character string), 16 / 7 (tokens including the first).
PROBS = [1 / 8, 1 / 2, 1 / 4, 1 / 8]
DOCS = ["the cat.", "cat."]


@pytest.mark.parametrize("model_class,tol", [(ExactUnigram, 1e-12), (Unigram, 1e-6)])
@pytest.mark.parametrize("block", [2, 4])  # 4: 7 tokens make a full window and a short one
def test_bits_per_char_of_multi_character_tokens_matches_the_hand_worked_value(
    model_class, tol, block
):
    tok = Pieces(["the ", "cat", "."])
    val = tok.encode_documents(DOCS)
    assert val.tolist() == [1, 2, 3, 0, 2, 3, 0]
    rec = likelihood(
        _run(model_class(PROBS), block), SimpleNamespace(val=val, tokenizer=tok), progress=False
    )
    assert rec["val_tokens"] == 6 and rec["val_chars"] == 10
    assert rec["bits_per_char"] == pytest.approx(1.6, rel=tol, abs=0)
    assert rec["bits_per_token"] == pytest.approx(16 / 6, rel=tol, abs=0)
    assert rec["val_loss"] == pytest.approx(16 * math.log(2) / 6, rel=tol, abs=0)
    assert rec["perplexity"] == pytest.approx(2 ** (16 / 6), rel=tol, abs=0)


def test_bits_per_char_of_a_trained_bpe_tokenizer_counts_the_characters_of_the_documents():
    # A uniform model costs log2(V) bits a token, so the figure is
    # (tokens - 1) log2(V) / (characters of the documents + one per EOT - characters of the
    # first token), where the denominator comes from the documents' text, not from tokens.
    train = ["the cat sat on the mat. " * 20, "a dog sat on a log. " * 20]
    docs = ["the cat sat on a log.", "a dog sat on the mat, then the cat sat."]
    tok = build_tokenizer("bpe", train, vocab_size=300)
    val = tok.encode_documents(docs)
    first = tok.decode(val[:1])
    assert len(first) > 1 and len(val) - 1 < sum(map(len, docs))  # tokens span characters
    v = tok.vocab_size
    rec = likelihood(
        _run(Unigram([1 / v] * v), 8), SimpleNamespace(val=val, tokenizer=tok), progress=False
    )
    chars = sum(len(d) + 1 for d in docs) - len(first)
    assert rec["val_chars"] == chars
    assert rec["bits_per_char"] == pytest.approx((len(val) - 1) * math.log2(v) / chars, rel=1e-6)
