"""trunk.keep: pretrained groups kept in a freshly initialised trunk (fpt/trunks/init.py keep_pretrained)."""

import pytest
import torch
from transformers import GPT2Model

from fpt.run.preflight import preflight
from fpt.errors import FPTError
from fpt.run.train import build
from tests.helpers import tiny_cfg


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


def test_analyze_weights_shows_the_kept_groups_range_before_and_after(tiny, tmp_path, capsys):
    import csv

    from fpt.cli import main

    pre = GPT2Model.from_pretrained(tiny["gpt2"]).wpe.weight.detach()
    code = main(["analyze", "weights", "trunk=gpt2", f"trunk.path={tiny['gpt2']}", "trunk.init=random", "trunk.keep=pos",
                 "trunk.standardize_kept=true", f"out={tmp_path}"])
    out = capsys.readouterr().out
    assert code == 0 and "ranges of the kept groups" in out and "wpe.weight" in out
    rows = {r["name"]: r for r in csv.DictReader(open(tmp_path / "weights_gpt2_random_ranges.csv"))}
    assert set(rows) == {"wpe.weight"}  # GPT-2's pos group: the position table only
    r = {k: float(v) for k, v in rows["wpe.weight"].items() if k not in ("name", "group", "shape")}
    assert r["std_before"] == pytest.approx(float(pre.double().std()), rel=1e-9)
    assert r["max_abs_before"] == pytest.approx(float(pre.abs().max()), rel=1e-6)
    assert r["std_after"] == pytest.approx(r["xavier_std"], rel=1e-3) and r["xavier_std"] == pytest.approx((2 / (64 + 32)) ** 0.5)
    assert r["std_before"] < 0.5 * r["std_after"]  # the tiny trunk's 0.02-std table, rescaled up to Xavier's 0.144
