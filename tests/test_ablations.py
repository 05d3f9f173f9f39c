"""The "does the trunk matter?" ablations (fpt/models/ablations.py) and the shuffled-order test (fpt/run/shuffle.py)."""

import pytest
import torch

from fpt.run.preflight import preflight
from fpt.run.shuffle import shuffle_tokens
from fpt.run.train import build, train
from tests.helpers import FAST, compose_cfg

SMALL = ("model.hidden=32", "model.input_dropout=0.0", "trainer.precision=32-true")


def _model(*overrides):
    cfg = compose_cfg(*FAST, *overrides)
    preflight(cfg)
    return build(cfg, cached=False)[1].model


def test_no_trunk_has_only_the_input_and_output_layers():
    m = _model("model=no_trunk", *SMALL)
    assert {n for n, _ in m.named_parameters()} == {"input.weight", "input.bias", "output.weight", "output.bias"}
    assert all(p.requires_grad for p in m.parameters())


@pytest.mark.parametrize("kind, groups", [("attn1", {"attn", "ln", "pos"}), ("block1", {"attn", "ffn", "ln", "pos"})])
def test_one_layer_ablations_train_from_scratch(kind, groups):
    m = _model(f"model={kind}", "model.heads=2", *SMALL)
    assert m.trained_groups() == groups | {"input", "output"}
    assert {g for g in m.param_groups().values()} == groups | {"input", "output"}
    x, mask = torch.randn(2, m.spec.seq_len, m.spec.token_dim), torch.ones(2, m.spec.seq_len, dtype=torch.bool)
    assert m(x, mask).shape == (2, 5, 2)  # bit XOR: 5 target positions


def test_shuffle_permutes_real_tokens_and_keeps_pads():
    x = torch.arange(2 * 5).view(2, 5) + 1
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    y = shuffle_tokens(x, mask, torch.Generator().manual_seed(0))
    assert torch.equal(y[0, 3:], x[0, 3:]) and sorted(y[0, :3].tolist()) == [1, 2, 3]
    assert sorted(y[1].tolist()) == x[1].tolist() and not torch.equal(y, x)


def test_shuffled_order_changes_nothing_for_a_bag_of_tokens(tmp_path):
    """no_trunk with the mean readout reads a bag of tokens: its shuffled accuracy equals its accuracy."""
    lo = ("task=listops_small", "task.generate.train_size=200", "task.generate.val_size=50", "task.generate.test_size=200",
          f"data.root={tmp_path / 'data'}", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false")
    cfg = compose_cfg(*lo, "model=no_trunk", *SMALL, "model.readout=mean", "eval.shuffle_tokens=true",
                      "trainer.max_steps=20", "trainer.val_check_interval=10", "eval.train_acc=false")
    res = train(cfg, tmp_path)
    assert res["test_shuffled/acc"] == pytest.approx(res["test/acc"], abs=1e-6)


@pytest.mark.slow
def test_shuffled_order_costs_an_order_reading_model_accuracy(tmp_path):
    cfg = compose_cfg(*FAST, "model=block1", "model.heads=2", "model.dropout=0.0", *SMALL, "optim.lr=3e-3",
                      "eval.shuffle_tokens=true", "trainer.max_steps=300", "trainer.val_check_interval=100", "eval.train_acc=false")
    res = train(cfg, tmp_path)
    assert res["test/acc"] >= 0.9 and res["test_shuffled/acc"] < res["test/acc"] - 0.1  # XOR pairs bit i with bit i + n
