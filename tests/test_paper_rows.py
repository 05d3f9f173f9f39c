"""Every row means what the paper meant: the scratch transformer, the paper's input layer, leak-free bit
tasks, short runs that keep their weights, honest parameter counts, visible truncation, one output-only regime."""

import json

import numpy as np
import pytest
import torch

from fpt.models.freeze import count_params, count_used
from fpt.run.train import build, train
from fpt.tasks.bits import TEST, VAL, BitMemory, batch_seeds, set_seed
from tests.helpers import compose_cfg, run_fpt, tiny_cfg


# --- the "Full" row is a transformer trained from scratch --------------------------------------------
def test_scratch_trains_every_tensor_but_the_token_table_of_a_random_trunk(tiny, capsys):
    code, out, err = run_fpt(capsys, "inspect", "variant=scratch", "trunk=gpt2", f"trunk.path={tiny['gpt2']}")
    assert code == 0, err
    rows = [ln.split() for ln in out.splitlines() if ln.endswith(("trainable", "frozen"))]
    frozen = {r[0] for r in rows if r[-1] == "frozen"}
    assert frozen == {"trunk.wte.weight"}
    assert {r[0] for r in rows if r[-1] == "trainable"} >= {"trunk.h.0.attn.c_attn.weight", "trunk.h.1.mlp.c_fc.weight"}


@pytest.mark.slow
def test_scratch_results_say_random_init_and_nothing_frozen(tiny, tmp_path):
    res = train(tiny_cfg(tiny, "gpt2", "variant=scratch", "trainer.max_steps=4", "trainer.val_check_interval=2"), tmp_path)
    assert res["init"] == "random" and res["freeze"] == []
    cfg = compose_cfg("variant=scratch", "task=cifar10")
    assert cfg.model.depth == 3 and cfg.label == "full transformer (scratch)"  # the paper's 3 blocks on CIFAR
    assert compose_cfg("variant=scratch").model.depth is None
    assert compose_cfg("variant=full").label == "finetuned pretrained"


# --- the paper's input layer ------------------------------------------------------------------------
def test_input_layer_is_orthogonal_with_the_papers_gain_and_followed_by_dropout(tiny):
    _, lit = build(tiny_cfg(tiny, "gpt2", "task=bit_memory", "task.n_bits=40", "task.patch=8", "task.n_strings=2"))
    w = lit.model.input.weight.detach()  # (hidden 32, token dim 8)
    assert torch.allclose(w.T @ w, 1.41**2 * torch.eye(8), atol=1e-5)
    assert lit.model.input_drop.p == 0.1
    _, lit = build(tiny_cfg(tiny, "gpt2", "model.input_gain=1.0", "model.input_dropout=0.0"))
    w = lit.model.input.weight.detach()
    assert torch.allclose(w.T @ w, torch.eye(1), atol=1e-5) and lit.model.input_drop.p == 0.0


# --- no overlap between training and evaluation data ----------------------------------------------------
def test_training_batches_never_use_a_validation_or_test_seed():
    steps = np.arange(100_000)
    held_out = {set_seed(VAL, d) for d in (1234, 0, 1, 7)} | {set_seed(TEST, d) for d in (1234, 0, 1, 7)}
    for seed in range(10):
        keys = batch_seeds(seed, steps)
        assert len(np.unique(keys)) == len(steps)  # every step its own batch
        assert not held_out & set(keys.tolist())
        assert not np.any(keys % 4 != 0)  # the train domain, by construction
    assert set_seed(VAL, 1234) % 4 == VAL and set_seed(TEST, 1234) % 4 == TEST
    assert not set(batch_seeds(0, steps[:1000], rank=1).tolist()) & set(batch_seeds(0, steps).tolist())  # ranks apart


def test_bit_memory_training_examples_are_never_validation_or_test_examples():
    task = BitMemory(n_bits=50, patch=10, val_size=500, test_size=500)
    held = set()
    for loader in (task.val_dataloader(), task.test_dataloader()):
        for b in loader:
            held |= {row.numpy().tobytes() for row in b["x"].flatten(1)}
    for seed in range(3):
        task.seed = seed
        stream = iter(task.train_dataloader())
        for _ in range(300):
            x = next(stream)["x"].flatten(1)
            assert not held & {row.numpy().tobytes() for row in x}


# --- short runs keep their weights -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def short_run(tiny, tmp_path_factory):
    d = tmp_path_factory.mktemp("short")
    res = train(tiny_cfg(tiny, "gpt2", "trainer.max_steps=20", "trainer.val_check_interval=100"), d)
    return d, res


