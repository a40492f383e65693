"""A local `transformers` GPT-2-family folder (config.json, model.safetensors, tokenizer
files) as genlab GPT settings, weights and tokenizer: what ``--init-from FOLDER`` starts from.

    if is_transformers_folder(path):
        ported = read_gpt2(path)       # .model (model.* settings), .state, .tokenizer

GPT-2's block is genlab's: pre-norm, learned positions, the read-out tied to the token
embedding, biases in every linear layer and LayerNorm, GPT-2's tanh GELU. Its ``Conv1D``
layers store weights as (in, out), so they are transposed into ``nn.Linear``'s (out, in).
Only safetensors weights are read: a pickle (``pytorch_model.bin``) can run code on load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from genlab.errors import ConfigError, RunError
from genlab.fsutil import load_tensors

ARCHITECTURES = ("GPT2LMHeadModel", "GPT2Model")
# transformers' names for GPT-2's activation: its "gelu_new" is the tanh approximation
ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}
# per block: transformers' name -> (genlab's name, whether a Conv1D weight to transpose)
BLOCK = {
    "ln_1.weight": ("ln1.weight", False),
    "ln_1.bias": ("ln1.bias", False),
    "attn.c_attn.weight": ("attn.qkv.weight", True),
    "attn.c_attn.bias": ("attn.qkv.bias", False),
    "attn.c_proj.weight": ("attn.proj.weight", True),
    "attn.c_proj.bias": ("attn.proj.bias", False),
    "ln_2.weight": ("ln2.weight", False),
    "ln_2.bias": ("ln2.bias", False),
    "mlp.c_fc.weight": ("fc.weight", True),
    "mlp.c_fc.bias": ("fc.bias", False),
    "mlp.c_proj.weight": ("fc_out.weight", True),
    "mlp.c_proj.bias": ("fc_out.bias", False),
}


@dataclass
class PortedGPT2:
    model: dict  # model.* settings for genlab's GPTConfig
    state: dict[str, torch.Tensor]  # genlab's state_dict names
    tokenizer: object  # a genlab BPETokenizer


def is_transformers_folder(path: Path) -> bool:
    """A folder with a transformers config.json (not a genlab run's, which names a family)."""
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return False
    try:
        data = json.loads(cfg.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "family" not in data and "model_type" in data


def read_gpt2(path: Path) -> PortedGPT2:
    """The folder's GPT-2 as genlab settings, weights and tokenizer (RunError / ConfigError
    naming what does not fit)."""
    path = Path(path)
    hf = json.loads((path / "config.json").read_text())
    arch = ", ".join(hf.get("architectures") or [hf.get("model_type", "?")])
    if hf.get("model_type") != "gpt2":
        raise ConfigError(
            f"--init-from {path}: a {arch} model (model_type {hf.get('model_type')!r}); genlab "
            f"maps GPT-2-family models only ({', '.join(ARCHITECTURES)}, model_type 'gpt2')"
        )
    act = hf.get("activation_function", "gelu_new")
    n_embd, n_inner = int(hf["n_embd"]), hf.get("n_inner")
    if act not in ACTIVATIONS or (n_inner not in (None, 4 * n_embd)):
        raise ConfigError(
            f"--init-from {path}: activation {act!r} and n_inner {n_inner} do not fit genlab's "
            f"GPT (it takes {', '.join(ACTIVATIONS)} and an MLP of 4 x n_embd)"
        )
    if hf.get("scale_attn_by_inverse_layer_idx") or not hf.get("scale_attn_weights", True):
        raise ConfigError(f"--init-from {path}: attention scaled other than by 1/sqrt(head size)")
    weights = path / "model.safetensors"
    if not weights.is_file():
        pickles = sorted(p.name for p in path.glob("*.bin")) + sorted(
            p.name for p in path.glob("*.pt")
        )
        why = (
            f"holds only a pickle checkpoint ({', '.join(pickles)}), which genlab does not read "
            "(loading a pickle can run code): save it as model.safetensors "
            "(transformers: model.save_pretrained(folder, safe_serialization=True))"
            if pickles
            else "has no model.safetensors (sharded checkpoints are not read yet)"
        )
        raise RunError(f"--init-from {path} {why}")
    raw = load_tensors(weights)
    prefix = "transformer." if any(k.startswith("transformer.") for k in raw) else ""
    n_layer = int(hf["n_layer"])
    state: dict[str, torch.Tensor] = {}
    try:
        state["wte.weight"] = raw[f"{prefix}wte.weight"]
        state["wpe.weight"] = raw[f"{prefix}wpe.weight"]
        state["ln_f.weight"] = raw[f"{prefix}ln_f.weight"]
        state["ln_f.bias"] = raw[f"{prefix}ln_f.bias"]
        for i in range(n_layer):
            for theirs, (ours, conv1d) in BLOCK.items():
                w = raw[f"{prefix}h.{i}.{theirs}"]
                state[f"blocks.{i}.{ours}"] = w.t().contiguous() if conv1d else w
    except KeyError as e:
        raise RunError(f"--init-from {path}: model.safetensors lacks {e.args[0]!r}") from None
    if "lm_head.weight" in raw and not torch.equal(raw["lm_head.weight"], state["wte.weight"]):
        raise ConfigError(f"--init-from {path}: its read-out is not tied to the token embedding")
    model = {
        "n_layer": n_layer,
        "n_head": int(hf["n_head"]),
        "n_embd": n_embd,
        "block_size": int(hf["n_positions"]),
        "bias": True,
        "activation": ACTIVATIONS[act],
        "dropout": float(hf.get("resid_pdrop", 0.0)),
    }
    return PortedGPT2(model, state, _tokenizer(path, len(state["wte.weight"])))


def _tokenizer(path: Path, rows: int):
    """The folder's tokenizer (tokenizer.json, or vocab.json + merges.txt) as genlab's BPE."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    from genlab.data.tokenizers import BPETokenizer

    if (path / "tokenizer.json").is_file():
        tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    elif (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
        tok = Tokenizer(models.BPE.from_file(str(path / "vocab.json"), str(path / "merges.txt")))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
    else:
        raise RunError(
            f"--init-from {path}: no tokenizer (tokenizer.json, or vocab.json and merges.txt)"
        )
    try:
        out = BPETokenizer(tok)
    except ValueError as e:
        raise RunError(f"--init-from {path}: {e}") from None
    if out.vocab_size != rows:
        raise ConfigError(
            f"--init-from {path}: the tokenizer has {out.vocab_size} ids but the embedding "
            f"{rows} rows; genlab needs them equal"
        )
    return out


# -- out: a genlab GPT run as a transformers GPT-2 folder ---------------------------------
def write_gpt2(run, out: Path) -> list[str]:
    """Write ``run`` (a loaded genlab GPT run, ``genlab.load``) into folder ``out`` as
    transformers writes a GPT-2: config.json, model.safetensors, tokenizer.json and
    tokenizer_config.json. Returns the file names. Biases the model has not (genlab's
    default, bias=False) are written as zeros, which computes the same function."""
    from genlab.fsutil import save_tensors, write_bytes_atomic

    model, cfg = run.model, run.config.model
    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    ours_to_theirs = {ours: (theirs, conv1d) for theirs, (ours, conv1d) in BLOCK.items()}
    tensors: dict[str, torch.Tensor] = {
        "transformer.wte.weight": state["wte.weight"],
        "transformer.wpe.weight": state["wpe.weight"],
        "transformer.ln_f.weight": state["ln_f.weight"],
        "transformer.ln_f.bias": state.get("ln_f.bias", torch.zeros(cfg.n_embd)),
    }
    for i in range(cfg.n_layer):
        for ours, (theirs, conv1d) in ours_to_theirs.items():
            key = f"blocks.{i}.{ours}"
            if key in state:
                w = state[key]
            else:  # a bias genlab's model does not have: the weight's output width, zeros
                w = torch.zeros(state[f"blocks.{i}.{ours.replace('bias', 'weight')}"].shape[0])
            tensors[f"transformer.h.{i}.{theirs}"] = w.t().contiguous() if conv1d else w
    tok = model.tokenizer
    eot = tok.eot_id
    config = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": tok.vocab_size,
        "n_positions": cfg.block_size,
        "n_embd": cfg.n_embd,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_inner": None,
        "activation_function": "gelu_new" if cfg.activation == "gelu_tanh" else "gelu",
        "resid_pdrop": cfg.dropout,
        "embd_pdrop": cfg.dropout,
        "attn_pdrop": cfg.dropout,
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "tie_word_embeddings": True,
        "use_cache": True,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "torch_dtype": "float32",
    }
    out.mkdir(parents=True, exist_ok=True)
    save_tensors(out / "model.safetensors", tensors, metadata={"format": "pt"})
    write_bytes_atomic(out / "config.json", (json.dumps(config, indent=2) + "\n").encode())
    library = _library_tokenizer(tok)
    write_bytes_atomic(out / "tokenizer.json", library.to_str(pretty=True).encode())
    tok_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": cfg.block_size,
        "clean_up_tokenization_spaces": False,
    }
    if eot is not None:
        tok_config.update(bos_token=EOT_TOKEN, eos_token=EOT_TOKEN)
    write_bytes_atomic(
        out / "tokenizer_config.json", (json.dumps(tok_config, indent=2) + "\n").encode()
    )
    return ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]


EOT_TOKEN = "<|endoftext|>"


def _library_tokenizer(tok):
    """genlab's tokenizer as a `tokenizers.Tokenizer` with the same ids: BPE runs already
    wrap one; a character vocabulary becomes a BPE over single characters with no merges
    (every character its own token) whose decoder joins them back."""
    from tokenizers import AddedToken, Tokenizer, decoders, models

    if tok.kind == "bpe":
        return tok._tok
    vocab = {c: i for i, c in enumerate(tok.chars)}
    library = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    library.decoder = decoders.Fuse()
    if tok.eot_id is not None:
        library.add_special_tokens([AddedToken(EOT_TOKEN, special=True)])
    return library
