"""Every registry entry checked the same way: each model kind has a yaml its options accept, freeze groups the
toolkit knows, and builds; and a new kind is its own entry (here written in the test) plus model.kind=NAME."""

import pytest
from omegaconf import OmegaConf

from fpt.config import choices, compose, config_dir
from fpt.config.groups import GROUPS
from fpt.config.kinds import ModelKind
from fpt.config.schema import check
from fpt.config.sections import ModelCommon, validate
from fpt.models.build import build_model
from fpt.models.registry import KINDS
from fpt.models.wrapper import FPTModel, input_options
from fpt.tasks.spec import TaskSpec

SPEC = TaskSpec(seq_len=6, token_dim=3, num_classes=2)


def _yamls(name: str) -> list[str]:
    return [y for y in choices("model") if OmegaConf.load(config_dir() / "model" / f"{y}.yaml").get("model", {}).get(
        "kind", OmegaConf.load(config_dir() / "model" / f"{y}.yaml").get("kind")) == name]


@pytest.mark.parametrize("name", list(KINDS))
def test_model_kind_entry(name):
    e = KINDS[name]
    assert e.name == name and issubclass(e.options, ModelCommon) and callable(e.builder)
    assert set(e.groups) <= set(GROUPS), f"{name}: groups {set(e.groups) - set(GROUPS)} are no freeze group"
    assert _yamls(name), f"model.kind={name} has no yaml in configs/model/"
    for y in _yamls(name):
        cfg = compose([f"model={y}"])
        check(e.options, OmegaConf.to_container(cfg.model, resolve=True), "model")
        validate(cfg)
    if not e.trunk:  # the baselines build in a moment; the trunk kind builds on tiny trunks in test_trunks.py
        overrides = {"lstm": ["model.hidden=8", "model.layers=1"], "linformer": ["model.hidden=8", "model.heads=2"]}
        model = build_model(compose([f"model={_yamls(name)[0]}", *overrides.get(name, ["model.hidden=8", "model.heads=2"]
                                                                                  if name != "no_trunk" else [])]), SPEC)
        assert isinstance(model, FPTModel) and set(model.param_groups().values()) <= set(e.groups) | {"input", "output"}


class Mean(ModelCommon):
    hidden: int = 4


def build_mean(cfg, spec):
    import torch

    body = torch.nn.Linear(int(cfg.model.hidden), int(cfg.model.hidden))
    return FPTModel(spec, body, int(cfg.model.hidden), {"weight": "ffn", "bias": "ffn"},
                    lambda b, x, mask: b(x), cfg.model.get("readout"), **input_options(cfg.model))


def test_a_new_model_kind_is_one_entry(monkeypatch):
    """Adding a kind: its entry (builder, options, groups) and a model yaml (here the overrides a yaml would hold)."""
    monkeypatch.setitem(KINDS, "mean", ModelKind("mean", Mean, build_mean, trunk=False, groups=("ffn",)))
    cfg = compose(["model=no_trunk", "model.kind=mean", "model.hidden=4", "freeze=[]"])
    validate(cfg)
    model = build_model(cfg, SPEC)
    assert set(model.param_groups().values()) == {"input", "ffn", "output"}
    with pytest.raises(Exception, match="model.hidden must be"):
        validate(compose(["model=no_trunk", "model.kind=mean", "model.hidden=x"]))
