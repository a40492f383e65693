"""--init-from a local transformers GPT-2 folder: the same logits as transformers gives, then
training; bad folders get one line and exit status 2. Needs `transformers` (genlab[hf])."""

import json

import pytest
import torch

from genlab.cli import main
from genlab.data import DataInfo
from genlab.data.text import load_text
from genlab.hf.gpt2 import read_gpt2
from genlab.models.ar.gpt import GPT, GPTConfig

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    """A small GPT-2 with random weights and a byte-level BPE trained on Grimms' tales, saved
    by transformers as a user's folder would be."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    folder = tmp_path_factory.mktemp("gpt2")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([load_text("grimms", progress=False).text("train")[:200_000]], trainer)
    transformers.GPT2TokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>").save_pretrained(
        folder
    )
    torch.manual_seed(0)
    # weights 10x GPT-2's usual scale, so that activations are of order 1, where the tanh
    # and exact GELU (or any other mismatch) differ far beyond the tolerance
    cfg = transformers.GPT2Config(
        vocab_size=tok.get_vocab_size(),
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=4,
        initializer_range=0.2,
    )
    transformers.GPT2LMHeadModel(cfg).save_pretrained(folder)
    return folder


def test_a_transformers_gpt2_gives_the_same_logits_in_genlab(gpt2_folder):
    ported = read_gpt2(gpt2_folder)
    ours = GPT(GPTConfig(**ported.model), DataInfo.text(ported.tokenizer.vocab_size)).eval()
    ours.load_state_dict(ported.state)
    theirs = transformers.GPT2LMHeadModel.from_pretrained(gpt2_folder).eval()
    ids = torch.tensor([ported.tokenizer.encode("Once upon a time there was a king who")])
    with torch.no_grad():
        want = theirs(ids).logits
        diff = (ours.logits(ids) - want).abs().max().item()
    assert diff <= 1e-5 and want.std() > 1  # and the logits are far from uniform
    # the tokenizer is taken over: the same ids as transformers' own
    auto = transformers.AutoTokenizer.from_pretrained(gpt2_folder)
    assert ids[0].tolist() == auto("Once upon a time there was a king who")["input_ids"]


def test_init_from_a_transformers_folder_trains_and_records_it(gpt2_folder, tmp_path):
    out = tmp_path / "r"
    code = main(
        ["train", "gpt", "--init-from", str(gpt2_folder), "--data", "grimms", "--out", str(out)]
        + ["--steps", "3", "--quiet", "model.block_size=32", "train.eval_every=3"]
    )
    assert code == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["init_from"] == str(gpt2_folder)
    assert saved["model"]["bias"] and saved["model"]["activation"] == "gelu_tanh"
    assert saved["model"]["block_size"] == 32 and saved["data"]["tokenizer"] == "bpe"
    recs = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("val_loss" in r for r in recs)


def _cli_error(args, capsys) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    return err[0]


def test_folders_genlab_cannot_read_get_one_line(gpt2_folder, tmp_path, capsys):
    base = ["train", "gpt", "--data", "grimms", "--steps", "1", "--quiet", "--out"]
    # a pickle-only checkpoint
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((gpt2_folder / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"not read")
    line = _cli_error([*base, str(tmp_path / "a"), "--init-from", str(pickled)], capsys)
    assert "pickle" in line and "pytorch_model.bin" in line and "safetensors" in line
    # an architecture genlab does not map, named
    llama = tmp_path / "llama"
    llama.mkdir()
    (llama / "config.json").write_text(
        json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]})
    )
    line = _cli_error([*base, str(tmp_path / "b"), "--init-from", str(llama)], capsys)
    assert "LlamaForCausalLM" in line and "GPT-2" in line
    # a folder that is neither a genlab run nor a transformers model
    plain = tmp_path / "plain"
    plain.mkdir()
    line = _cli_error([*base, str(tmp_path / "c"), "--init-from", str(plain)], capsys)
    assert "not a genlab run" in line
    assert not any((tmp_path / n).exists() for n in "abc")  # nothing written


def test_genlab_reads_the_folder_without_importing_transformers():
    """transformers is an extra: training from its folder must not need it."""
    import subprocess
    import sys

    probe = (
        "import sys, genlab.cli, genlab.training.launch, genlab.hf.gpt2; "
        "print('transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_an_exported_run_loads_in_transformers_with_the_same_logits_and_greedy_text(
    tokenizer, tmp_path
):
    import genlab

    run_dir, out = tmp_path / "run", tmp_path / "hf"
    overrides = ["model.block_size=96", "model.n_embd=32", f"data.tokenizer={tokenizer}"]
    overrides += ["data.vocab_size=300"] if tokenizer == "bpe" else []
    genlab.train("gpt", run_dir, preset="tiny", overrides=overrides, progress=False)
    assert main(["export", str(run_dir), "--format", "transformers", "--out", str(out)]) == 0
    run = genlab.load(run_dir)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    auto = transformers.AutoTokenizer.from_pretrained(out)
    prompt = "The king said"
    ids = run.model.encode_prompt(prompt)
    assert auto(prompt)["input_ids"] == ids  # the same ids
    x = torch.tensor([ids])
    with torch.no_grad():
        diff = (run.model.logits(x) - theirs(x).logits).abs().max().item()
    assert diff <= 1e-5
    ours = run.model.sample_ids(1, prompt=prompt, temperature=0.0, max_new_tokens=64)[0]
    gen = theirs.generate(x, max_new_tokens=64, do_sample=False)[0, len(ids) :].tolist()
    eot = run.model.tokenizer.eot_id
    if eot in gen:  # transformers stops at the end-of-text and pads; genlab stops there
        gen = gen[: gen.index(eot) + (eot in ours)]
    assert ours == gen and len(ours) > 0
    assert auto.decode(gen) == run.model.tokenizer.decode(ours)
    # genlab's exact GELU, named so (at these small weights tanh's would pass the logits too)
    assert json.loads((out / "config.json").read_text())["activation_function"] == "gelu"
    card = (out / "README.md").read_text()
    assert "validation loss" in card and "grimms" in card


def test_export_refuses_what_it_cannot_write(tmp_path, capsys):
    import genlab

    genlab.train("vae", tmp_path / "vae", preset="tiny", progress=False)
    line = _cli_error(
        ["export", str(tmp_path / "vae"), "--format", "transformers", "--out", str(tmp_path / "o")],
        capsys,
    )
    assert "vae run" in line and "gpt" in line
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    line = _cli_error(
        [
            "export",
            str(tmp_path / "vae"),
            "--format",
            "transformers",
            "--out",
            str(tmp_path / "full"),
        ],
        capsys,
    )
    assert "not an empty folder" in line and (tmp_path / "full" / "keep.txt").read_text() == "mine"
