"""Extensions that live in the user's own code: a folder given with --config-dir (its yamls join the packaged ones,
its modules are imported from it), an installed plugin (entry-point group fpt.plugins), and the trust check: a
checkpoint may name only what this command registered.
"""

import json
import subprocess
import sys
import textwrap

import pytest

from fpt.config import command_line, compose
from fpt.config.extensions import add_config_dir, import_modules, reset
from fpt.config.kinds import KINDS
from fpt.config.trust import check_trusted
from fpt.errors import FPTError
from tests.helpers import FAST, ROOT, run_fpt

TASK_YAML = """\
impl: mine:Mine
name: mine
batch_size: 8
n: 64
"""
TASK_PY = '''\
"""The sign of a sequence's sum: 8 tokens of one feature, 2 classes (a task of one's own, outside the package)."""
import torch
from torch.utils.data import DataLoader, TensorDataset

from fpt.config.schema import Count
from fpt.tasks.base import Task, TaskOptions, TaskSpec


class MineOptions(TaskOptions):
    n: Count = 64


def collate(rows):
    return dict(zip(("x", "mask", "y"), map(torch.stack, zip(*rows))))


class Mine(Task):
    Options = MineOptions
    spec = TaskSpec(seq_len=8, token_dim=1, num_classes=2)

    def _loader(self, seed):
        x = torch.randn(self.options.n, 8, 1, generator=torch.Generator().manual_seed(seed))
        y = (x.sum((1, 2)) > 0).long()[:, None]
        return DataLoader(TensorDataset(x, torch.ones(x.shape[:2], dtype=torch.bool), y), self.batch_size, collate_fn=collate)

    def train_dataloader(self):
        return self._loader(1 + self.seed)

    def val_dataloader(self):
        return self._loader(1000)

    def test_dataloader(self):
        return self._loader(2000)
'''
MODEL_YAML = """\
# @package _global_
model:
  kind: mine_lstm
  impl: mine_kinds  # imported before the config is checked: it registers model.kind mine_lstm
  cell: plain
  hidden: 16
  layers: 1
  dropout: 0.0
  residual: false
  positions: false
  readout: null
  input_gain: 1.41
  input_dropout: 0.1
  compile: false
"""
KIND_PY = """\
from dataclasses import replace

from fpt.config.kinds import register
from fpt.models.baselines import LSTM

register(replace(LSTM, name="mine_lstm"))  # a kind of one's own: here the packaged LSTM under another name
"""
SHORT = [a for a in FAST if not a.startswith("task.")] + ["trainer.max_steps=4", "trainer.val_check_interval=2",
                                                           "stop_at_val_acc=null", "eval.train_acc=false"]


@pytest.fixture
def own(tmp_path):
    """A folder of one's own outside the repository: task/mine.yaml + mine.py, model/mine_lstm.yaml + mine_kinds.py."""
    root = tmp_path / "own"
    for path, text in {"task/mine.yaml": TASK_YAML, "mine.py": TASK_PY, "model/mine_lstm.yaml": MODEL_YAML,
                       "mine_kinds.py": KIND_PY}.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    yield root
    reset()  # the kinds its modules registered leave with it


def test_a_task_of_ones_own_trains_and_its_checkpoint_is_refused_without_its_folder(own, tiny, tmp_path, capsys, monkeypatch):
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # mine.py is found through the folder, not the working directory
    run = tmp_path / "run"
    code, out, err = run_fpt(capsys, "train", "--config-dir", own, "task=mine", "trunk=gpt2", f"trunk.path={tiny['gpt2']}",
                             *SHORT, f"out={run}")
    assert code == 0, err[-3000:]
    res = json.loads((run / "results.json").read_text())
    assert res["task"] == "mine" and res["steps"] == 4
    code, out, err = run_fpt(capsys, "eval", f"run={run}", f"--config-dir={own}")
    assert code == 0, err[-3000:]
    assert f"test/acc {res['test/acc']:.4f}" in out
    code, out, err = run_fpt(capsys, "eval", f"run={run}")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "refusing checkpoint" in err and "it names task 'mine', which is not a registered task" in err
    assert "nothing was imported" in err and "--config-dir DIR" in err


def test_a_model_kind_of_ones_own_is_known_while_its_folder_is_added(own):
    ckpt = {"task": {"name": "bit_xor", "impl": "fpt.tasks.bits:BitXor"}, "model": {"kind": "mine_lstm"}, "trunk": {}}
    add_config_dir(own)
    cfg = compose(["model=mine_lstm"])
    assert cfg.model.impl == "mine_kinds" and "mine_lstm" not in KINDS  # imported only when a config is checked
    from fpt.run.preflight import preflight

    assert preflight(cfg).model.kind == "mine_lstm" and KINDS["mine_lstm"].trunk is False
    check_trusted(ckpt, "run/best.ckpt")
    reset()
    assert "mine_lstm" not in KINDS
    with pytest.raises(FPTError, match=r"unknown model.kind 'mine_lstm' \(known: fpt, lstm, .*--config-dir DIR"):
        check_trusted(ckpt, "run/best.ckpt")


