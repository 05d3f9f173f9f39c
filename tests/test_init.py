"""Initialisations (stats-only, standardised, from a toolkit run), depth and block-wise unfreezing."""

import pytest
import torch

from fpt.errors import FPTError
from fpt.models.build import build_model
from fpt.run.train import build, train
from fpt.trunks.init import xavier_std
from fpt.tasks.base import TaskSpec
from tests.helpers import tiny_cfg

XOR = TaskSpec(seq_len=10, token_dim=1, num_classes=2, readout="last_k", k=5)


def _trunk_state(tiny, arch, *overrides):
    return build_model(tiny_cfg(tiny, arch, *overrides), XOR).trunk.state_dict()


@pytest.mark.parametrize("arch", ["gpt2", "bert"])
def test_stats_init_matches_each_pretrained_tensors_mean_and_std(tiny, arch):
    pre = _trunk_state(tiny, arch)
    st = _trunk_state(tiny, arch, "trunk.init=stats")
    for k, v in pre.items():
        if v.numel() >= 1000:
            assert not torch.equal(v, st[k]), k
            assert st[k].mean() == pytest.approx(v.mean().item(), abs=0.1 * v.std().item() + 1e-6), k
            assert st[k].std() == pytest.approx(v.std().item(), rel=0.1), k
    ln = next(k for k in pre if k.endswith("ln_f.weight") or k.endswith("embeddings.LayerNorm.weight"))
    assert torch.allclose(st[ln], pre[ln].mean().expand_as(pre[ln]))  # all-ones stays all-ones


def test_standardized_rescales_only_the_chosen_group_to_xavier(tiny):
    pre = _trunk_state(tiny, "gpt2")
    std = _trunk_state(tiny, "gpt2", "trunk.init=standardized", "trunk.standardize=pos")
    wpe = std["wpe.weight"]
    assert wpe.mean().abs() < 1e-6 and wpe.std().item() == pytest.approx(xavier_std(wpe.shape), rel=1e-4)
    # direction is kept: standardisation is an affine map of the pretrained values
    assert torch.corrcoef(torch.stack([wpe.flatten(), pre["wpe.weight"].flatten()]))[0, 1] > 0.9999
    assert torch.equal(std["h.0.attn.c_attn.weight"], pre["h.0.attn.c_attn.weight"])
    with pytest.raises(FPTError, match="unknown group"):
        _trunk_state(tiny, "gpt2", "trunk.init=standardized", "trunk.standardize=posn")


@pytest.mark.slow
def test_init_from_a_toolkit_run_takes_the_trunk_it_trained(tiny, tmp_path):
    src = tmp_path / "bitmem"
    train(tiny_cfg(tiny, "gpt2", "freeze=none", "trainer.max_steps=6", "trainer.val_check_interval=3"), src)
    _, trained = build(tiny_cfg(tiny, "gpt2", "freeze=none", f"trunk.init={src}/checkpoints/last.ckpt"))
    from fpt.checkpoint import load_checkpoint

    ck = load_checkpoint(src / "checkpoints" / "last.ckpt")["state_dict"]
    state = trained.model.trunk.state_dict()
    assert torch.equal(state["h.1.mlp.c_fc.weight"], ck["model.trunk.h.1.mlp.c_fc.weight"])
    assert not torch.equal(state["h.1.mlp.c_fc.weight"], _trunk_state(tiny, "gpt2")["h.1.mlp.c_fc.weight"])
    with pytest.raises(FPTError, match="not a bert trunk"):
        build(tiny_cfg(tiny, "bert", f"trunk.init={src}"))


def test_depth_keeps_the_first_blocks(tiny):
    full = build_model(tiny_cfg(tiny, "bert"), XOR)
    one = build_model(tiny_cfg(tiny, "bert", "model.depth=1"), XOR)
    assert len(one.trunk.encoder.layer) == 1 and one.trunk.config.num_hidden_layers == 1
    assert torch.equal(one.trunk.encoder.layer[0].intermediate.dense.weight, full.trunk.encoder.layer[0].intermediate.dense.weight)
    with pytest.raises(FPTError, match="choose 1..2"):
        build_model(tiny_cfg(tiny, "bert", "model.depth=3"), XOR)


def test_unfreeze_trains_a_group_in_the_last_blocks_only(tiny):
    m = build_model(tiny_cfg(tiny, "gpt2", "unfreeze.groups=ffn", "unfreeze.last=1"), XOR)
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert {"trunk.h.1.mlp.c_fc.weight", "trunk.h.1.mlp.c_proj.bias"} <= trainable
    assert not any(n.startswith("trunk.h.0.mlp") or ".attn." in n for n in trainable)
    t5 = build_model(tiny_cfg(tiny, "t5", "unfreeze.groups=attn"), XOR)
    assert all(p.requires_grad for n, p in t5.named_parameters() if ".SelfAttention.q." in n)
