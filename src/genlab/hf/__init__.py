"""Bridges to the Hugging Face formats (``gpt2.py``): read a `transformers` GPT-2 folder into
genlab's GPT (``--init-from``), and write a GPT run as such a folder (``genlab export``).
Both need only json, safetensors and `tokenizers`, which genlab already depends on; nothing
here imports `transformers`, and nothing is downloaded."""
