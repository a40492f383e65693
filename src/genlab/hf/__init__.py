"""Bridges to the Hugging Face formats: read a `transformers` GPT-2 folder into genlab's GPT
(``gpt2.py``). Reading needs only json, safetensors and `tokenizers`, which genlab already
depends on; nothing here imports `transformers`, and nothing is downloaded."""
