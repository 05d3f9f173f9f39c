"""Parameter-efficient baselines through PEFT (fpt/models/adapters.py): what each adapts, on hand-mapped and trunk=auto
trunks, training, slim checkpoints, eval, the merged export, and bad input."""

import re

import pytest
import torch

from fpt.checkpoint import load_checkpoint
from fpt.run.preflight import preflight
from fpt.run.train import build, evaluate, train
from tests.helpers import FAST, compose_cfg, run_fpt, save_tiny, tiny_cfg

R = 4


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("llama"), "llama")


def _model(cfg):
    preflight(cfg)
    return build(cfg, cached=False)[1].model


def _adapted(model) -> dict[str, dict[str, torch.Size]]:
    """module -> {lora_A: shape, lora_B: shape} of every LoRA-adapted module."""
    out = {}
    for n, p in model.named_parameters():
        if m := re.fullmatch(r"trunk\.(.+)\.(lora_[AB])\.default\.weight", n):
            out.setdefault(m.group(1), {})[m.group(2)] = p.shape
    return out


def _check_lora(model, expected: set[str], width):
    groups = model.param_groups()
    adapted = _adapted(model)
    assert set(adapted) == expected
    for name, shapes in adapted.items():
        base = model.get_submodule(f"trunk.{name}").get_base_layer()
        n_in, n_out = width(base)
        assert shapes["lora_A"] == (R, n_in) and shapes["lora_B"] == (n_out, R)
    trunk = {n: p for n, p in model.named_parameters() if n.startswith("trunk.")}
    lora = sum(p.numel() for n, p in trunk.items() if groups[n] == "adapter")
    assert lora == sum(R * sum(width(model.get_submodule(f"trunk.{m}").get_base_layer())) for m in expected)
    assert all(p.requires_grad == (groups[n] == "adapter") for n, p in trunk.items())  # the trunk's own: all frozen
    assert {groups[n] for n, p in model.named_parameters() if p.requires_grad} == {"adapter", "input", "output"}


def test_lora_on_gpt2_adapts_the_fused_and_output_projections(tiny):
    model = _model(tiny_cfg(tiny, "gpt2", "variant=lora", f"peft.r={R}"))
    def conv(m):
        return (m.weight.shape[0], m.weight.shape[1])  # GPT-2's Conv1D stores (in, out)
    _check_lora(model, {f"h.{i}.attn.{p}" for i in (0, 1) for p in ("c_attn", "c_proj")}, conv)
    assert _adapted(model)["h.0.attn.c_attn"] == {"lora_A": (R, 32), "lora_B": (96, R)}  # r x (32 + 96)


def test_lora_on_a_tiny_llama_through_trunk_auto(llama):
    model = _model(compose_cfg("trunk=auto", f"trunk.path={llama}", *FAST, "variant=lora", f"peft.r={R}"))
    def linear(m):
        return (m.in_features, m.out_features)
    _check_lora(model, {f"layers.{i}.self_attn.{p}_proj" for i in (0, 1) for p in "qkvo"}, linear)
    assert _adapted(model)["layers.0.self_attn.k_proj"] == {"lora_A": (R, 16), "lora_B": (8, R)}  # one kv head of 8


def test_lora_on_bert_leaves_the_feed_forward_output_alone(tiny):
    model = _model(tiny_cfg(tiny, "bert", "variant=lora", f"peft.r={R}"))
    parts = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense")
    assert set(_adapted(model)) == {f"encoder.layer.{i}.{p}" for i in (0, 1) for p in parts}


def test_fpt_lora_trains_fpts_groups_and_the_adapters(tiny):
    model = _model(tiny_cfg(tiny, "gpt2", "variant=fpt_lora"))
    assert model.trained_groups() == {"ln", "pos", "input", "output", "adapter"}


