"""Configs: JSON round trip, dotted overrides, presets, strict errors."""

import json

import pytest

from genlab.config import apply_overrides, from_dict, to_dict
from genlab.errors import ConfigError
from genlab.models.vae import VAEConfig
from genlab.rundir import RunConfig
from genlab.training.trainer import TrainConfig


def test_json_round_trip_of_a_run_config():
    cfg = RunConfig.new("vae", overrides=["model.latent_dim=7", "train.betas=0.5,0.9"])
    back = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    assert back.model.latent_dim == 7 and back.train.betas == (0.5, 0.9)


def test_overrides_parse_every_type():
    cfg = RunConfig.new(
        "vae",
        overrides=[
            "model.conditional=true",
            "train.lr=3e-4",
            "train.steps=12",
            "data.size=16",
            "train.minutes=none",
            "model.likelihood=logistic",
            "data.name=./x.npz",
        ],
    )
    assert cfg.model.conditional is True and cfg.train.lr == 3e-4 and cfg.train.steps == 12
    assert cfg.data.size == 16 and cfg.train.minutes is None
    assert cfg.model.likelihood == "logistic" and cfg.data.name == "./x.npz"


def test_preset_then_overrides_order():
    preset = RunConfig.new("vae", preset="mnist")
    assert preset.model.width == 64 and preset.train.steps == 20000
    assert RunConfig.new("vae", preset="mnist", overrides=["model.width=8"]).model.width == 8


@pytest.mark.parametrize(
    "bad, words",
    [
        ("model.latnt_dim=3", "unknown key 'model.latnt_dim'"),
        ("train.lr=abc", "expected float"),
        ("train.steps=1.5", "expected int"),
        ("model.conditional=maybe", "expected true or false"),
        ("model.likelihood=poisson", "not one of"),
        ("nosuchsection.x=1", "unknown key"),
        ("train.steps", "not key=value"),
        ("train.steps=0", "must be >= 1"),
    ],
)
def test_bad_overrides_are_one_line_errors(bad, words):
    with pytest.raises(ConfigError) as e:
        RunConfig.new("vae", overrides=[bad])
    assert words in str(e.value) and "\n" not in str(e.value)


def test_from_dict_rejects_unknown_keys_and_wrong_types():
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(VAEConfig, {"latent_dim": 4, "bogus": 1})
    with pytest.raises(ConfigError, match="expected int"):
        from_dict(VAEConfig, {"latent_dim": "4"})
    assert from_dict(TrainConfig, {"lr": 1}).lr == 1.0  # int widens to float


def test_unknown_preset_and_family():
    with pytest.raises(ConfigError, match="no preset"):
        RunConfig.new("vae", preset="huge")
    with pytest.raises(ConfigError, match="unknown model family"):
        RunConfig.new("vea")


def test_to_dict_is_plain_json():
    d = to_dict(apply_overrides(TrainConfig(), ["betas=0.1,0.2"]))
    assert d["betas"] == [0.1, 0.2]
    json.dumps(d)


def test_unknown_key_hint_names_a_command_that_works(capsys):
    from genlab.cli import main

    with pytest.raises(ConfigError) as e:
        RunConfig.new("vae", overrides=["model.latnt_dim=3"])
    message = str(e.value)
    assert "`genlab info --family FAMILY`" in message
    hinted = message.split("`")[1].split()  # genlab info --family FAMILY
    assert main([*hinted[1:-1], "vae"]) == 0
    assert "model.latent_dim" in capsys.readouterr().out
