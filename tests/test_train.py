"""Training end to end in-process on tiny trunks: learning, run directory, checkpoints, eval, seeds."""

import csv
import json

import pytest
from omegaconf import OmegaConf
import torch

from fpt.checkpoint import load_checkpoint
from fpt.errors import FPTError
from fpt.run.train import build, evaluate, restore, train
from tests.helpers import tiny_cfg

LEARN = ("freeze=none", "optim.lr=3e-3", "trunk.dropout=0.0", "trainer.max_steps=500", "trainer.val_check_interval=50")


@pytest.fixture(scope="module")
def xor_run(tiny, tmp_path_factory):
    """A tiny GPT-2, fully trained on bit XOR until val accuracy is perfect (or 500 steps)."""
    run_dir = tmp_path_factory.mktemp("xor")
    return run_dir, train(tiny_cfg(tiny, "gpt2", *LEARN), run_dir)


@pytest.mark.slow
def test_bit_xor_accuracy_rises_far_above_chance(xor_run):
    _, res = xor_run
    assert res["test/acc"] >= 0.95  # chance is 0.5
    assert res["steps_to"]["0.9"] <= res["steps"] <= 500
    if res["val/acc"] == 1.0 and res["steps"] < 500:  # stop_at_val_acc=1.0 ends the run once 1.0 holds twice in a row
        assert res["steps"] > res["steps_to"]["1.0"] and res["improving_at_end"] is False


def test_run_directory_holds_config_metrics_results_checkpoints(xor_run):
    run_dir, res = xor_run
    assert json.loads((run_dir / "results.json").read_text()) == res
    for key in ("val/acc", "test/acc", "params_trainable", "params_total", "steps", "wall_seconds"):
        assert res[key] is not None
    assert res["params_trainable"] < res["params_total"]  # wte never trains
    assert res["chance"] == 0.5  # two classes per bit: the plots' chance line
    history = [(int(r["step"]), float(r["val/loss"])) for r in csv.DictReader(open(run_dir / "metrics.csv")) if r.get("val/loss")]
    assert any(v == pytest.approx(res["val/loss"], rel=1e-6) for _, v in history)  # the tested checkpoint's, logged
    import numpy as np

    with np.load(run_dir / "test_examples.npz") as z:  # each test example's share of test/acc, for paired bootstraps
        size = OmegaConf.load(run_dir / "config.yaml").task.test_size
        assert len(z["values"]) == size and z["values"].mean() == pytest.approx(res["test/acc"], abs=1e-6)
    assert res["improving_at_end"] is (False if res["steps"] < 500 else res["improving_at_end"])  # stopped at 1.0: not
    cfg = (run_dir / "config.yaml").read_text()
    assert "freeze: []" in cfg and "${" not in cfg  # resolved
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    loss_rows = [r for r in rows[1:] if r.split(",")[header.index("train/loss")]]
    val_rows = [r for r in rows[1:] if r.split(",")[header.index("val/acc")]]
    assert len(loss_rows) >= res["steps"] // 20 - 1 and len(val_rows) == res["steps"] // 50
    assert (run_dir / "checkpoints" / "best.ckpt").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()


def test_eval_reproduces_the_runs_test_accuracy(xor_run):
    run_dir, res = xor_run
    out = evaluate(str(run_dir / "checkpoints" / "best.ckpt"))
    assert out["test/acc"] == pytest.approx(res["test/acc"], abs=1e-7)
    assert (run_dir / "checkpoints" / "best.eval.json").is_file()


def test_a_run_saved_as_tasks_x_still_loads_and_other_code_is_still_refused(xor_run, tmp_path):
    """Runs saved while tasks/ installed as a top-level package name `tasks.bits:BitXor`: the trust check maps that
    one legacy prefix to fpt.tasks, and refuses anything else as before."""
    import sys

    from fpt.run.resume import check_resume
    from fpt.tasks.base import task_class
    from fpt.tasks.bits import BitXor

    run_dir, res = xor_run
    ckpt = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["fpt"]["config"]["task"]["impl"] == "fpt.tasks.bits:BitXor"
    assert task_class({"impl": "tasks.bits:BitXor"}) is BitXor
    ckpt["fpt"]["config"]["task"]["impl"] = "tasks.bits:BitXor"
    torch.save(ckpt, tmp_path / "legacy.ckpt")
    out = evaluate(str(tmp_path / "legacy.ckpt"))
    assert out["test/acc"] == pytest.approx(res["test/acc"], abs=1e-7)
    assert "tasks" not in sys.modules or not hasattr(sys.modules["tasks"], "bits")  # resolved as fpt.tasks, not a 2nd copy
    saved = dict(ckpt["fpt"]["config"])
    assert check_resume(saved, {**saved, "task": {**saved["task"], "impl": "fpt.tasks.bits:BitXor"}}, run_dir) == {}
    for impl in ("os:system", "tasks.bits:BitMemory", "tasks.os:system", "fpt.tasks.images:Mnist", "tasks.bits.x:BitXor"):
        ckpt["fpt"]["config"]["task"]["impl"] = impl
        torch.save(ckpt, tmp_path / "crafted.ckpt")
        with pytest.raises(FPTError, match="not the registered 'fpt.tasks.bits:BitXor'"):
            evaluate(str(tmp_path / "crafted.ckpt"))


