"""`fpt sweep` through Hydra's launcher plugins (the cluster extra): joblib runs points in parallel processes,
submitit_local as SLURM would (one submitted job each). Every run finishes, results.csv is whole, a run that did
not finish is redone by the next invocation, and the seed-0 protocol's two phases hold."""

import csv
import json

import pytest

from tests.helpers import run_fpt_process


def _fast(tiny):
    return ["trunk=gpt2", f"trunk.path={tiny['gpt2']}", "trainer.max_steps=4", "trainer.val_check_interval=2",
            "trainer.enable_progress_bar=false", "task.val_size=64", "task.test_size=64", "stop_at_val_acc=null"]


def _rows(sweep_dir):
    with open(sweep_dir / "results.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_joblib_runs_every_point_and_the_next_invocation_redoes_an_unfinished_one(tiny, tmp_path):
    grid = ["variant=fpt,frozen_random", "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    p, _ = run_fpt_process("sweep", *grid, *_fast(tiny), f"out={tmp_path}")
    assert p.returncode == 0, p.stderr[-3000:]
    rows = _rows(tmp_path)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"} and all(r["test/acc"] for r in rows)
    (command,) = json.loads((tmp_path / "sweep.json").read_text())["commands"]
    assert command.startswith("fpt sweep variant=fpt,frozen_random seed=0,1 hydra/launcher=joblib") and "out=" not in command
    lost = sorted(tmp_path.glob("*/results.json"))[0]
    lost.unlink()  # as a run killed before it wrote its record
    p, _ = run_fpt_process("sweep", *grid, *_fast(tiny), f"out={tmp_path}")
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("skip (finished)") == 3 and lost.is_file()
    assert len(_rows(tmp_path)) == 4 and {r["status"] for r in _rows(tmp_path)} == {"ok"}


@pytest.mark.slow
def test_submitit_local_keeps_the_seed0_protocols_two_phases(tiny, tmp_path):
    """Phase one: every lr on seed 0; phase two: seed 1 at seed 0's lr only, each point a submitit job."""
    p, _ = run_fpt_process("sweep", "variant=fpt", "optim.lr=1e-4,1e-2", "seed=0,1", "sweep.lr_protocol=seed0",
                           "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", *_fast(tiny), f"out={tmp_path}")
    assert p.returncode == 0, p.stderr[-3000:]
    rows = _rows(tmp_path)
    assert len(rows) == 3 and {r["status"] for r in rows} == {"ok"}
    assert sorted((r["seed"], float(r["lr"])) for r in rows if r["seed"] == "0") == [("0", 1e-4), ("0", 1e-2)]
    assert len([r for r in rows if r["seed"] == "1"]) == 1
    assert any((tmp_path / ".submitit").iterdir())  # the jobs went through submitit


def test_the_slurm_preset_composes_with_the_preemption_signal(capsys):
    from tests.helpers import run_fpt

    code, out, err = run_fpt(capsys, "train", "--multirun", "seed=0,1", "hydra/launcher=slurm",
                             "hydra.launcher.partition=gpu", "--cfg", "hydra")
    assert code == 0, err[-2000:]
    assert "SlurmLauncher" in out and "signal: USR1@90" in out and "partition: gpu" in out
