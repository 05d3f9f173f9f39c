"""The trained-from-scratch baselines: the paper's LN-LSTM, LSTM*, the plain LSTM and the Linformer."""

import re

import pytest
import torch
import torch.nn.functional as F
from omegaconf import open_dict

from fpt.models.baselines import LSTM_GROUPS, LNLSTMCell
from fpt.checkpoint import load_checkpoint
from fpt.errors import FPTError
from fpt.models.linformer import LINFORMER_GROUPS
from fpt.models.build import build_model
from fpt.run.train import build, restore, train
from fpt.tasks.base import TaskSpec
from tests.helpers import tiny_cfg

SEQ = TaskSpec(seq_len=40, vocab_size=17, pad_id=0, num_classes=10, readout="last", truncatable=True)
FIXED = TaskSpec(seq_len=40, token_dim=3, num_classes=2)
SMALL = {  # model -> overrides for a tiny body
    "lstm": ["model.hidden=16"],
    "lstm_star": ["model.hidden=16", "model.layers=3"],
    "lstm_plain": ["model.hidden=16"],
    "linformer": ["model.hidden=16", "model.heads=4", "model.k=8"],
}


def small(tiny, model: str, *overrides: str):
    return build_model(tiny_cfg(tiny, "gpt2", f"model={model}", *SMALL[model], *overrides), SEQ)


@pytest.mark.slow
@pytest.mark.parametrize("model, star, expected", [
    ("lstm", False, {"rnn", "ln"}),
    ("lstm_star", False, {"rnn", "ln", "pos"}),
    ("lstm_plain", False, {"rnn"}),
    ("lstm_plain", True, {"rnn", "ln", "pos"}),  # plain LSTM*: nn.LSTM layers behind pre-layernorms
    ("linformer", False, {"attn", "ffn", "ln", "pos"}),
])
def test_every_body_tensor_is_in_exactly_one_group(tiny, model, star, expected):
    extra = ["model.residual=true", "model.positions=true", "model.layers=2"] if star else []
    m = small(tiny, model, *extra)
    group_map = LINFORMER_GROUPS if model == "linformer" else LSTM_GROUPS
    names = [n for n, _ in m.trunk.named_parameters()]
    for name in names:
        hits = [g for g, pats in group_map.items() if any(re.fullmatch(p, name) for p in pats)]
        assert hits == [m.trunk_groups[name]], (name, hits)
    assert set(m.trunk_groups.values()) == expected and len(m.trunk_groups) == len(names)
    if model == "linformer":  # the sequence projections belong to attention; every norm to ln
        assert m.trunk_groups["net.net.layers.2.0.fn.proj_k"] == "attn"
        assert {n for n, g in m.trunk_groups.items() if g == "ln"} == {
            *(f"net.net.layers.{i}.{j}.norm.{p}" for i in range(3) for j in (0, 1) for p in ("weight", "bias")),
            "ln_f.weight", "ln_f.bias"}
    if model == "lstm":  # the paper's: 3 layers, each with its three layernorms
        assert sum(g == "ln" for g in m.trunk_groups.values()) == 3 * 3 * 2


def reference_ln_lstm(cell: LNLSTMCell, x: torch.Tensor, p: float = 0.0) -> torch.Tensor:
    """The 2021 LayerNormLSTM written out step by step (zero initial state, gate order i, f, o, g)."""
    def ln(v, norm):
        mu = v.mean(-1, keepdim=True)
        var = ((v - mu) ** 2).mean(-1, keepdim=True)
        return (v - mu) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias

    n = cell.hidden
    h = c = torch.zeros(x.shape[0], n)
    out = []
    for s in range(x.shape[1]):
        pre = ln(x[:, s] @ cell.weight_ih.T + cell.bias_ih, cell.ln_ih) + ln(h @ cell.weight_hh.T + cell.bias_hh, cell.ln_hh)
        i, f, o = torch.sigmoid(pre[:, :n]), torch.sigmoid(pre[:, n : 2 * n]), torch.sigmoid(pre[:, 2 * n : 3 * n])
        g = torch.tanh(pre[:, 3 * n :])
        c = ln(f * c + i * g, cell.ln_c)
        h = o * torch.tanh(c)
        if p:
            h = F.dropout(h, p, training=True)  # the dropped h is the output and the next state
        out.append(h)
    return torch.stack(out, 1)


