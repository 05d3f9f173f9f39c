"""The `fpt` command: one argument convention for every subcommand, --help, --cfg, plain progress in logs.

Most tests call `fpt.cli.main` in-process; the first runs the real command in a subprocess, as a user types it.
"""

import json
import os
import re

import pytest
import yaml

from fpt.cli import COMMANDS
from fpt.config import command_line
from fpt.errors import FPTError
from tests.helpers import FAST, run_fpt, run_fpt_process


@pytest.mark.slow
def test_train_as_typed_then_eval_reproduces_it(tiny, tmp_path):
    """The real command: out= is the run directory; a log file gets plain progress lines and nothing that misleads
    (no model summary, whose FLOPs column reads 0; no Lightning lines about loading the checkpoint it tests); eval
    run=DIR re-tests."""
    run_dir = tmp_path / "run"
    shown = [a for a in FAST if "progress_bar" not in a and "model_summary" not in a]  # stderr is a pipe: plain lines
    p, _ = run_fpt_process("train", "task=bit_xor", "freeze=attn,ffn", "trunk=gpt2", f"trunk.path={tiny['gpt2']}", *shown,
               "trainer.max_steps=20", "trainer.val_check_interval=10", "trainer.log_every_n_steps=5", "stop_at_val_acc=null",
               f"out={run_dir}")
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads((run_dir / "results.json").read_text())
    assert res["freeze"] == ["attn", "ffn"] and res["steps"] == 20
    assert re.search(rf"test/acc {res['test/acc']:.4f} .* \(the tested checkpoint: step {res['best_step']}\)", p.stdout)
    assert "\r" not in p.stderr
    progress = [ln for ln in p.stderr.splitlines() if ln.startswith("step ")]
    assert [ln.split()[1] for ln in progress if "train/loss" in ln] == ["5/20", "10/20", "15/20", "20/20"]
    assert all(re.search(r"train/loss \d\.\d{4} .* [\d.]+ steps/s$", ln) for ln in progress if "train/loss" in ln)
    assert sum("validation: val/acc" in ln for ln in progress) == 2
    said = p.stdout + p.stderr
    assert re.match(r"trainable [\d,]+ \|\| all [\d,]+ \|\| trainable% [\d.]+$", p.stdout.splitlines()[0])
    for noise in ("FLOPs", "Total params", "Restoring states", "Loaded model weights", "weights_only", "model summary"):
        assert noise not in said, (noise, said[-3000:])
    assert len(p.stdout.splitlines()) == 2 and all(ln.startswith(("step ", "note: precision", "`Trainer.fit` stopped"))
                                             for ln in p.stderr.splitlines()), p.stderr
    p, _ = run_fpt_process("eval", f"run={run_dir}")
    assert p.returncode == 0, p.stderr[-2000:]
    assert f"test/acc {res['test/acc']:.4f}" in p.stdout



@pytest.mark.slow
def test_ddp_as_typed_reruns_the_command_per_rank_and_tests_once_on_rank_0(tiny, tmp_path):
    """trainer.strategy=ddp: Lightning starts rank 1 by running the command line again (both ranks reach the test);
    the process group closes on both, rank 0 tests on one device and writes the one results.json."""
    run_dir = tmp_path / "run"
    shown = [a for a in FAST if "progress_bar" not in a]
    p, _ = run_fpt_process("train", "task=bit_xor", "trunk=gpt2", f"trunk.path={tiny['gpt2']}", *shown,
                           "trainer.max_steps=10", "trainer.val_check_interval=5", "trainer.devices=2",
                           "trainer.strategy=ddp", "eval.train_acc=false", f"out={run_dir}")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "MEMBER: 2/2" in p.stderr  # two ranks did run
    res = json.loads((run_dir / "results.json").read_text())
    assert res["steps"] == 10 and res["status"] == "ok"
    q, _ = run_fpt_process("eval", f"run={run_dir}")
    assert q.returncode == 0, q.stderr[-2000:]
    assert f"test/acc {res['test/acc']:.4f}" in q.stdout

def test_inspect_lists_norms_positions_input_output_as_trainable(tiny, capsys):
    code, out, err = run_fpt(capsys, "inspect", "trunk=gpt2", f"trunk.path={tiny['gpt2']}", "freeze=attn,ffn")
    assert code == 0, err[-2000:]
    lines = out.strip().splitlines()
    trainable = {ln.split()[0] for ln in lines[:-2] if ln.endswith("trainable")}
    expected = {"input.weight", "input.bias", "output.weight", "output.bias", "trunk.wpe.weight", "trunk.ln_f.weight", "trunk.ln_f.bias"}
    expected |= {f"trunk.h.{i}.ln_{j}.{w}" for i in (0, 1) for j in (1, 2) for w in ("weight", "bias")}
    assert trainable == expected
    assert re.fullmatch(r"trainable [\d,]+ \|\| all [\d,]+ \|\| trainable% [\d.]+", lines[-2])
    # bit XOR reaches 10 of the 64 position rows: input 64 + wpe 10 x 32 + 5 LayerNorms x 64 + output 66
    assert lines[-1].startswith("used by this task 770 of 2,498 trainable")


