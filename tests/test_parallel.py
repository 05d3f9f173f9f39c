"""The GPU path's options, run on CPU where they can: DDP (ddp_spawn, gloo), bf16 autocast, torch.compile."""

import json

import pytest
import torch

from fpt.checkpoint import load_checkpoint
from fpt.run.train import build, evaluate, train
from fpt.tasks.bits import _Stream
from tests.helpers import tiny_cfg

LEARN = ("freeze=none", "optim.lr=3e-3", "trunk.dropout=0.0", "trainer.val_check_interval=50")


def test_ddp_ranks_draw_different_bit_batches_rank0_the_single_process_ones():
    from fpt.tasks.bits import BitXor

    t = BitXor()
    single = next(iter(_Stream(t.sample, 16, seed=3)))
    r0, r1 = (next(iter(_Stream(t.sample, 16, seed=3, rank=r))) for r in (0, 1))
    assert torch.equal(single["x"], r0["x"])
    assert not torch.equal(r0["x"], r1["x"])


@pytest.mark.slow
def test_cpu_ddp_spawn_two_processes_trains_and_writes_results(tiny, tmp_path):
    """Two gloo processes on CPU: XOR still learned, results.json complete, the replicas end identical."""
    cfg = tiny_cfg(tiny, "gpt2", *LEARN, "trainer.max_steps=300", "trainer.devices=2", "trainer.strategy=ddp_spawn",
                   "trainer.accelerator=cpu")
    res = train(cfg, tmp_path)
    assert res["test/acc"] >= 0.9  # chance 0.5; a single process reaches 0.95+ on this budget
    assert res["steps"] == res["steps_to"]["1.0"] or res["steps"] == 300
    assert res["steps_to"]["0.9"] is not None and res["sec_per_step"] > 0
    assert json.loads((tmp_path / "results.json").read_text()) == res
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == res["steps"]
    # tested once on one device (no sampler padding, no second spawn): what `fpt eval` scores on the same checkpoint
    again = evaluate(res["best_checkpoint"])
    assert (again["test/acc"], again["test/loss"]) == pytest.approx((res["test/acc"], res["test/loss"]), abs=1e-6)


@pytest.mark.slow
def test_bf16_mixed_precision_trains_on_cpu(tiny, tmp_path):
    cfg = tiny_cfg(tiny, "gpt2", *LEARN, "trainer.max_steps=20", "trainer.val_check_interval=10",
                   "trainer.precision=bf16-mixed")
    res = train(cfg, tmp_path)
    assert res["steps"] == 20 and 0.0 <= res["test/acc"] <= 1.0 and res["test/loss"] == res["test/loss"]  # not NaN
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert all(v.dtype == torch.float32 for v in ckpt["state_dict"].values() if v.is_floating_point())  # fp32 master weights


@pytest.mark.slow
def test_compile_gives_the_same_logits_and_checkpoint_keys(tiny):  # about 30 s: inductor compiles C++ on CPU
    fp32 = ("trunk.dropout=0.0", "trainer.precision=32-true")  # exact comparison: bf16 rounds differently when fused
    plain = build(tiny_cfg(tiny, "gpt2", *fp32))[1].model.eval()
    compiled = build(tiny_cfg(tiny, "gpt2", *fp32, "model.compile=true"))[1].model.eval()
    assert set(plain.state_dict()) == set(compiled.state_dict())  # in-place compile: no _orig_mod. prefix
    x, mask = torch.randn(4, 10, 1), torch.ones(4, 10, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, mask), plain(x, mask), rtol=1e-4, atol=1e-5)
