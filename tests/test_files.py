"""A task yaml's `files:` (fpt/tasks/files.py): missing data is refused before torch is imported, in a second, and the
declaration agrees with the task class's own check (both accept the files `fpt data` writes, both refuse an empty root).
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from fpt.config import compose
from fpt.errors import FPTError
from fpt.tasks.base import task_class, task_options
from fpt.tasks.files import check_files
from tests.helpers import LISTOPS_SMALL, ROOT

# task -> (fixture options for write_data, extra overrides)
FIXTURES = {
    "cifar10": ({"n_train": 20, "n_test": 10}, []),
    "cifar10_lra": ({"n_train": 20, "n_test": 10}, []),
    "mnist": ({"n_train": 20, "n_test": 10}, []),
    "listops": (LISTOPS_SMALL, []),
    "forecast": ({"name": "ETTh2"}, ["data.name=ETTh2"]),
}


def _both(task: str, root, *overrides):
    """(the yaml's check, the class's check) of `task` on data.root=root: None where it passes, else its message."""
    cfg = compose([f"task={task}", f"data.root={root}", *overrides])
    said = []
    for check in (lambda: check_files(cfg), lambda: task_class(cfg.task)(task_options(cfg.task), data=cfg.data).check()):
        try:
            check()
            said.append(None)
        except FPTError as e:
            said.append(str(e))
    return said


@pytest.mark.parametrize("task", FIXTURES)
def test_declared_files_agree_with_the_class_check(task, tmp_path):
    options, overrides = FIXTURES[task]
    task_class(compose([f"task={task}"]).task).write_data(tmp_path / "data", **options)
    assert _both(task, tmp_path / "data", *overrides) == [None, None]
    (tmp_path / "empty").mkdir()
    light, full = _both(task, tmp_path / "empty", *overrides)
    assert light.startswith(f"{task} data missing: ") and str(tmp_path / "empty") in light, light
    assert full is not None


def test_bundled_and_own_files_pass_and_a_null_name_is_left_to_the_class(tmp_path):
    assert _both("uea", tmp_path, "data.name=JapaneseVowels") == [None, None]  # aeon's copy, found without importing aeon
    light, full = _both("uea", tmp_path, "data.name=NoSuchSet")
    assert "uea data missing: NoSuchSet_TRAIN.ts, NoSuchSet_TEST.ts" in light and "NoSuchSet" in full
    assert _both("uea", tmp_path)[0] is None  # data.name=null: the class says task=uea needs data.name
    np.savez(tmp_path / "own.npz", x=np.zeros((10, 3, 2), np.float32), y=np.arange(10) % 2)
    assert _both("custom", tmp_path, f"data.path={tmp_path / 'own.npz'}") == [None, None]
    assert _both("custom", tmp_path, "data.path='~/no/such.npz'")[0].startswith("custom data missing: ")
    assert _both("cifar10", tmp_path, "data.download=true")[0] is None  # it fetches them


# Each refusal as typed, in one fresh process: it must answer before torch (or Lightning) is imported
REFUSALS = {
    "task=cifar10 data.root=missing/": "cifar10 data missing: data_batch_1",
    "task=mnist data.root=missing/": "mnist data missing: train-images-idx3-ubyte",
    "task=listops data.root=missing/": "listops data missing: basic_train.tsv",
    "task=uea data.root=missing/ data.name=Nope": "uea data missing: Nope_TRAIN.ts",
    "task=forecast data.root=missing/ data.name=ETTh9": "forecast data missing: ETTh9.csv",
    "task=custom data.path=missing/x.npz": "custom data missing: missing/x.npz",
    "task=nope": "unknown task 'nope'",
    "trunk=nope": "unknown trunk 'nope'",
    "+nope=1": "unknown option 'nope'",
    "task.nope=1": "Could not override 'task.nope'",
}
SCRIPT = """
import contextlib, io, json, sys, time
from fpt.cli import main
out = {}
for args in json.loads(sys.argv[1]):
    err, t0 = io.StringIO(), time.perf_counter()
    with contextlib.redirect_stderr(err):
        code = main(["train", *args.split()])
    out[args] = [code, err.getvalue(), time.perf_counter() - t0]
print(json.dumps({"runs": out, "heavy": sorted(m for m in ("torch", "lightning", "transformers") if m in sys.modules)}))
"""


def test_refusals_that_need_no_model_answer_before_torch_is_imported(tmp_path):
    p = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(list(REFUSALS))], capture_output=True, text=True,
                       cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["heavy"] == []
    for args, (code, err, seconds) in got["runs"].items():
        assert code == 2 and err.count("\n") == 1 and REFUSALS[args] in err, (args, err)
        assert seconds < 5, (args, seconds)  # ~0.1 s each here, once the first has imported Hydra