def test_ln_tuning_bitfit_ia3_train_what_they_name(tiny):
    ln = _model(tiny_cfg(tiny, "gpt2", "variant=ln_tuning"))
    trained = {n for n, p in ln.named_parameters() if p.requires_grad and n.startswith("trunk.")}
    assert trained == {f"trunk.{m}.ln_tuning_layers.default.{w}" for m in ("h.0.ln_1", "h.0.ln_2", "h.1.ln_1", "h.1.ln_2", "ln_f")
                       for w in ("weight", "bias")}
    bit = _model(tiny_cfg(tiny, "gpt2", "variant=bitfit"))
    trained = {n for n, p in bit.named_parameters() if p.requires_grad and n.startswith("trunk.")}
    assert trained == {n for n, _ in bit.named_parameters() if n.startswith("trunk.") and n.endswith(".bias")}
    assert len(trained) == 2 * 6 + 1  # per block: ln_1, c_attn, c_proj, ln_2, c_fc, mlp.c_proj; and ln_f
    ia3 = _model(tiny_cfg(tiny, "bert", "variant=ia3"))
    scaled = {n.removeprefix("trunk.").removesuffix(".ia3_l.default") for n, p in ia3.named_parameters() if "ia3_l" in n}
    assert scaled == {f"encoder.layer.{i}.{p}" for i in (0, 1) for p in ("attention.self.key", "attention.self.value", "output.dense")}


@pytest.mark.slow
def test_lora_trains_slim_evals_and_exports_a_merged_model(tiny, tmp_path):
    from fpt.models.adapters import merged_trunk

    cfg = tiny_cfg(tiny, "gpt2", "variant=lora", "trainer.precision=32-true", "optim.lr=3e-3", "trunk.dropout=0.0",
                   "trainer.max_steps=40", "trainer.val_check_interval=20")
    res = train(cfg, tmp_path)
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "best.ckpt")
    kept = {k.removeprefix("model.") for k in ckpt["state_dict"]}
    assert kept == {n for n, p in build(cfg, cached=False)[1].model.named_parameters() if p.requires_grad}
    assert res["params_used"] == res["params_trainable"]  # LoRA's A counts although B starts at zero
    out = evaluate(str(tmp_path / "checkpoints" / "best.ckpt"))
    assert out["test/acc"] == pytest.approx(res["test/acc"], abs=1e-7)
    from fpt.run.train import restore

    _, _, lit = restore(ckpt)
    model = lit.model.eval()
    assert any(float(lit.model.get_parameter(f"trunk.h.{i}.attn.c_attn.lora_B.default.weight").abs().sum()) > 0 for i in (0, 1))
    x, mask = torch.randn(3, model.spec.seq_len, model.spec.token_dim), torch.ones(3, model.spec.seq_len, dtype=torch.bool)
    with torch.no_grad():
        before = model(x, mask)
        merged = merged_trunk(model.trunk)
        assert not any("lora" in n or "base_layer" in n for n, _ in merged.named_parameters())
        assert torch.allclose(model(x, mask), before, atol=1e-5)  # merged weights compute the same function


def _err(args, capsys, tmp_path):
    code, _, err = run_fpt(capsys, *args, f"hydra.run.dir={tmp_path / 'run'}")
    lines = [ln for ln in err.strip().splitlines() if ln.strip() and not ln.startswith("note:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.slow
def test_peft_bad_input_is_one_line(tiny, llama, tmp_path, capsys):
    assert "peft.r must be a positive integer, got 0" in _err(["train", "variant=lora", "peft.r=0"], capsys, tmp_path)
    assert "does not apply to model.kind=lstm" in _err(["train", "variant=lora", "model=lstm"], capsys, tmp_path)
    assert "unknown peft.method 'lorax'; choose one of: none, lora, ia3, ln_tuning, bitfit" in _err(["train", "peft.method=lorax"], capsys, tmp_path)
    # every block tensor claimed as ffn: no attention projection to adapt
    line = _err(["train", "trunk=auto", f"trunk.path={llama}", "variant=lora", r"+trunk.groups.ffn=[layers\..*]"], capsys, tmp_path)
    assert "found no attention projection" in line
    t5 = _err(["train", "trunk=t5", f"trunk.path={tiny['t5']}", "variant=bitfit"], capsys, tmp_path)
    assert "has no biases" in t5
