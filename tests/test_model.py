"""The FPT wrapper: readouts, padding invariance, input layers, the LSTM baselines, length limits."""

import pytest
import torch

from fpt.errors import FPTError
from fpt.models.build import build_model
from fpt.tasks.base import TaskSpec
from tests.helpers import tiny_cfg

BITS = TaskSpec(seq_len=60, token_dim=10, num_classes=2, readout="last_k", k=10, targets_per_position=10)
SEQ = TaskSpec(seq_len=40, vocab_size=17, pad_id=0, num_classes=10, readout="last", truncatable=True)


def test_last_k_readout_gives_one_logit_pair_per_bit(tiny):
    model = build_model(tiny_cfg(tiny, "gpt2"), BITS).eval()
    x = torch.randn(3, 60, 10)
    out = model(x, torch.ones(3, 60, dtype=torch.bool))
    assert out.shape == (3, 100, 2)
    # target j of position i is logit row i*10+j, computed from hidden state -10+i alone
    h = model._body_forward(model.trunk, model.input(x), torch.ones(3, 60, dtype=torch.bool))
    row = model.output(h[:, -10 + 4]).view(3, 10, 2)
    assert torch.allclose(out[:, 40:50], row, atol=1e-6)


def test_input_layer_is_orthogonal_linear_or_embedding(tiny):
    lin = build_model(tiny_cfg(tiny, "gpt2"), BITS).input
    w = lin.weight  # (hidden 32, dim 10): orthogonal columns of norm 1.41 (the 2021 code's gain)
    assert torch.allclose(w.T @ w, 1.41**2 * torch.eye(10), atol=1e-5)
    emb = build_model(tiny_cfg(tiny, "bert"), SEQ).input
    assert isinstance(emb, torch.nn.Embedding) and emb.padding_idx == 0 and emb.num_embeddings == 17


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["gpt2", "bert", "t5"])
@pytest.mark.parametrize("readout", ["last", "mean"])
def test_padded_batch_predicts_as_the_example_alone(tiny, arch, readout):
    model = build_model(tiny_cfg(tiny, arch, f"model.readout={readout}"), SEQ).eval()
    torch.manual_seed(0)
    short = torch.randint(1, 17, (1, 7))
    long = torch.randint(1, 17, (1, 30))
    batch = torch.zeros(2, 30, dtype=torch.long)
    batch[0, :7], batch[1] = short[0], long[0]
    mask = batch != 0
    with torch.no_grad():
        alone = model(short, torch.ones_like(short, dtype=torch.bool))
        together = model(batch, mask)
        other_pad = model(torch.where(mask, batch, 5), mask)  # garbage under the mask changes nothing
    assert torch.allclose(alone[0], together[0], atol=1e-5)
    assert torch.allclose(together[0], other_pad[0], atol=1e-5)


def test_lstm_baselines_build_and_run(tiny):
    lstm = build_model(tiny_cfg(tiny, "gpt2", "model=lstm", "model.hidden=16"), SEQ)
    assert lstm.trunk.rnn.num_layers == 3 and all(p.requires_grad for p in lstm.parameters())
    star = build_model(tiny_cfg(tiny, "gpt2", "model=lstm_star", "model.hidden=16"), SEQ)
    assert len(star.trunk.rnn) == 12 and star.trunk.wpe.num_embeddings == 40
    assert set(star.param_groups().values()) == {"input", "rnn", "ln", "pos", "output"}
    x = torch.randint(1, 17, (2, 40))
    assert star(x, x != 0).shape == (2, 1, 10)


def test_task_longer_than_the_trunk_is_refused_or_cut(tiny):
    fixed = TaskSpec(seq_len=100, token_dim=1, num_classes=2)
    with pytest.raises(FPTError, match="100 tokens but trunk .* has 64 positions"):
        build_model(tiny_cfg(tiny, "gpt2"), fixed)
    cut = build_model(tiny_cfg(tiny, "gpt2"), TaskSpec(seq_len=100, vocab_size=5, pad_id=0, num_classes=2, truncatable=True))
    assert cut.spec.seq_len == 64
    assert build_model(tiny_cfg(tiny, "t5"), fixed).spec.seq_len == 100  # relative positions: no limit


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["gpt2", "bert", "t5"])
def test_grad_checkpointing_gives_the_same_gradients(tiny, arch):
    grads = []
    for flag in ("false", "true"):
        torch.manual_seed(0)
        model = build_model(tiny_cfg(tiny, arch, f"model.grad_checkpointing={flag}", "trunk.dropout=0.0"), SEQ)
        x = torch.randint(1, 17, (2, 40))
        model(x, x != 0).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 4
    for n in grads[0]:
        assert torch.allclose(grads[0][n], grads[1][n], atol=1e-5), n
