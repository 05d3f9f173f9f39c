"""Losing no finished work: kill -9 and resume to the same numbers, atomic checkpoints, NaN stops."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from fpt.checkpoint import atomic_write_bytes, load_checkpoint
from fpt.errors import FPTError
from fpt.run.train import train
from tests.helpers import FAST, tiny_cfg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cmd(tiny, run_dir):
    return [sys.executable, "-m", "fpt.cli", "train", "trunk=gpt2", f"trunk.path={tiny['gpt2']}", *FAST,
            "trunk.dropout=0.1", "stop_at_val_acc=null", "trainer.max_steps=240", "trainer.val_check_interval=10",
            f"hydra.run.dir={run_dir}"]


def _step(ckpt_path) -> int:
    try:
        return int(torch.load(ckpt_path, map_location="cpu", weights_only=True)["global_step"])
    except Exception:  # noqa: BLE001 - not there yet
        return -1


@pytest.mark.slow
def test_sigkill_then_rerun_ends_with_the_uninterrupted_numbers(tiny, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    whole = subprocess.run(_cmd(tiny, tmp_path / "whole"), capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert whole.returncode == 0, whole.stderr[-2000:]

    victim = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(tiny, victim), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
    last = victim / "checkpoints" / "last.ckpt"
    deadline = time.time() + 600
    while _step(last) < 30 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _step(last)
    assert 30 <= killed_at < 240, f"the run was not killed mid-training (last checkpoint at step {killed_at})"
    assert not (victim / "results.json").exists()

    again = subprocess.run(_cmd(tiny, victim), capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    a = json.loads((tmp_path / "whole" / "results.json").read_text())
    b = json.loads((victim / "results.json").read_text())
    for key in ("val/acc", "test/acc", "test/loss", "steps", "steps_to"):
        assert a[key] == b[key], (key, a[key], b[key], killed_at)


def test_atomic_write_keeps_the_old_file_until_the_new_one_is_whole(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    atomic_write_bytes(path, b"old")

    def crash(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)  # dies after writing part of the new file
    with pytest.raises(OSError):
        atomic_write_bytes(path, b"new" * 1000)
    assert path.read_bytes() == b"old"


@pytest.fixture()
def nan_loss(monkeypatch):
    """nan_loss(when): the training loss becomes NaN on the calls where when(n) is true (n counts from 1)."""
    from fpt.run import objectives

    real = objectives.F.cross_entropy

    def poison(when):
        calls = {"n": 0}

        def poisoned(*a, **k):
            calls["n"] += 1
            loss = real(*a, **k)
            return loss * float("nan") if when(calls["n"]) else loss

        monkeypatch.setattr(objectives.F, "cross_entropy", poisoned)

    return poison


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tiny, tmp_path, nan_loss):
    nan_loss(lambda n: n > 25)
    cfg = tiny_cfg(tiny, "gpt2", "stop_at_val_acc=null", "trainer.max_steps=60", "trainer.val_check_interval=10",
                   "trainer.log_every_n_steps=5", "task.val_size=16", "task.test_size=16")
    with pytest.raises(FPTError, match="became NaN/inf.*last good checkpoint"):
        train(cfg, tmp_path)
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] <= 20
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_nan_skip_policy_trains_through_bad_batches(tiny, tmp_path, nan_loss):
    nan_loss(lambda n: n % 3 == 0)
    cfg = tiny_cfg(tiny, "gpt2", "on_nan=skip", "stop_at_val_acc=null", "trainer.max_steps=12", "trainer.val_check_interval=6",
                   "task.val_size=16", "task.test_size=16")
    res = train(cfg, tmp_path)
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert res["status"] == "ok"


@pytest.mark.slow
def test_resuming_with_another_configuration_is_refused_naming_it(tiny, tmp_path):
    train(tiny_cfg(tiny, "gpt2", "trainer.max_steps=4", "trainer.val_check_interval=2"), tmp_path)
    cases = (("freeze=none", "freeze"), ("trunk=bert", "trunk.arch"), ("task=bit_memory task.n_bits=20 task.patch=5", "task.name"),
             ("optim.lr=0.01", "optim.lr"))
    for override, key in cases:
        args = override.split() + ([f"trunk.path={tiny['bert']}"] if override == "trunk=bert" else [])
        cfg = tiny_cfg(tiny, "gpt2", "trainer.max_steps=8", "trainer.val_check_interval=2", *args)
        with pytest.raises(FPTError, match=f"trained with {key}="):
            train(cfg, tmp_path)
