"""Typed configs: files, dotted overrides, type checks, round trip."""

import dataclasses
from typing import Literal

import pytest

from diffdyn.common import build_config, config_to_dict, load_config_file, write_config


@dataclasses.dataclass(frozen=True)
class Optim:
    lr: float = 1e-3
    name: Literal["adam", "sgd"] = "adam"


@dataclasses.dataclass(frozen=True)
class Experiment:
    steps: int = 100
    size: tuple[int, int] = (32, 32)
    noise: float | None = None
    verbose: bool = False
    optim: Optim = dataclasses.field(default_factory=Optim)

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1; got {self.steps}")


def test_defaults_file_and_overrides_in_order(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('steps = 5\nsize = [8, 16]\n[optim]\nlr = 0.5\nname = "sgd"\n')
    cfg = build_config(Experiment, load_config_file(f), ["optim.lr=0.25", "verbose=true"])
    assert cfg == Experiment(steps=5, size=(8, 16), verbose=True, optim=Optim(0.25, "sgd"))
    assert build_config(Experiment) == Experiment()
    assert build_config(Experiment, {}, {"noise": "none", "steps": "1e3"}).steps == 1000


@dataclasses.dataclass(frozen=True)
class Tuned:
    optim: Optim = Optim(lr=0.125, name="sgd")
    steps: int = 2


def test_nested_default_instances_provide_the_defaults():
    assert build_config(Tuned) == Tuned()
    assert build_config(Tuned, {}, ["optim.name=adam"]) == Tuned(Optim(0.125, "adam"))


def test_yaml_round_trip(tmp_path):
    cfg = Experiment(steps=7, size=(3, 4), noise=0.1, optim=Optim(0.2, "sgd"))
    path = write_config(cfg, tmp_path / "config.yaml")
    assert build_config(Experiment, load_config_file(path)) == cfg
    assert config_to_dict(cfg)["size"] == [3, 4]


@pytest.mark.parametrize(
    "override, message",
    [
        ("stepz=3", "unknown config key 'stepz'"),
        ("steps=three", "'steps' must be an integer"),
        ("optim.name=rmsprop", "must be one of"),
        ("verbose=maybe", "true or false"),
        ("size=1,2,3", "needs 2 items"),
        ("steps=0", "steps must be >= 1"),
        ("steps", "key=value"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ValueError, match=message):
        build_config(Experiment, {}, [override])


def test_bad_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_config_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = = 3")
    with pytest.raises(ValueError, match="is not valid"):
        load_config_file(bad)
    other = tmp_path / "c.ini"
    other.write_text("x")
    with pytest.raises(ValueError, match=".toml, .yaml"):
        load_config_file(other)