@pytest.mark.slow
def test_fpt_keeps_the_trunk_frozen_and_the_checkpoint_slim(tiny, tmp_path):
    cfg = tiny_cfg(tiny, "gpt2", "trainer.max_steps=20", "trainer.val_check_interval=10")
    _, before = build(cfg)
    res = train(cfg, tmp_path)
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    keys = set(ckpt["state_dict"])
    assert not any(".attn." in k or ".mlp." in k or "wte" in k for k in keys)
    assert {"model.trunk.wpe.weight", "model.trunk.ln_f.weight", "model.input.weight", "model.output.weight"} <= keys
    _, _, after = restore(ckpt)
    b, a = before.state_dict(), after.state_dict()
    assert torch.equal(b["model.trunk.h.0.attn.c_attn.weight"], a["model.trunk.h.0.attn.c_attn.weight"])
    assert not torch.equal(b["model.trunk.wpe.weight"], a["model.trunk.wpe.weight"])  # trained
    assert res["steps"] == 20


@pytest.mark.slow
def test_same_seed_same_numbers_other_seed_other_numbers(tiny, tmp_path):
    args = ("trainer.max_steps=30", "trainer.val_check_interval=15")
    r = [train(tiny_cfg(tiny, "bert", *args, f"seed={s}"), tmp_path / f"r{i}") for i, s in enumerate((5, 5, 6))]
    keys = ("val/acc", "test/acc", "test/loss")
    assert [r[0][k] for k in keys] == [r[1][k] for k in keys]
    assert r[0]["test/loss"] != r[2]["test/loss"]


@pytest.mark.slow
def test_checkpoint_refuses_a_different_frozen_trunk(tiny, tmp_path):
    train(tiny_cfg(tiny, "gpt2", "trunk.init=random", "trainer.max_steps=10", "trainer.val_check_interval=10"), tmp_path)
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "best.ckpt")
    with pytest.raises(FPTError, match="frozen trunk's weights differ"):
        restore(ckpt, ["trunk.init_seed=99"])
    restore(ckpt)  # the same random trunk is rebuilt from its seed


def test_corrupt_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "x.ckpt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(FPTError, match="cannot read checkpoint"):
        load_checkpoint(bad)


@pytest.mark.slow
def test_lstm_and_bit_memory_run_through_the_same_pipeline(tiny, tmp_path):
    cfg = tiny_cfg(tiny, "gpt2", "variant=lstm", "model.hidden=16", "model.layers=2", "task=bit_memory",
                   "task.n_bits=40", "task.patch=8", "trainer.max_steps=6", "trainer.val_check_interval=3")
    res = train(cfg, tmp_path)
    assert res["model"] == "lstm" and res["trunk"] is None and res["lr"] == 3e-4
    assert res["params_trainable"] == res["params_total"]
    assert 0.4 < res["test/acc"] < 1.0


def test_optimizer_holds_trainable_tensors_only_and_no_decay_on_1d(tiny):
    _, lit = build(tiny_cfg(tiny, "gpt2", "optim.weight_decay=0.1"))
    opt = lit.configure_optimizers()
    assert isinstance(opt, torch.optim.AdamW)
    decay, no_decay = opt.param_groups
    trainable = [p for p in lit.model.parameters() if p.requires_grad]
    assert len(decay["params"]) + len(no_decay["params"]) == len(trainable)
    assert all(p.dim() >= 2 for p in decay["params"]) and decay["weight_decay"] == 0.1
    assert all(p.dim() == 1 for p in no_decay["params"]) and no_decay["weight_decay"] == 0.0
    _, lit = build(tiny_cfg(tiny, "gpt2"))
    assert type(lit.configure_optimizers()) is torch.optim.Adam


@pytest.mark.slow
@pytest.mark.parametrize("logger", ["tensorboard", "wandb"])
def test_other_loggers_write_beside_metrics_csv(tiny, tmp_path, logger):
    train(tiny_cfg(tiny, "gpt2", f"logger={logger}", "trainer.max_steps=4", "trainer.val_check_interval=2"), tmp_path)
    assert (tmp_path / "metrics.csv").is_file()
    if logger == "tensorboard":
        assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    else:
        assert list((tmp_path / "wandb").glob("offline-run-*"))
