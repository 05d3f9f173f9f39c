"""`fpt bench` on a tiny trunk: one JSON line per variant, honest FLOPs, the bare loop is the same model."""

import json
import statistics

import pytest
from omegaconf import OmegaConf

from fpt.cli import main
from fpt.errors import FPTError
from tests.conftest import FAST, compose_cfg


@pytest.fixture(scope="module")
def bench_lines(tiny, tmp_path_factory) -> dict[str, dict]:
    """One `fpt bench` run on the tiny GPT-2, as typed on the command line; {variant: its JSON line}."""
    out = tmp_path_factory.mktemp("bench") / "bench.jsonl"
    args = ["bench", "trunk=gpt2", f"trunk.path={tiny['gpt2']}", *FAST, "bench.batch=4", "bench.seq_len=16",
            "bench.steps=2", "bench.warmup=1", f"bench.out={out}"]
    assert main(args) == 0
    lines = [json.loads(ln) for ln in out.read_text().splitlines()]
    return {r["variant"]: r for r in lines}


def test_one_line_per_variant_with_positive_numbers(bench_lines):
    assert sorted(bench_lines) == ["bare", "fpt", "full", "lstm"]
    for r in bench_lines.values():
        for key in ("step_ms", "samples_per_s", "peak_mem_bytes", "flops_per_step", "flops_per_s", "mfu"):
            assert r[key] > 0, (r["variant"], key, r[key])
        assert len(r["step_ms_all"]) == 2
        assert r["config"]["seq_len"] == 16 and r["config"]["batch"] == 4 and r["config"]["trunk"] == "gpt2"
        assert r["config"]["device"] == "cpu" and r["config"]["dtype"] == "float32" and r["config"]["threads"] >= 1
        assert r["matmul"]["flops_per_s"] > 0 and r["trunk_bytes"] > 0
    for v in ("fpt", "full", "lstm"):
        assert bench_lines[v]["ckpt_bytes"] > 0
    assert bench_lines["bare"]["ckpt_bytes"] is None


def test_frozen_weights_get_no_weight_gradient_work(bench_lines):
    fpt, full = bench_lines["fpt"], bench_lines["full"]
    assert fpt["params_trainable"] < full["params_trainable"] == full["params_total"] - 64 * 32  # wte never trains
    # a frozen linear layer still passes gradients back (dX) but computes no dW: fewer FLOPs, less memory
    assert fpt["flops_per_step"] < full["flops_per_step"]
    assert fpt["peak_mem_bytes"] < full["peak_mem_bytes"]
    assert fpt["ckpt_bytes"] < full["ckpt_bytes"]
    assert fpt["ckpt_weights_bytes"] < fpt["ckpt_bytes"] / 2  # Adam's two moments per trained tensor are the rest
    per_round = [a / b for a, b in zip(fpt["step_ms_all"], full["step_ms_all"])]  # interleaved: paired round by round
    assert fpt["ratios"]["fpt_full_step"] == pytest.approx(statistics.median(per_round), abs=1e-4)
    assert fpt["targets"]["fpt_full_step"]["met"] == (fpt["ratios"]["fpt_full_step"] <= 0.72)


def test_bare_loop_is_the_same_model(bench_lines):
    # the same batch, the same weights, the dropout RNG seeded alike: the same loss to the last bit
    assert bench_lines["bare"]["loss0"] == bench_lines["fpt"]["loss0"]
    assert bench_lines["full"]["loss0"] == bench_lines["fpt"]["loss0"]  # the same seeded trunk, only freezing differs
    assert bench_lines["bare"]["params_trainable"] == bench_lines["fpt"]["params_trainable"]
    assert bench_lines["bare"]["flops_per_step"] == bench_lines["fpt"]["flops_per_step"]


def test_bare_loop_trains_the_toolkits_tensors(tiny):
    import torch

    from fpt import bench

    opts, overrides = bench.split_args(["trunk=gpt2", f"trunk.path={tiny['gpt2']}", "bench.batch=2", "bench.seq_len=12"])
    cfg = bench.training_config(overrides)
    entries, ref = bench.build_entries(cfg, bench.task_spec(cfg.task, 12), opts, torch.device("cpu"))
    by = {e.name: e for e in entries}
    assert by["bare"].model is by["fpt"].model is ref.model
    ids = lambda opt: sorted(id(p) for g in opt.param_groups for p in g["params"])  # noqa: E731
    assert ids(by["bare"].opt) == ids(by["fpt"].opt) == sorted(id(p) for p in ref.model.parameters() if p.requires_grad)


@pytest.mark.parametrize("option, needle", [
    ("bench.steps=0", "bench.steps"),
    ("bench.batch=abc", "bench.batch"),
    ("bench.warmup=-1", "bench.warmup"),
    ("bench.seq_len=0", "bench.seq_len"),
    ("bench.variants=[fpt,nope]", "unknown bench variant 'nope'"),
    ("bench.variants=[]", "bench.variants is empty"),
    ("bench.nope=1", "unknown bench option 'bench.nope'"),
    ("bench.out=", "bench.out"),
    ("bench.device=tpu", "bench.device"),
    ("bench.seq_len=3", "at least 5"),  # bit_xor reads its last 5 positions
    ("model=lstm", "leave out model="),
])
def test_bad_options_are_one_line_errors(option, needle, capsys):
    assert main(["bench", "task=bit_xor", option]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert needle in err, err


def test_help_names_the_options(capsys):
    assert main(["bench", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"bench.{k}" in out for k in ("batch", "seq_len", "steps", "warmup", "out", "variants", "device"))


def test_task_shapes_come_without_data():
    from fpt.bench import KNOWN_SHAPES, class_spec, task_spec

    spec = task_spec(compose_cfg("task=bit_xor", "data.root=/nonexistent").task, None)
    assert (spec.seq_len, spec.token_dim, spec.k) == (10, 1, 5)
    assert task_spec(compose_cfg("task=bit_xor").task, 32).seq_len == 32
    for name, shape in KNOWN_SHAPES.items():  # the fallback table says what the task classes say (when they build)
        got, _ = class_spec(compose_cfg(f"task={name}", "data.root=/nonexistent").task)
        if got is not None:
            assert {k: getattr(got, k) for k in shape} == shape, name
    missing = OmegaConf.create({"impl": "tasks.not_written_yet:Cifar10", "name": "cifar10"})
    spec = task_spec(missing, None)
    assert (spec.seq_len, spec.token_dim, spec.num_classes) == (64, 48, 10)
    with pytest.raises(FPTError, match="cannot build"):
        task_spec(OmegaConf.create({"impl": "tasks.not_written_yet:Nope", "name": "nope"}), None)


def test_grad_checkpointing_variant_saves_activation_memory(tiny, tmp_path):
    out = tmp_path / "gc.jsonl"
    args = ["bench", "trunk=gpt2", f"trunk.path={tiny['gpt2']}", *FAST, "bench.batch=4", "bench.seq_len=64",
            "bench.steps=1", "bench.warmup=1", "bench.variants=[fpt,fpt_gc]", f"bench.out={out}"]
    assert main(args) == 0
    lines = {r["variant"]: r for r in map(json.loads, out.read_text().splitlines())}
    fpt, gc = lines["fpt"], lines["fpt_gc"]
    assert gc["loss0"] == fpt["loss0"]  # the same model and batch; only backward recomputes
    assert gc["peak_mem_bytes"] < fpt["peak_mem_bytes"]
    assert fpt["ratios"]["gc_peak_mem"] == pytest.approx(fpt["peak_mem_bytes"] / gc["peak_mem_bytes"], abs=1e-4)
