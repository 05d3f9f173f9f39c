"""The fast paths change no answer: bf16 where the hardware has it, frozen weights stored once in bf16,
the last block computed at the read positions only."""

import pytest
import torch

from fpt.errors import FPTError
from fpt.models.build import build_model
from fpt.run.precision import cpu_has_bf16, resolve_precision, trunk_dtype
from fpt.run.train import build, evaluate, train
from fpt.tasks.base import TaskSpec
from tests.helpers import tiny_cfg

BITS = TaskSpec(seq_len=12, token_dim=3, num_classes=2, readout="last_k", k=4)
SEQ = TaskSpec(seq_len=20, vocab_size=17, pad_id=0, num_classes=10, readout="last")


# --- only the work the readout reads ------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["gpt2", "bert"])
@pytest.mark.parametrize("spec", [BITS, SEQ], ids=["last_k", "last"])
def test_the_last_block_at_the_read_positions_gives_the_same_logits(tiny, arch, spec):
    fast = build_model(tiny_cfg(tiny, arch, "trunk.dropout=0.0", "model.input_dropout=0.0"), spec)
    full = build_model(tiny_cfg(tiny, arch, "trunk.dropout=0.0", "model.input_dropout=0.0", "model.last_block_reads_only=false"), spec)
    full.load_state_dict(fast.state_dict())
    assert fast.read_block is not None and full.read_block is None
    g = torch.Generator().manual_seed(0)
    if spec.vocab_size:
        x = torch.randint(1, 17, (5, 20), generator=g)
        x[0, 7:], x[1, 15:] = 0, 0  # right padding: the last real token moves
        mask = x != 0
    else:
        x, mask = torch.randn(5, 12, 3, generator=g), torch.ones(5, 12, dtype=torch.bool)
    for mode in ("eval", "train"):  # train: dropout is 0, the gradient path is the same
        getattr(fast, mode)(), getattr(full, mode)()
        a, b = fast(x, mask), full(x, mask)
        assert torch.allclose(a, b, atol=1e-5), (mode, (a - b).abs().max())
    a.sum().backward()
    assert fast.trunk.get_parameter(next(n for n, p in fast.trunk.named_parameters() if p.requires_grad)).grad is not None


def test_parameter_names_and_checkpoints_do_not_change_with_the_fast_last_block(tiny):
    fast = build_model(tiny_cfg(tiny, "gpt2"), BITS)
    full = build_model(tiny_cfg(tiny, "gpt2", "model.last_block_reads_only=false"), BITS)
    assert list(fast.state_dict()) == list(full.state_dict())


def test_mean_readout_keeps_the_whole_last_block(tiny):
    assert build_model(tiny_cfg(tiny, "bert"), TaskSpec(seq_len=20, vocab_size=17, pad_id=0, num_classes=10, readout="mean")).read_block is None


# --- precision ------------------------------------------------------------------------------------------------
def test_auto_precision_follows_the_hardware_and_an_explicit_value_wins(capsys):
    chosen = resolve_precision({"precision": "auto", "accelerator": "cpu"}, say=True)
    assert chosen == ("bf16-mixed" if cpu_has_bf16() else "32-true")
    assert "note: precision " in capsys.readouterr().err
    assert resolve_precision({"precision": "32-true", "accelerator": "cpu"}) == "32-true"
    assert resolve_precision({"precision": "bf16-mixed", "accelerator": "cpu"}) == "bf16-mixed"


def test_trunk_dtype_bf16_needs_bf16_compute_and_unknown_dtypes_are_refused(tiny):
    with pytest.raises(FPTError, match="needs bf16 compute"):
        trunk_dtype(tiny_cfg(tiny, "gpt2", "trunk.dtype=bf16", "trainer.precision=32-true"))
    assert trunk_dtype(tiny_cfg(tiny, "gpt2", "trainer.precision=32-true")) == "fp32"
    assert trunk_dtype(tiny_cfg(tiny, "gpt2", "trainer.precision=bf16-mixed")) == "bf16"


def test_bf16_storage_halves_the_frozen_trunk_and_keeps_the_trained_tensors_fp32(tiny):
    _, lit32 = build(tiny_cfg(tiny, "gpt2", "trainer.precision=32-true"))
    _, lit16 = build(tiny_cfg(tiny, "gpt2", "trainer.precision=bf16-mixed"))
    frozen = lambda m, dt: sum(p.numel() * p.element_size() for p in m.trunk.parameters() if not p.requires_grad and p.dtype == dt)  # noqa: E731
    assert frozen(lit16.model, torch.bfloat16) * 2 == frozen(lit32.model, torch.float32)
    assert all(p.dtype == torch.float32 for p in lit16.model.parameters() if p.requires_grad)
    assert lit16.fingerprint()["dtype"] == "bfloat16" and lit32.fingerprint()["dtype"] == "float32"


@pytest.mark.slow
def test_a_bf16_run_trains_evaluates_to_the_same_number_and_records_its_precision(tiny, tmp_path):
    res = train(tiny_cfg(tiny, "gpt2", "trainer.precision=bf16-mixed", "trainer.max_steps=20", "trainer.val_check_interval=10"), tmp_path)
    assert res["precision"] == "bf16-mixed" and res["trunk_dtype"] == "bf16"
    out = evaluate(str(tmp_path / "checkpoints" / "best.ckpt"))
    assert out["test/acc"] == pytest.approx(res["test/acc"], abs=1e-7)


def test_gpt2_gelu_runs_fused_with_the_same_outputs_and_the_flag_keeps_transformers_modules(tiny):
    from fpt.trunks.load import load_trunk

    def trunk(fused: bool):
        cfg = tiny_cfg(tiny, "gpt2", "trunk.init=random", f"trunk.fused_gelu={str(fused).lower()}")
        return load_trunk(cfg.trunk).eval()

    fused, plain = trunk(True), trunk(False)
    def kinds(m):
        return sorted({type(a).__name__ for a in m.modules() if "GELU" in type(a).__name__})
    assert kinds(fused) == ["GELUTanh"] and kinds(plain) == ["NewGELUActivation"]
    x = torch.randn(3, 10, fused.config.n_embd, generator=torch.Generator().manual_seed(0)) * 3
    with torch.no_grad():
        a, b = fused(inputs_embeds=x).last_hidden_state, plain(inputs_embeds=x).last_hidden_state
    assert torch.equal(fused.h[0].mlp.c_fc.weight, plain.h[0].mlp.c_fc.weight)  # same init: only the kernel differs
    assert (a - b).abs().max() < 1e-5  # the same function up to float rounding (the module types show the kernel)