def test_the_folders_yamls_join_the_groups_and_their_messages(own, tmp_path, capsys):
    code, out, _ = run_fpt(capsys, "train", "--help", "-cd", own)
    assert code == 0 and "mine" in next(ln for ln in out.splitlines() if ln.strip().startswith("task "))
    code, _, err = run_fpt(capsys, "train", "--config-dir", own, "task=nope")
    assert code == 2 and "unknown task 'nope'; choose one of: " in err and ", mine, " in err
    code, _, err = run_fpt(capsys, "train", "task=mine")  # another command: the folder is not added any more
    assert code == 2 and "unknown task 'mine'" in err
    code, out, _ = run_fpt(capsys, "inspect", "--config-dir", own, "task=mine", "--cfg", "job")
    assert code == 0 and "impl: mine:Mine" in out
    (tmp_path / "clash" / "task").mkdir(parents=True)
    (tmp_path / "clash" / "task" / "bit_xor.yaml").write_text("impl: evil:X\nname: bit_xor\n")
    for args, needle in [((f"--config-dir={tmp_path / 'clash'}",), "task/bit_xor.yaml has the name of a task in the "
                                                                     "packaged configs; give yours another name"),
                         (("--config-dir", tmp_path / "nowhere"), "no such directory"),
                         (("--config-dir", tmp_path), "holds none of task/, trunk/, model/, trainer/, logger/, variant/, experiment/"),
                         (("--config-dir",), "--config-dir needs a folder")]:
        code, _, err = run_fpt(capsys, "train", *args)
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, (args, err)


def test_every_command_line_takes_the_flag(own):
    for cmd in ("train", "eval", "inspect", "bench", "sweep", "analyze", "data", "export", "report", "predict"):
        reset()
        command_line(cmd, ["--config-dir", str(own)])
        assert "mine" in compose(["task=mine"]).task.name


PLUGIN_INIT = """\
from pathlib import Path

from fpt.config.methods import PeftMethod, register_methods

config_dir = Path(__file__).parent / "configs"  # its task/ and model/ yamls join the search path
register_methods(PeftMethod("plug_peft", adapt=lambda trunk, groups, section, unused: {}, injects=False))
"""
PLUGIN_SCRIPT = """
import contextlib, io, json, sys
from fpt.cli import main

def fpt(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return [code, out.getvalue(), err.getvalue()]

said = {"help": fpt("train", "--help"), "inspect": fpt("inspect", "task=plugtask", "model=plug_lstm"),
        "peft": fpt("train", "task=plugtask", "model=plug_lstm", "peft.method=plug_peft")}
from fpt.config.trust import check_trusted
check_trusted({"task": {"name": "plugtask", "impl": "myplug.task:Mine"}, "model": {"kind": "plug_lstm"}}, "x.ckpt")
print(json.dumps(said))
"""


def test_an_installed_plugin_registers_its_configs_kinds_and_methods(tmp_path):
    """A fake distribution on a sys.path entry: importlib.metadata finds its entry_points.txt, nothing is installed."""
    site = tmp_path / "site"
    files = {"myplug-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: myplug\nVersion: 0.1\n",
             "myplug-0.1.dist-info/entry_points.txt": "[fpt.plugins]\nmyplug = myplug\n",
             "myplug/__init__.py": PLUGIN_INIT, "myplug/task.py": TASK_PY, "myplug/kinds.py": KIND_PY.replace("mine_lstm", "plug_lstm"),
             "myplug/configs/task/plugtask.yaml": TASK_YAML.replace("mine:Mine", "myplug.task:Mine").replace("name: mine", "name: plugtask"),
             "myplug/configs/model/plug_lstm.yaml": MODEL_YAML.replace("mine_lstm", "plug_lstm").replace("mine_kinds", "myplug.kinds")}
    for path, text in files.items():
        (site / path).parent.mkdir(parents=True, exist_ok=True)
        (site / path).write_text(textwrap.dedent(text))
    env = {"PYTHONPATH": f"{site}:{ROOT}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-c", PLUGIN_SCRIPT], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    said = json.loads(p.stdout.strip().splitlines()[-1])
    assert "plugtask" in next(ln for ln in said["help"][1].splitlines() if ln.strip().startswith("task "))
    code, out, err = said["inspect"]
    assert code == 0 and "rnn" in out, err[-2000:]  # the plugin's kind (an LSTM) built for the plugin's task
    code, out, err = said["peft"]
    assert code == 2 and "peft.method=plug_peft adapts a pretrained trunk; it does not apply to model.kind=plug_lstm" in err


def test_a_model_yaml_naming_a_module_that_does_not_import_is_one_line(own, capsys):
    (own / "model" / "broken.yaml").write_text(MODEL_YAML.replace("mine_kinds", "no_such_module"))
    add_config_dir(own)
    with pytest.raises(FPTError, match=r"model/broken.yaml: model.impl: no_such_module cannot be imported: "
                                       r"ModuleNotFoundError"):
        import_modules()


@pytest.mark.slow
def test_a_sweep_on_joblib_runs_ones_own_task_and_kind_in_its_worker_processes(own, tmp_path):
    """The workers are this command too: they add its folders again before each run (fpt.run.launch)."""
    from tests.helpers import run_fpt_process

    (tmp_path / "elsewhere").mkdir()
    p, _ = run_fpt_process("sweep", "--config-dir", str(own), "task=mine", "model=mine_lstm", "seed=0,1",
                           "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "trainer.max_steps=4",
                           "trainer.val_check_interval=2", "trainer.enable_progress_bar=false", "eval.train_acc=false",
                           "stop_at_val_acc=null", f"out={tmp_path / 'sweep'}", cwd=tmp_path / "elsewhere")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "2 of 2 runs finished" in p.stdout, p.stdout
