"""trunk.keep: pretrained groups kept in a freshly initialised trunk (fpt/trunks/init.py keep_pretrained)."""

import pytest
import torch
from transformers import GPT2Model

from fpt.config import preflight
from fpt.errors import FPTError
from fpt.train import build
from tests.conftest import tiny_cfg


def test_random_trunk_keeps_the_pretrained_positions_only(tiny):
    pre = GPT2Model.from_pretrained(tiny["gpt2"])
    cfg = tiny_cfg(tiny, "gpt2", "trunk.init=random", "trunk.keep=pos", "trainer.precision=32-true")
    preflight(cfg)
    trunk = build(cfg, cached=False)[1].model.trunk
    assert torch.equal(trunk.wpe.weight, pre.wpe.weight)
    assert not torch.equal(trunk.h[0].attn.c_attn.weight, pre.h[0].attn.c_attn.weight)  # fresh
    cfg = tiny_cfg(tiny, "gpt2", "trunk.init=random", "trunk.keep=pos", "trunk.standardize_kept=true", "trainer.precision=32-true")
    w = build(cfg, cached=False)[1].model.trunk.wpe.weight
    assert float(w.std()) == pytest.approx((2 / sum(w.shape)) ** 0.5, rel=1e-3)  # Xavier's std


def test_keep_needs_a_random_trunk(tiny):
    with pytest.raises(FPTError, match="trunk.keep=.*needs trunk.init=random"):
        preflight(tiny_cfg(tiny, "gpt2", "trunk.keep=pos"))
