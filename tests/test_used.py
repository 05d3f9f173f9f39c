"""params_used counts what can change the output, exactly: the same for every seed, whatever rounding leaves."""

import pytest
import torch

from fpt.models.freeze import count_params, count_used, used_values
from fpt.run.precision import store_frozen
from fpt.run.train import build
from tests.helpers import compose_cfg, tiny_cfg


def test_bitfit_leaves_out_bert_key_biases_and_keeps_query_and_value_biases(tiny):
    _, lit = build(tiny_cfg(tiny, "bert", "variant=bitfit"))
    used = used_values(lit.model)
    for layer in (0, 1):
        att = f"trunk.encoder.layer.{layer}.attention.self"
        assert not used[f"{att}.key.bias"].any()  # softmax ignores a shift shared by all keys
        assert used[f"{att}.query.bias"].all() and used[f"{att}.value.bias"].all()
    trainable, _ = count_params(lit.model)
    assert count_used(lit.model) == trainable - 2 * 32


def test_bitfit_leaves_out_the_key_slice_of_gpt2_fused_attention_bias(tiny):
    _, lit = build(tiny_cfg(tiny, "gpt2", "variant=bitfit"))
    used = used_values(lit.model)
    for layer in (0, 1):
        bias = used[f"trunk.h.{layer}.attn.c_attn.bias"]  # (3 x 32): query, key, value
        assert bias[:32].all() and not bias[32:64].any() and bias[64:].all()
    trainable, _ = count_params(lit.model)
    assert count_used(lit.model) == trainable - 2 * 32


def test_a_bf16_trunk_counts_as_its_fp32_self_and_stays_untouched(tiny):
    _, lit = build(tiny_cfg(tiny, "gpt2"))
    want = count_used(lit.model)
    store_frozen(lit.model, "bf16")
    before = {n: p.detach().clone() for n, p in lit.model.named_parameters()}
    assert count_used(lit.model) == want
    assert lit.model.compute_dtype == torch.bfloat16 and lit.model.training
    after = dict(lit.model.named_parameters())
    assert all(after[n].dtype == v.dtype and torch.equal(after[n], v) for n, v in before.items())
    assert after["trunk.h.0.attn.c_attn.weight"].dtype == torch.bfloat16


@pytest.mark.slow
@pytest.mark.parametrize("variant, used", [("bitfit", 24_962), ("fpt", 15_746)])
def test_params_used_on_minilm_is_the_same_for_every_seed(variant, used):
    # BitFit: 27,266 trainable less MiniLM's 6 key biases of 384; FPT: see test_paper_rows
    counts = {count_used(build(compose_cfg("trainer.accelerator=cpu", f"variant={variant}", f"seed={s}"))[1].model)
              for s in (0, 1, 2)}
    assert counts == {used}
