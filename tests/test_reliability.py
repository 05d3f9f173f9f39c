"""Runs to trust on a shared cluster: preemption and exact resume, one writer per run directory,
checkpoints that choose no code, resumes that never lie, a full disk."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from fpt.checkpoint import load_checkpoint
from fpt.cli import main as fpt_main
from fpt.errors import FPTError, Preempted
from fpt.run.train import train
from tests.helpers import FAST, compose_cfg, tiny_cfg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAME = ("val/acc", "test/acc", "test/loss", "train/acc", "steps", "steps_to", "best_step")


@pytest.fixture()
def sigterm_at(monkeypatch):
    """sigterm_at(step): this process gets SIGTERM right after training step `step` (once)."""
    from fpt.run.lit import FPTModule

    real = FPTModule.on_train_batch_end
    when = {"step": None}

    def hooked(self, outputs, batch, batch_idx):
        real(self, outputs, batch, batch_idx)
        if self.global_step == when["step"]:
            when["step"] = None
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(FPTModule, "on_train_batch_end", hooked)
    return lambda step: when.update(step=step)


def _preempt_and_resume(cfg, tmp_path, sigterm_at, step):
    whole = train(cfg, tmp_path / "whole")
    sigterm_at(step)
    with pytest.raises(Preempted, match=f"preempted at step {step}"):
        train(cfg, tmp_path / "cut")
    assert json.loads((tmp_path / "cut" / "results.json").read_text())["status"] == "preempted"
    assert load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.ckpt")["global_step"] == step  # the step in flight kept
    again = train(cfg, tmp_path / "cut")
    for key in SAME:
        assert whole[key] == again[key], (key, whole[key], again[key])
    assert again["resumed"] == [{"step": step, "changed": {}}]
    return whole


@pytest.mark.slow
@pytest.mark.parametrize("step", [11, 17])
def test_sigterm_between_checkpoints_then_rerun_gives_the_uninterrupted_numbers_bits(tiny, tmp_path, sigterm_at, step):
    cfg = tiny_cfg(tiny, "gpt2", "trunk.dropout=0.1", "stop_at_val_acc=null", "trainer.max_steps=30",
                   "trainer.val_check_interval=7")
    _preempt_and_resume(cfg, tmp_path, sigterm_at, step)


def _file_task_cfg(tiny, *overrides):
    """A tiny-GPT-2 config for a task read from files (no val_size/test_size counts of the bit tasks)."""
    fast = [a for a in FAST if not a.startswith(("task.val_size", "task.test_size"))]
    return compose_cfg("trunk=gpt2", f"trunk.path={tiny['gpt2']}", *fast, *overrides)


@pytest.mark.slow
def test_exact_resume_mid_epoch_on_an_augmented_image_task(tiny, tmp_path, sigterm_at):
    from fpt.tasks.images import Cifar10

    Cifar10.write_data(tmp_path / "data", n_train=200, n_test=64)
    cfg = _file_task_cfg(tiny, "task=cifar10", f"data.root={tmp_path / 'data'}", "task.patch=8", "stop_at_val_acc=null",
                   "trainer.max_steps=30", "trainer.val_check_interval=7", "eval.train_examples=64")
    _preempt_and_resume(cfg, tmp_path, sigterm_at, 17)  # 12 batches an epoch: step 17 is in the middle of the second


@pytest.mark.slow
def test_exact_resume_mid_epoch_on_a_sequence_task(tiny, tmp_path, sigterm_at):
    from fpt.tasks.listops import ListOps

    ListOps.write_data(tmp_path / "data", train_size=160, val_size=32, test_size=32, min_len=5, max_len=40, max_depth=3)
    cfg = _file_task_cfg(tiny, "task=listops", f"data.root={tmp_path / 'data'}", "trunk.dropout=0.1", "stop_at_val_acc=null",
                   "trainer.max_steps=25", "trainer.val_check_interval=6")
    _preempt_and_resume(cfg, tmp_path, sigterm_at, 13)  # 10 batches an epoch


@pytest.mark.slow
def test_sigterm_on_minilm_exits_143_and_the_rerun_matches_the_uninterrupted_run(tmp_path):
    """The real trunk, the real command, a real SIGTERM between two checkpoints."""
    def cmd(d):
        return [sys.executable, "-m", "fpt.cli", "train", "task=bit_xor", "trunk=minilm", *FAST, "stop_at_val_acc=null",
                "trainer.max_steps=70", "trainer.val_check_interval=25", f"hydra.run.dir={d}"]

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    whole = subprocess.run(cmd(tmp_path / "whole"), capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert whole.returncode == 0, whole.stderr[-2000:]
    proc = subprocess.Popen(cmd(tmp_path / "cut"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    last = tmp_path / "cut" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 600
    while not last.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # some steps past the step-25 checkpoint
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=300)[1]
    assert proc.returncode == 143, err[-2000:]
    cut = json.loads((tmp_path / "cut" / "results.json").read_text())
    assert cut["status"] == "preempted" and 25 < cut["steps"] < 70, cut
    assert sum("preempted at step" in ln for ln in err.splitlines()) == 1
    assert "weights_only" not in err  # fpt says what last.ckpt holds: the whole state
    again = subprocess.run(cmd(tmp_path / "cut"), capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"note: resuming from {last} at step {cut['steps']}" in again.stderr
    assert "Restor" not in again.stderr and "Loaded model weights" not in again.stderr
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("whole", "cut"))
    for key in SAME:
        assert a[key] == b[key], (key, a[key], b[key], cut["steps"])


# --- one writer per run directory -----------------------------------------------------------------------------
HOLD = "import sys, time; from fpt.run.runlock import RunLock; l = RunLock(sys.argv[1]).__enter__(); print('held', flush=True); time.sleep(60)"


@pytest.mark.slow
def test_a_second_process_on_a_live_run_directory_is_refused_naming_the_holder(tiny, tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        code = fpt("train", "trunk=gpt2", f"trunk.path={tiny['gpt2']}", *FAST, "trainer.max_steps=4",
                   f"hydra.run.dir={tmp_path / 'run'}")
        err = "\n".join(errors(capsys.readouterr().err))
        assert code == 2
        assert len(err.splitlines()) == 1 and f"in use by pid {holder.pid} on host" in err, err
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".fpt.lock"]  # nothing written
    finally:
        holder.kill()
        holder.wait()
    # the holder died without releasing: its lock is gone with it
    res = train(tiny_cfg(tiny, "gpt2", "trainer.max_steps=4", "trainer.val_check_interval=2"), tmp_path / "run")
    assert res["status"] == "ok"
    header, *rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert all(len(r.split(",")) == len(header.split(",")) for r in rows)
    assert "\r" not in (tmp_path / "run" / "metrics.csv").read_text()


# --- checkpoints that choose no code -------------------------------------------------------------------------------
def errors(err: str) -> list[str]:
    """The lines of stderr that are not notes (the precision chosen, a cut sequence, ...)."""
    return [ln for ln in err.strip().splitlines() if ln.strip() and not ln.startswith("note:")]


def fpt(*args) -> int:
    """`fpt ...` in-process: its exit code (SystemExit included)."""
    try:
        return fpt_main([str(a) for a in args]) or 0
    except SystemExit as e:
        return int(e.code or 0)


def _crafted(tmp_path, **config) -> str:
    path = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {}, "global_step": 0, "fpt": {"config": config, "fingerprint": [0.0, 0.0]}}, path)
    return str(path)


@pytest.mark.parametrize("config, needle", [
    ({"task": {"name": "bit_xor", "impl": "this:s"}, "model": {"kind": "fpt"}}, "names the code 'this:s'"),
    ({"task": {"name": "zen", "impl": "this:s"}, "model": {"kind": "fpt"}}, "not a registered task"),
    ({"task": {"name": "bit_xor", "impl": "fpt.tasks.bits:BitXor"}, "model": {"kind": "fpt"},
      "trunk": {"package": "antigravity", "arch": "bert"}}, "trunk.package 'antigravity'"),
    ({"task": {"name": "bit_xor", "impl": "fpt.tasks.bits:BitXor"}, "model": {"kind": "os.system"}}, "unknown model.kind"),
])
def test_a_checkpoint_naming_code_is_refused_and_nothing_is_imported(tmp_path, capsys, config, needle):
    sys.modules.pop("this", None)
    sys.modules.pop("antigravity", None)
    code = fpt("eval", f"ckpt={_crafted(tmp_path, **config)}")
    out = capsys.readouterr()
    assert code == 2 and needle in out.err and len(out.err.strip().splitlines()) == 1, out.err
    assert "this" not in sys.modules and "antigravity" not in sys.modules
    assert "Beautiful is better than ugly" not in out.out + out.err


def test_a_checkpoint_with_pickled_code_is_refused_without_advice_to_run_it(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"x": Evil()}, tmp_path / "evil.ckpt")
    with pytest.raises(FPTError) as e:
        load_checkpoint(tmp_path / "evil.ckpt")
    assert "weights_only" not in str(e.value) and "will not open it" in str(e.value)


# --- resumes that never lie -----------------------------------------------------------------------------------------
def _snapshot(d):
    return {p.relative_to(d): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_a_resume_that_changes_the_optimisation_is_refused_and_changes_no_file(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "trunk=gpt2", f"trunk.path={tiny['gpt2']}", *FAST, "stop_at_val_acc=null", "trainer.val_check_interval=2",
            f"hydra.run.dir={run}"]
    assert fpt(*args, "trainer.max_steps=4") == 0
    before = _snapshot(run)
    for change in ("optim.lr=0.01", "task.batch_size=8", "trainer.precision=bf16-mixed", "optim.betas=[0.8,0.9]"):
        capsys.readouterr()
        assert fpt(*args, "trainer.max_steps=4", change) == 2
        err = "\n".join(errors(capsys.readouterr().err))
        assert len(err.splitlines()) == 1 and "cannot resume" in err and change.split("=")[0] in err, err
        assert _snapshot(run) == before
    # the same command again: the recorded results, nothing written
    capsys.readouterr()
    assert fpt(*args, "trainer.max_steps=4") == 0
    assert "finished already" in capsys.readouterr().out and _snapshot(run) == before
    # a longer run continues it, and says so
    assert fpt(*args, "trainer.max_steps=6") == 0
    res = json.loads((run / "results.json").read_text())
    assert res["steps"] == 6 and res["resumed"] == [{"step": 4, "changed": {"trainer.max_steps": [4, 6]}}]


# --- a full disk -------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_full_disk_is_one_line_removes_its_temporary_file_and_keeps_the_old_checkpoint(tiny, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    args = ["train", "trunk=gpt2", f"trunk.path={tiny['gpt2']}", *FAST, "stop_at_val_acc=null", "trainer.val_check_interval=2",
            f"hydra.run.dir={run}"]
    assert fpt(*args, "trainer.max_steps=2") == 0
    old = (run / "checkpoints" / "last.ckpt").read_bytes()
    results = (run / "results.json").read_bytes()
    real = os.fsync

    def full(fd):
        if os.fstat(fd).st_size > 10_000:  # checkpoints, not the small files
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", full)
    capsys.readouterr()
    code = fpt(*args, "trainer.max_steps=6")
    err = "\n".join(errors(capsys.readouterr().err))
    assert code == 2 and len(err.splitlines()) == 1 and "no space left" in err and "MiB needed" in err, err
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == old and (run / "results.json").read_bytes() == results
    assert not [p for p in run.rglob("*.tmp*")]


def test_out_of_memory_is_one_line_with_the_batch_size(tiny, tmp_path, monkeypatch, capsys):
    from fpt.run.lit import FPTModule

    def oom(self, batch, batch_idx):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(FPTModule, "training_step", oom)
    code = fpt("train", "trunk=gpt2", f"trunk.path={tiny['gpt2']}", *FAST, "task.batch_size=4096",
               f"hydra.run.dir={tmp_path / 'run'}")
    err = "\n".join(errors(capsys.readouterr().err))
    assert code == 2 and len(err.splitlines()) == 1 and "out of memory with task.batch_size=4096" in err, err


def test_every_epoch_has_its_own_order_and_augmentation_and_lightning_can_set_it(tmp_path):
    from lightning.fabric.utilities.data import _set_sampler_epoch  # private, on purpose: if Lightning changes how it finds set_epoch, this fails first

    from fpt.tasks.images import Cifar10

    Cifar10.write_data(tmp_path, n_train=64, n_test=16)
    task = Cifar10(batch_size=16, data={"root": str(tmp_path)})
    task.setup("fit")
    loader = task.train_dataloader()
    epochs = []
    for epoch in (0, 1, 0):
        _set_sampler_epoch(loader, epoch)  # what Lightning calls before each epoch
        epochs.append(torch.cat([b["x"] for b in loader]))
    assert torch.equal(epochs[0], epochs[2]) and not torch.equal(epochs[0], epochs[1])
