"""What a task declares so the model can build itself from it, and the task base class.

A batch is a dict: `x` (B, T, token_dim) float or (B, T) long token ids, `mask` (B, T) bool
(True = real token), `y` (B, n_targets) long class ids.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
from pydantic import ConfigDict

from fpt.errors import FPTError
from fpt.config.schema import Count, Options, check
from fpt.tasks.spec import READOUTS, TaskSpec  # noqa: F401 - TaskSpec is part of the task API

META_KEYS = ("impl", "name", "paper", "files", "early_stop")  # task yaml keys about the task, not options of its class
# (files: fpt/tasks/files.py; early_stop: the stops a task asks for by default, read by configs/train.yaml)


class TaskOptions(Options):
    """What every task takes. A task's own schema subclasses this, next to its class (`Options = ...`): the one place
    its options' defaults live. The yaml section is checked against it once (`task_options`), when the config is
    composed (fpt.run.preflight) and where the class is built (build_task), and the class gets the checked object."""

    model_config = ConfigDict(frozen=True)  # read, never changed: what a task derives from its options it keeps apart

    batch_size: Count = 16


class Task(pl.LightningDataModule):
    """A LightningDataModule that also declares its TaskSpec and the schema of its options.

    `Task(options)` takes an instance of the class's `Options` (what build_task passes); `Task(**kw)` checks the keyword
    options through that schema first (`BitXor(n_bits=5)`), with the same one-line errors. A task reads its settings
    from `self.options` and repeats no default of its schema in its signature."""

    spec: TaskSpec
    Options: type[Options] = TaskOptions  # the yaml's options (all but META_KEYS), checked before the class is built
    DataOptions: type[Options] | None = None  # `fpt data TASK key=value` options of write_data; None: nothing to write
    options: TaskOptions

    def __init__(self, options: TaskOptions | None = None, *, seed: int = 0, data=None, **kw: Any):
        super().__init__()
        self.options = _options_for(type(self), options, kw)
        self.seed = int(seed)
        self.data = data or {}

    @property
    def batch_size(self) -> int:
        """`task.batch_size`: the training batch."""
        return self.options.batch_size

    @property
    def root(self) -> Path:
        """`data.root`, user-expanded: where on-disk tasks look for their files."""
        return Path(str(self.data.get("root") or ".")).expanduser()

    @property
    def train_size(self) -> int | None:
        """`data.train_size`: train on only this many examples (data-size scaling), or None for all."""
        n = self.data.get("train_size")
        return None if n is None else int(n)

    def check(self) -> None:
        """Raise FPTError (one line: which files are missing, where, how to get them) if data is absent.

        Called before the trunk is loaded, so a missing dataset fails in seconds. Generated tasks have nothing to check.
        """

    @property
    def finite_train(self) -> bool:
        """Whether the training set is a fixed, finite set of examples (False: an endless stream)."""
        return True

    def train_set(self):
        """One pass over the whole training set, in any order (for cached output-only features)."""
        return self.train_dataloader()

    def train_eval_dataloader(self):
        """The training set in evaluation form (no augmentation, fixed order): train/acc of the selected model."""
        return self.train_set()

    def data_files(self) -> list[Path]:
        """The files this task reads (a feature cache is invalidated when one changes)."""
        return []

    def extra_test_dataloaders(self) -> dict:
        """Further test sets by name (reported as NAME/acc in results.json); the main one is test_dataloader()."""
        return {}

    def baselines(self) -> dict:
        """Reference numbers on the same split for results.json (e.g. `baseline/1nn_acc`); {} when the task has none."""
        return {}

    def raw_lengths(self, split: str):
        """Tokens per example of `split` (train, val, test) before any cut; None for fixed-length tasks."""
        return None

    def truncation(self) -> dict | None:
        """What cutting to `spec.seq_len` tokens costs, per split: the fraction of examples cut and of tokens kept.
        None for fixed-length tasks (nothing is ever cut)."""
        out = {"max_len": self.spec.seq_len}
        for split in ("train", "val", "test"):
            n = self.raw_lengths(split)
            if n is None:
                return None
            n = np.asarray(n, dtype=np.int64)
            kept = np.minimum(n, self.spec.seq_len)
            out[split] = {"examples_cut": round(float((n > self.spec.seq_len).mean()) if len(n) else 0.0, 4),
                          "tokens_kept": round(float(kept.sum() / max(int(n.sum()), 1)), 4)}
        return out

    def fit_to(self, seq_len: int) -> None:
        """Cut sequences to `seq_len` tokens (a trunk's position limit). Only truncatable tasks can."""
        raise FPTError(f"{type(self).__name__} has fixed {self.spec.seq_len}-token sequences and cannot be cut to {seq_len}")

    # --- new data (fpt predict, fpt.load): read by what the run learned, without its training data ------------------
    def state(self) -> dict:
        """What the run learned from its data and needs to read new inputs, as plain values; every checkpoint keeps it
        (fpt/run/lit.py), so a copied run predicts without its training data. Here the spec; the array tasks add their
        training split's statistics, class names (`classes`) and input length."""
        return {"spec": self.spec.record()}

    def encode(self, x: np.ndarray, mask: np.ndarray | None, state: dict, where: str) -> dict[str, np.ndarray]:
        """Inputs as the task's files hold them -> the model's batch arrays (x, mask; loc and scale where each example is
        normalised by its own statistics), by `state` alone. What does not fit the run is one FPTError line that names
        `where` (the file, or 'the input')."""
        raise FPTError(f"{type(self).__name__} does not read new inputs: predict on the run's test split (no data.path); "
                       f"new files are read by task=custom, uea and forecast")

    def read_new(self, path: Path, state: dict) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """A file in the format this task reads -> (`encode`'s arrays, its labels or targets as the file holds them, or
        None)."""
        return self.encode(np.zeros(0), None, state, str(path)), None

    def to_data_units(self, values: np.ndarray, state: dict) -> np.ndarray:
        """Predicted values (N, n) on the scale the model predicts -> the data's own units (regression's target
        standardisation is the spec's, undone by the objective; forecasting's channel scaler is the task's)."""
        return values

    @classmethod
    def write_data(cls, out: Path, **options) -> list[Path]:
        """`fpt data TASK out=DIR`: write this task's data (or a small fixture) in its real on-disk format; `options`
        as `DataOptions` declares them (the command line's are checked against it first)."""
        raise FPTError(f"{cls.__name__} is generated on the fly and has no files to write")


def first_examples(loader, n: int | None):
    """`loader` over only its first `n` examples, in its own order (an iterable-style loader is returned as is)."""
    from torch.utils.data import DataLoader, IterableDataset, Subset

    if n is None or isinstance(loader.dataset, IterableDataset) or loader.batch_sampler is None or n >= len(loader.dataset):
        return loader
    order = [i for batch in loader.batch_sampler for i in batch][:n]
    return DataLoader(Subset(loader.dataset, order), batch_size=loader.batch_sampler.batch_size, collate_fn=loader.collate_fn,
                      num_workers=loader.num_workers, pin_memory=loader.pin_memory)


def task_class(task_cfg) -> type[Task]:
    """The class named by the task yaml's `impl: module:Class` (a legacy `tasks.X:Class` names fpt.tasks.X)."""
    from fpt.config.trust import canonical_impl

    module, _, cls_name = canonical_impl(task_cfg["impl"]).partition(":")
    return getattr(importlib.import_module(module), cls_name)


def task_options(task_cfg) -> TaskOptions:
    """The task section's options (all but META_KEYS) as an instance of its class's `Options`: the one check of a
    task's options, made where the config is composed (fpt.run.preflight) and where the class is built (build_task).
    One FPTError line names the first bad key: 'task.n_bits must be a positive integer, got 0'."""
    from omegaconf import DictConfig, OmegaConf

    section = OmegaConf.to_container(task_cfg, resolve=True) if isinstance(task_cfg, DictConfig) else dict(task_cfg)
    return check(task_class(section).Options, {k: v for k, v in section.items() if k not in META_KEYS}, "task")


def _options_for(cls: type[Task], options: TaskOptions | None, kw: dict) -> TaskOptions:
    """What Task.__init__ keeps: `options` as given (an instance of `cls.Options`), else the keywords checked into one."""
    if options is None:
        return check(cls.Options, kw, "task")
    if kw:
        raise TypeError(f"{cls.__name__}: pass either an options object or keyword options, not both (got {sorted(kw)})")
    if not isinstance(options, cls.Options):
        raise TypeError(f"{cls.__name__} takes {cls.Options.__name__} options, got {type(options).__name__}")
    return options


def build_task(task_cfg, seed: int, data_cfg=None) -> Task:
    """Instantiate the task class named by `task.impl` with the yaml's checked options; check its data exists."""
    task = task_class(task_cfg)(task_options(task_cfg), seed=seed, data=data_cfg)
    task.check()
    return task