@pytest.mark.parametrize("cmd", list(COMMANDS))
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_answers_help_with_its_options_and_an_example(cmd, flag, capsys):
    code, out, err = run_fpt(capsys, cmd, flag)
    assert code == 0 and not err, err
    assert out.startswith(f"usage: fpt {cmd}") and "\nwrites: " in out and f"example:\n  fpt {cmd}" in out
    assert ("config groups (GROUP=NAME):\n  task " in out) == (cmd in ("train", "inspect", "sweep", "bench"))
    if cmd in ("train", "sweep", "inspect"):  # the root options with their defaults and what they allow
        assert re.search(r"\n  optim\.lr=0\.001 +a positive number\n", out) and "trunk.init=pretrained" in out


def test_report_help_is_help_not_a_missing_directory(capsys):
    code, out, _ = run_fpt(capsys, "report", "--help")
    assert code == 0 and "no sweep directory" not in out and "out=DIR" in out


def test_cfg_job_prints_the_composed_config_and_trains_nothing(tmp_path, capsys):
    code, out, err = run_fpt(capsys, "train", "task=bit_memory", "freeze=attn,ln", "optim.lr=3e-4", "--cfg", "job", f"out={tmp_path / 'r'}")
    assert code == 0, err
    cfg = yaml.safe_load(out)
    assert cfg["task"]["name"] == "bit_memory" and cfg["freeze"] == ["attn", "ln"] and cfg["optim"]["lr"] == 3e-4
    assert "hydra" not in cfg and not (tmp_path / "r").exists()
    code, out, err = run_fpt(capsys, "train", "--cfg", "all", f"out={tmp_path / 'r'}")
    assert code == 0, err
    assert yaml.safe_load(out)["hydra"]["run"]["dir"] == str(tmp_path / "r")
    code, out, _ = run_fpt(capsys, "train", "--cfg", "job", "--resolve", "seed=3")
    assert yaml.safe_load(out)["trunk"]["init_seed"] == 3  # ${seed}, resolved


def test_one_output_key_for_every_command(tmp_path):
    """out= says where every command writes; the Hydra key of the same meaning works where it applies."""
    one = command_line("train", [f"out={tmp_path}", "seed=1"], writes="run", flags=("multirun",))
    assert one.out == str(tmp_path) and one.overrides == ["seed=1"]
    grid = command_line("train", ["--multirun", f"hydra.sweep.dir={tmp_path}", "seed=0,1"], writes="run", flags=("multirun",))
    assert grid.multirun and grid.out == str(tmp_path) and grid.overrides == ["seed=0,1"]
    for cmd in ("analyze", "data", "report"):
        c = command_line(cmd, ["x", f"hydra.run.dir={tmp_path}"], writes="dir", positional="X")
        assert c.out == str(tmp_path) and c.positional == "x"
    home = command_line("analyze", ["attention", "run=~/r", "out=~/a"], writes="dir", positional="TOOL")
    assert home.out == os.path.expanduser("~/a") and home.overrides == [f"run={os.path.expanduser('~/r')}"]
    lists = command_line("analyze", ["attention", "layers=0,5", "heads=1"], writes="dir", positional="TOOL", list_keys=("layers", "heads"))
    assert lists.values() == {"layers": [0, 5], "heads": [1]}
    assert command_line("train", ["freeze=attn,ffn", "hydra.job.chdir=false"], writes="run").overrides == ["freeze=[attn,ffn]", "hydra.job.chdir=false"]
    with pytest.raises(FPTError, match="hydra.sweep.dir applies to sweeps only"):
        command_line("train", ["hydra.sweep.dir=x"], writes="run")


@pytest.mark.slow
def test_multirun_sweeps_keeps_list_syntax_and_writes_under_out(tiny, tmp_path, capsys):
    code, _, err = run_fpt(capsys, "train", "--multirun", "seed=0,1", "freeze=[attn,ffn]", "trunk=gpt2", f"trunk.path={tiny['gpt2']}",
                       *FAST, "trainer.max_steps=4", "trainer.val_check_interval=2", f"out={tmp_path}")
    assert code == 0, err[-2000:]
    results = sorted((json.loads(p.read_text()) for p in tmp_path.glob("*/results.json")), key=lambda r: r["seed"])
    assert [r["seed"] for r in results] == [0, 1] and all(r["freeze"] == ["attn", "ffn"] for r in results)


def test_data_takes_the_task_as_a_word_or_a_key(tmp_path, capsys):
    for args in (["mnist", f"out={tmp_path / 'a'}"], ["task=mnist", f"hydra.run.dir={tmp_path / 'b'}"]):
        code, out, err = run_fpt(capsys, "data", *args, "n_train=12", "n_test=5")
        assert code == 0, err
        assert "wrote 5 file(s) for task mnist" in out
    assert (tmp_path / "a" / "MNIST" / "raw" / "FPT_FIXTURE").is_file() and (tmp_path / "b" / "MNIST" / "raw" / "FPT_FIXTURE").is_file()