def test_ln_lstm_cell_matches_the_written_out_equations():
    torch.manual_seed(0)
    cell = LNLSTMCell(3, 4, dropout=0.5)
    with torch.no_grad():  # gains and biases away from 1/0, so a norm applied in the wrong place shows
        for norm in (cell.ln_ih, cell.ln_hh, cell.ln_c):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 5, 3)
    cell.eval()
    with torch.no_grad():
        assert torch.allclose(cell(x), reference_ln_lstm(cell, x), atol=1e-6)
        assert torch.equal(cell(x), cell(x))  # eval: no dropout, deterministic
        cell.train()
        torch.manual_seed(1)
        got = cell(x)
        torch.manual_seed(1)
        want = reference_ln_lstm(cell, x, p=0.5)
        assert torch.allclose(got, want, atol=1e-6)
        assert not torch.equal(got, cell(x))  # train: dropout on


def test_paper_lstm_and_lstm_star_shapes(tiny):
    lstm = small(tiny, "lstm")
    assert lstm.trunk.rnn.num_layers == 3 and lstm.trunk.rnn[0].dropout == 0.1 and lstm.trunk.wpe is None
    star = build_model(tiny_cfg(tiny, "gpt2", "model=lstm_star", "model.hidden=8"), SEQ)
    assert len(star.trunk.rnn) == 12 and star.trunk.rnn.residual and star.trunk.wpe.num_embeddings == 40
    plain = small(tiny, "lstm_plain")
    assert isinstance(plain.trunk.rnn, torch.nn.LSTM) and plain.trunk.rnn.num_layers == 3
    old = tiny_cfg(tiny, "gpt2", "model=lstm", "model.hidden=8")
    with open_dict(old):
        del old.model["cell"]  # a run saved before model.cell existed was an nn.LSTM: its checkpoint still fits
    assert isinstance(build_model(old, SEQ).trunk.rnn, torch.nn.LSTM)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["lstm", "lstm_star", "lstm_plain", "linformer"])
@pytest.mark.parametrize("readout", ["last", "mean"])
def test_padding_appended_changes_nothing(tiny, model, readout):
    m = small(tiny, model, f"model.readout={readout}").eval()
    torch.manual_seed(0)
    short, long = torch.randint(1, 17, (1, 7)), torch.randint(1, 17, (1, 30))
    batch = torch.zeros(2, 30, dtype=torch.long)
    batch[0, :7], batch[1] = short[0], long[0]
    mask = batch != 0
    with torch.no_grad():
        alone = m(short, torch.ones_like(short, dtype=torch.bool))
        together = m(batch, mask)
        other_pad = m(torch.where(mask, batch, 5), mask)  # garbage under the mask changes nothing
    assert torch.allclose(alone[0], together[0], atol=1e-5)
    assert torch.allclose(together[0], other_pad[0], atol=1e-5)


def test_linformer_padding_reaches_the_compressed_keys_without_the_mask(tiny):
    m = small(tiny, "linformer").eval()
    x = torch.randint(1, 17, (1, 30))
    mask = torch.ones(1, 30, dtype=torch.bool)
    mask[:, 7:] = False
    with torch.no_grad():
        masked = m(x, mask)
        for layer in m.trunk.net.net.layers:  # without the hooks the pads' keys and values leak in
            layer[0].fn.to_k._forward_hooks.clear()
            layer[0].fn.to_v._forward_hooks.clear()
        assert not torch.allclose(m(x, mask), masked, atol=1e-4)


