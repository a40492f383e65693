"""What the GPT and the RNN share: next-token loss, the text controls, and sampling text.

    model = genlab.load("runs/gpt").model            # a LanguageModel with its tokenizer
    model.loss({"x": ids})                             # ids (B, T+1) -> {"loss": mean nats/token}
    stories = model.sample(3, prompt="Once upon a time", max_new_tokens=200, top_p=0.9,
                           stop=["\\n\\n"], on_text=lambda i, piece: print(piece, end=""))

A family gives ``logits(idx)`` (B, T) -> (B, T, V) for training and ``step(idx, state)``
for generation (see ``generate.py``); this class turns text into ids and back. ``sample``
returns the generated continuations as strings (the prompt not repeated).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from genlab.errors import ConfigError
from genlab.models.ar.generate import generate
from genlab.models.base import Control, GenerativeModel

IGNORE = -100  # a target id the loss skips (for callers that pad windows)
# the training part of both families' "tiny" preset: a seconds-long pipeline check
TINY_TRAIN = {
    "train.steps": 20,
    "train.batch_size": 8,
    "train.eval_every": 10,
    "train.sample_every": 10,
    "train.checkpoint_every": 10,
    "train.warmup_steps": 2,
    "train.log_every": 5,
    "train.eval_batches": 2,
}


class LanguageModel(GenerativeModel):
    """Base of the autoregressive text families; ``tokenizer`` is set by whoever builds it
    (the trainer and ``genlab.load``), from the run directory's tokenizer.json."""

    data_kind = "text"
    default_data = "grimms"
    controls = {
        "prompt": Control(str, "", "text to continue (default: start a new document)"),
        "max_new_tokens": Control(int, 256, "tokens to generate per sample", low=1, high=100_000),
        "temperature": Control(
            float, 1.0, "softmax temperature (0: greedy; lower: safer, less diverse)", 0.0, 10.0
        ),
        "top_k": Control(int, 0, "keep only the k most likely tokens (0: off)", 0),
        "top_p": Control(float, 1.0, "nucleus sampling: the smallest set with this mass", 0.0, 1.0),
        "min_p": Control(
            float, 0.0, "drop tokens below min_p x the top token's probability (0: off)", 0.0, 1.0
        ),
        "repetition_penalty": Control(
            float, 1.0, "divide the logits of tokens already in the text (1: off)", 1.0, 10.0
        ),
        "no_repeat_ngram": Control(int, 0, "never repeat an n-gram of this many tokens", 0, 100),
        "stop": Control(str, None, "end a sample where this text appears (repeatable)", many=True),
    }
    sweep = ("temperature", (0.5, 0.7, 0.85, 1.0, 1.2))
    extra_sweeps = (("top_p", (0.5, 0.8, 0.9, 0.95, 1.0)),)
    progress_keys = ("loss", "val_loss")

    def __init__(self, config: Any, info):
        super().__init__(config, info)
        if info.kind != "text" or info.vocab_size < 1:
            raise ConfigError(
                f"the {self.family} family models text; give it a text corpus with --data "
                "(a .txt file, a folder of them, or tinyshakespeare, tinystories-2mb, grimms, pydoc)"
            )
        self.tokenizer = None

    @property
    def vocab_size(self) -> int:
        return self.info.vocab_size

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, V) next-token logits."""
        raise NotImplementedError

    def step(self, idx: torch.Tensor, state):
        raise NotImplementedError

    def loss(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        ids = batch["x"]  # (B, T+1)
        logits = self.logits(ids[:, :-1])
        loss = F.cross_entropy(
            logits.reshape(-1, logits.size(-1)).float(),
            ids[:, 1:].reshape(-1),
            ignore_index=IGNORE,
        )
        return {"loss": loss}

    # -- text in, text out ------------------------------------------------------
    def encode_prompt(self, prompt: str) -> list[int]:
        """The ids generation starts from (a prompt outside the vocabulary: DataError)."""
        tok = self.tokenizer
        if tok is None:
            if prompt:
                raise ConfigError("this model has no tokenizer attached: load it with genlab.load")
            return [0]
        ids = tok.encode(prompt) if prompt else []
        if ids:
            return ids
        if tok.eot_id is not None:
            return [tok.eot_id]  # a new document begins after an end-of-text
        return tok.encode("\n")  # single-document corpora (Shakespeare): a new line

    @torch.no_grad()
    def sample_ids(
        self, n: int, *, generator=None, on_token=None, on_probs=None, **controls
    ) -> list[list[int]]:
        """New token ids for ``n`` samples (controls as in ``sample``, stop strings aside)."""
        c = self.check_controls(controls)
        ids = self.encode_prompt(c["prompt"])
        return generate(
            self,
            [ids] * n,
            max_new_tokens=c["max_new_tokens"],
            temperature=c["temperature"],
            top_k=c["top_k"],
            top_p=c["top_p"],
            min_p=c["min_p"],
            repetition_penalty=c["repetition_penalty"],
            no_repeat_ngram=c["no_repeat_ngram"],
            eot_id=self.tokenizer.eot_id if self.tokenizer is not None else None,
            generator=generator,
            on_token=on_token,
            on_probs=on_probs,
        )

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        on_text: Callable[[int, str], None] | None = None,
        on_probs: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
        finished: list[str] | None = None,
        **controls: Any,
    ) -> list[str]:
        """``n`` continuations of ``prompt`` as strings, each ending at an end-of-text, a
        ``stop`` string (cut before it) or after ``max_new_tokens``. ``on_text(i, piece)``
        streams each sample's new text as it is drawn; ``on_probs`` sees each step's
        distribution (see ``generate``). A ``finished`` list receives why each sample ended:
        "stop" (end-of-text or a stop string) or "length" (``max_new_tokens`` drawn)."""
        if self.tokenizer is None:
            raise ConfigError("this model has no tokenizer attached: load it with genlab.load")
        stops = controls.pop("stop", None) or []
        stops = [s for s in ([stops] if isinstance(stops, str) else stops) if s]
        tok = self.tokenizer
        new: list[list[int]] = [[] for _ in range(n)]
        shown = [0] * n  # characters of each sample already streamed
        stopped_at = [False] * n

        def cut(text: str) -> tuple[str, bool]:
            at = min((text.find(s) for s in stops if s in text), default=-1)
            return (text[:at], True) if at >= 0 else (text, False)

        def held(text: str) -> int:
            """Characters at the end of ``text`` that may begin a stop string: not shown yet."""
            return max(
                (k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0
            )

        def on_token(i: int, t: int) -> bool:
            new[i].append(t)
            text, stopped = cut(tok.decode(new[i]))
            if not stopped:
                text = text[: len(text) - held(text)]
            if on_text is not None and not text.endswith("\ufffd") and len(text) > shown[i]:
                # (a trailing U+FFFD is half a UTF-8 character from byte-level BPE: wait)
                on_text(i, text[shown[i] :])
                shown[i] = len(text)
            stopped_at[i] = stopped
            return stopped

        ids = self.sample_ids(
            n, generator=generator, on_token=on_token, on_probs=on_probs, **controls
        )
        out = [cut(tok.decode(seq))[0] for seq in ids]
        if on_text is not None:
            for i, text in enumerate(out):
                if len(text) > shown[i]:
                    on_text(i, text[shown[i] :])
        if finished is not None:
            limit = self.check_controls({k: v for k, v in controls.items() if k != "stop"})
            finished[:] = [
                "length" if len(new[i]) >= limit["max_new_tokens"] and not stopped_at[i] else "stop"
                for i in range(n)
            ]
        return out

    @torch.no_grad()
    def evaluate(self, batches, **options: Any) -> dict[str, Any]:
        """Mean negative log-likelihood over every target token of ``batches``."""
        total, count = 0.0, 0
        progress = options.get("progress")
        for batch in batches:
            ids = batch["x"]
            logits = self.logits(ids[:, :-1]).float()
            nll = F.cross_entropy(
                logits.reshape(-1, logits.size(-1)),
                ids[:, 1:].reshape(-1),
                ignore_index=IGNORE,
                reduction="sum",
            )
            total += nll.item()
            k = int((ids[:, 1:] != IGNORE).sum())
            count += k
            if progress is not None:
                progress(k)
        return {"nll_sum": total, "tokens": count}