@pytest.mark.slow
def test_a_run_shorter_than_its_validation_interval_validates_and_checkpoints_at_its_last_step(short_run):
    d, res = short_run
    assert res["steps"] == 20 and res["val/acc"] is not None
    assert (d / "checkpoints" / "best.ckpt").is_file() and (d / "checkpoints" / "last.ckpt").is_file()
    rows = (d / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    val_steps = [r.split(",")[header.index("step")] for r in rows[1:] if r.split(",")[header.index("val/acc")]]
    assert val_steps == ["19"] or val_steps == ["20"]


@pytest.mark.slow
def test_a_short_run_works_with_eval_and_analyze(short_run, capsys):
    d, res = short_run
    code, out, err = run_fpt(capsys, "eval", f"ckpt={d / 'checkpoints' / 'best.ckpt'}")
    assert code == 0, err
    assert f"test/acc {res['test/acc']:.4f}" in out
    code, out, err = run_fpt(capsys, "analyze", "attention", f"run={d}", "n=8", "examples=1")
    assert code == 0, err
    assert (d / "analysis" / "attention_stats.csv").is_file()


@pytest.mark.slow
def test_a_run_ending_between_evaluations_validates_at_its_end(tiny, tmp_path):
    res = train(tiny_cfg(tiny, "gpt2", "trainer.max_steps=25", "trainer.val_check_interval=10", "stop_at_val_acc=null"), tmp_path)
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    val = [r for r in rows[1:] if r.split(",")[header.index("val/acc")]]
    assert len(val) == 3 and res["steps"] == 25  # steps 10, 20 and the last


# --- honest parameter counts --------------------------------------------------------------------------------
def test_params_used_leaves_out_position_rows_the_task_never_reaches(tiny, short_run):
    _, res = short_run
    _, lit = build(tiny_cfg(tiny, "gpt2"))
    trainable, _ = count_params(lit.model)
    # tiny GPT-2: 64 positions x 32; bit XOR reaches 10 of them
    assert trainable - count_used(lit.model) == (64 - 10) * 32
    assert res["params_used"] == trainable - 54 * 32 and res["params_trainable"] == trainable


def test_minilm_on_bit_xor_uses_a_small_share_of_its_trainable_values():
    _, lit = build(compose_cfg("trainer.accelerator=cpu"))
    trainable, _ = count_params(lit.model)
    assert trainable == 208_898
    # input 384+384, output 384*2+2, 10 of 512 position rows, token-type row 0 of 2, 13 LayerNorms
    assert count_used(lit.model) == 768 + 770 + 10 * 384 + 384 + 13 * 2 * 384


# --- the Linformer row projects to model.k rows, 256 as in the Linformer paper ------------------------------------
def test_linformer_projects_keys_and_values_to_model_k_rows(tiny):
    from fpt.errors import FPTError
    from fpt.models.build import build_model
    from fpt.config.sections import validate
    from fpt.tasks.spec import TaskSpec

    spec, small = TaskSpec(seq_len=40, token_dim=3, num_classes=2), ("model=linformer", "model.hidden=16", "model.heads=4")
    assert compose_cfg("variant=linformer").model.k == 256 and compose_cfg("variant=linformer_cpu").model.k == 256
    for k, rows in [(8, 8), (32, 32), (256, 40)]:  # k >= the task's 40 tokens: a full-rank (40, 40) projection
        attn = build_model(tiny_cfg(tiny, "gpt2", *small, f"model.k={k}"), spec).trunk.net.net.layers[0][0].fn
        assert attn.proj_k.shape == attn.proj_v.shape == (40, rows)
    with pytest.raises(FPTError, match=r"model\.k must be a positive integer, got 0$"):
        validate(tiny_cfg(tiny, "gpt2", *small, "model.k=0"))


# --- one regime for output-only runs ----------------------------------------------------------------------------
def test_output_only_runs_keep_the_trunk_in_eval_mode_while_training(tiny):
    _, lit = build(tiny_cfg(tiny, "gpt2", "variant=output_only", "features.cache=false"))
    lit.model.train()
    assert lit.model.output.training and not lit.model.trunk.training and not lit.model.input_drop.training
    _, lit = build(tiny_cfg(tiny, "gpt2"))
    lit.model.train()
    assert lit.model.trunk.training


# --- training accuracy of the selected checkpoint (paper Table 7) -------------------------------------------
def test_results_hold_train_accuracy_of_the_selected_checkpoint(short_run):
    d, res = short_run
    assert 0.0 <= res["train/acc"] <= 1.0
    assert json.loads((d / "results.json").read_text())["train/acc"] == res["train/acc"]


# --- long inputs are never cut silently -------------------------------------------------------------------------
@pytest.mark.slow
def test_a_run_that_cuts_sequences_records_how_much_and_warns(tiny, tmp_path, capsys):
    from fpt.tasks.listops import ListOps

    ListOps.write_data(tmp_path / "data", train_size=64, val_size=16, test_size=16, min_len=70, max_len=200, max_depth=6)
    res = train(tiny_cfg(tiny, "gpt2", "task=listops", f"data.root={tmp_path / 'data'}", "trainer.max_steps=2",
                         "trainer.val_check_interval=2"), tmp_path / "run")
    cut = res["truncation"]
    assert cut["max_len"] == 64  # the tiny trunk's positions
    assert cut["train"]["examples_cut"] == 1.0 and 0.2 < cut["train"]["tokens_kept"] < 1.0
    err = capsys.readouterr().err
    assert sum("warning: 100% of the training examples are cut to 64 tokens" in ln for ln in err.splitlines()) == 1
    res = train(tiny_cfg(tiny, "gpt2", "task=listops", f"data.root={tmp_path / 'data'}", "data.max_len=32",
                         "trainer.max_steps=2", "trainer.val_check_interval=2"), tmp_path / "run32")
    assert res["truncation"]["max_len"] == 32  # data.max_len: the same inputs for every trunk
    assert train(tiny_cfg(tiny, "gpt2", "trainer.max_steps=2"), tmp_path / "xor")["truncation"] is None