def test_linformer_k_is_capped_and_max_len_checked(tiny):
    m = build_model(tiny_cfg(tiny, "gpt2", "model=linformer", "model.hidden=16", "model.heads=4", "model.k=1000"), SEQ)
    assert m.trunk.net.net.layers[0][0].fn.proj_k.shape == (40, 40) and m.trunk.wpe.num_embeddings == 40
    m = build_model(tiny_cfg(tiny, "gpt2", "model=linformer", "model.hidden=16", "model.heads=4", "model.max_len=64"), SEQ)
    assert m.trunk.net.net.layers[0][0].fn.proj_v.shape == (64, 64) and m.trunk.wpe.num_embeddings == 64
    with pytest.raises(FPTError, match=r"^model=linformer: the task has 40 tokens but model.max_len=32; "):
        build_model(tiny_cfg(tiny, "gpt2", "model=linformer", "model.hidden=16", "model.heads=4", "model.max_len=32"), SEQ)


@pytest.mark.slow
@pytest.mark.parametrize("model, option, needle", [
    ("lstm", "model.dropout=1.0", "model.dropout must be in [0, 1), got 1.0"),
    ("lstm", "model.layers=0", "model.layers must be a positive integer, got 0"),
    ("lstm", "model.hidden=0", "model.hidden must be a positive integer, got 0"),
    ("lstm", "model.cell=gru", "model.cell must be ln or plain, got 'gru'"),
    ("linformer", "model.depth=0", "model.depth must be a positive integer, got 0"),
    ("linformer", "model.heads=5", "model.heads must be a positive integer dividing model.hidden=16, got 5"),
    ("linformer", "model.k=0", "model.k must be a positive integer, got 0"),
    ("linformer", "model.dropout=-0.1", "model.dropout must be in [0, 1), got -0.1"),
])
def test_bad_options_are_one_line_errors(tiny, model, option, needle):
    """Each model kind's options, checked by its schema when the config is composed (not by the builder)."""
    from fpt.config.sections import validate

    with pytest.raises(FPTError) as e:
        validate(tiny_cfg(tiny, "gpt2", f"model={model}", *SMALL[model], option))
    assert str(e.value).endswith(needle) and "\n" not in str(e.value)


@pytest.mark.slow
@pytest.mark.parametrize("model, freeze", [("lstm", "ln"), ("lstm_star", "none"), ("linformer", "none")])
def test_short_run_trains_every_tensor_but_the_frozen(tiny, tmp_path, model, freeze):
    cfg = tiny_cfg(tiny, "gpt2", f"model={model}", *SMALL[model], f"freeze={freeze}",
                   "trainer.max_steps=6", "trainer.val_check_interval=3")
    _, before = build(cfg)
    res = train(cfg, tmp_path)
    assert res["model"] == cfg.model.kind and res["trunk"] is None and res["steps"] == 6
    for key in ("val/acc", "test/acc", "test/loss", "train/acc", "params_total", "wall_seconds"):
        assert res[key] is not None, key
    frozen = {n for n, p in before.model.named_parameters() if not p.requires_grad}
    assert (res["params_trainable"] == res["params_total"]) == (freeze == "none")
    _, _, after = restore(load_checkpoint(tmp_path / "checkpoints" / "last.ckpt"))
    b, a = before.model.state_dict(), after.model.state_dict()
    changed = {n for n, _ in before.model.named_parameters() if not torch.equal(b[n], a[n])}
    groups = before.model.param_groups()
    assert frozen == {n for n, g in groups.items() if g in ([] if freeze == "none" else [freeze])}
    assert changed == {n for n, _ in before.model.named_parameters()} - frozen


@pytest.mark.slow
def test_linformer_learns_bit_xor(tiny, tmp_path):
    cfg = tiny_cfg(tiny, "gpt2", "model=linformer", "model.hidden=32", "model.heads=4", "model.dropout=0.0",
                   "model.input_dropout=0.0", "optim.lr=3e-3", "trainer.max_steps=300", "trainer.val_check_interval=25",
                   "stop_at_val_acc=0.9")  # seed 0: val/acc 0.95 at step 125 (~3 s on 2 idle cores)
    res = train(cfg, tmp_path)
    assert res["test/acc"] >= 0.75 and res["steps"] <= 300  # chance is 0.5
