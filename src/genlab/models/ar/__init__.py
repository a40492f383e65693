"""Autoregressive text models: a GPT and an LSTM/GRU, sharing one generation loop."""

from genlab.models.ar import gpt, rnn  # noqa: F401  (importing registers them)
