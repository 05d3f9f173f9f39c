"""The `fpt` command in subprocesses, as a user types it."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FAST

FPT = [sys.executable, "-m", "fpt.cli"]
ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd=None, env=None):
    t0 = time.perf_counter()
    e = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    p = subprocess.run([*FPT, *args], capture_output=True, text=True, cwd=cwd or ROOT, env=e, timeout=600)
    return p, time.perf_counter() - t0


def assert_one_line_error(p, elapsed, *needles):
    assert p.returncode != 0
    assert elapsed < 10, elapsed
    err = p.stderr.strip()
    assert "Traceback" not in p.stderr and len(err.splitlines()) == 1, p.stderr
    for n in needles:
        assert n in err, (n, err)


def test_train_as_typed_then_eval_reproduces_it(tiny, tmp_path):
    run_dir = tmp_path / "run"
    p, _ = run("train", "task=bit_xor", "freeze=attn,ffn", "trunk=gpt2", f"trunk.path={tiny['gpt2']}", *FAST,
               "trainer.max_steps=20", "trainer.val_check_interval=10", f"hydra.run.dir={run_dir}")
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads((run_dir / "results.json").read_text())
    assert res["freeze"] == ["attn", "ffn"] and res["steps"] == 20
    assert re.search(rf"test/acc {res['test/acc']:.4f}", p.stdout)
    p, _ = run("eval", f"ckpt={run_dir / 'checkpoints' / 'best.ckpt'}")
    assert p.returncode == 0, p.stderr[-2000:]
    assert f"test/acc {res['test/acc']:.4f}" in p.stdout


def test_inspect_lists_norms_positions_input_output_as_trainable(tiny):
    p, _ = run("inspect", "trunk=gpt2", f"trunk.path={tiny['gpt2']}", "freeze=attn,ffn")
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stdout.strip().splitlines()
    trainable = {ln.split()[0] for ln in lines[:-2] if ln.endswith("trainable")}
    expected = {"input.weight", "input.bias", "output.weight", "output.bias", "trunk.wpe.weight", "trunk.ln_f.weight", "trunk.ln_f.bias"}
    expected |= {f"trunk.h.{i}.ln_{j}.{w}" for i in (0, 1) for j in (1, 2) for w in ("weight", "bias")}
    assert trainable == expected
    assert re.fullmatch(r"trainable [\d,]+ \|\| all [\d,]+ \|\| trainable% [\d.]+", lines[-2])
    # bit XOR reaches 10 of the 64 position rows: input 64 + wpe 10 x 32 + 5 LayerNorms x 64 + output 66
    assert lines[-1].startswith("used by this task 770 of 2,498 trainable")


@pytest.mark.parametrize(
    "args, needles",
    [
        (["train", "freeze=atn"], ["unknown freeze group 'atn'", "attn, ffn, ln, pos, emb, input, output"]),
        (["train", "task=nope"], ["unknown task 'nope'", "bit_memory", "bit_xor"]),
        (["train", "trunk=nope"], ["unknown trunk 'nope'", "minilm"]),
        (["train", "optim.lrr=1"], ["optim.lrr"]),
        (["train", "optim.lr=-1"], ["optim.lr must be a positive number"]),
        (["train", "task.batch_size=0"], ["task.batch_size must be a positive integer"]),
        (["frobnicate"], ["unknown command 'frobnicate'"]),
        (["eval"], ["missing ckpt=PATH"]),
        (["eval", "ckpt=/nonexistent/best.ckpt"], ["no checkpoint at /nonexistent/best.ckpt"]),
    ],
)
def test_bad_input_is_one_line_fast_no_traceback(args, needles):
    p, elapsed = run(*args)
    assert_one_line_error(p, elapsed, *needles)


def test_hub_trunk_without_network_says_how_to_use_local_weights():
    # an endpoint that can never resolve stands in for "no network", on any machine
    p, elapsed = run("train", "trunk=gpt2", env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "https://hub.invalid"})
    assert_one_line_error(p, elapsed, "could not load trunk 'gpt2'", "trunk.path=DIR", "no network")


def test_multirun_sweeps_and_keeps_list_syntax(tiny, tmp_path):
    p, _ = run("train", "--multirun", "seed=0,1", "freeze=[attn,ffn]", "trunk=gpt2", f"trunk.path={tiny['gpt2']}", *FAST,
               "trainer.max_steps=4", "trainer.val_check_interval=2", f"hydra.sweep.dir={tmp_path}")
    assert p.returncode == 0, p.stderr[-2000:]
    results = sorted((json.loads(p.read_text()) for p in tmp_path.glob("*/results.json")), key=lambda r: r["seed"])
    assert [r["seed"] for r in results] == [0, 1] and all(r["freeze"] == ["attn", "ffn"] for r in results)
