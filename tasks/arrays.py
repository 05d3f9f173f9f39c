"""Tasks whose splits are in-memory arrays (custom data, UEA/UCR, forecasting): one dataset, collate and loader set.

A split is a dict of numpy arrays with the same first axis N: `x` (N, T, D) floats or (N, T) int ids, `mask` (N, T)
bool (True = real token), `y` (N, n) targets (long class ids, 0/1 labels or floats), and optionally `loc` and `scale`
(N, 1): a per-instance normalisation the objective maps predictions back with (fpt/run/objectives.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from fpt.errors import FPTError
from fpt.config.schema import Count
from fpt.tasks.base import Task, TaskOptions
from fpt.tasks.loading import loader
from fpt.tasks.sampling import epoch_batches, nested_order, shuffled_batches

SPLITS = ("train", "val", "test")


class Arrays(Dataset):
    """Rows of a split's arrays; a batch of indices is collated by `collate`."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}

    def __len__(self) -> int:
        return len(self.t["y"])

    def __getitem__(self, i: int) -> int:
        return i

    def collate(self, idx: list[int]) -> dict[str, torch.Tensor]:
        i = torch.as_tensor(idx)
        return {k: v[i] for k, v in self.t.items()}


def random_split(n: int, seed: int, fractions=(0.8, 0.1, 0.1)) -> np.ndarray:
    """A seeded split of n examples into train / val / test by `fractions` (every split gets at least one)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val, n_test = max(1, round(fractions[1] * n)), max(1, round(fractions[2] * n))
    names = np.empty(n, dtype="<U5")
    names[order[: n - n_val - n_test]], names[order[n - n_val - n_test : n - n_test]], names[order[n - n_test :]] = "train", "val", "test"
    return names


def pad_tokens(x: np.ndarray, mask: np.ndarray, length: int, fill=0) -> dict[str, np.ndarray]:
    """x (N, T, ...) and mask (N, T) right-padded to `length` tokens (the padding is `fill`, masked out)."""
    extra = length - x.shape[1]
    widths = [(0, 0), (0, extra)] + [(0, 0)] * (x.ndim - 2)
    return {"x": np.pad(x, widths, constant_values=fill), "mask": np.pad(mask, ((0, 0), (0, extra)))}


def expect_file(path, suffixes: tuple[str, ...], task: str, what: str) -> Path:
    """`path` as a Path when its name ends in one of `suffixes`; else one line saying what a `task` run reads."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FPTError(f"{path} does not exist; a {task} run predicts from {what}")
    if not path.name.lower().endswith(suffixes):
        raise FPTError(f"{path}: a {task} run predicts from {what}, not a {path.suffix or 'suffix-less'} file")
    return path


class ArrayOptions(TaskOptions):
    eval_batch_size: Count = 256  # no gradients at evaluation: larger batches fit


class ArrayTask(Task, ABC):
    """A task whose splits are `self.arrays()` (dict split -> arrays, built once by `load()`); resumable shuffled batches."""

    Options = ArrayOptions
    options: ArrayOptions

    @property
    def split_seed(self) -> int:
        """Seeds the data.train_size subsets: `task.split_seed` where the task has that option (uea, custom), else 0."""
        return getattr(self.options, "split_seed", 0)

    @abstractmethod
    def load(self) -> dict[str, dict[str, np.ndarray]]:
        """The three splits' arrays (train, val, test): each subclass (uea, custom, forecast) reads its files here."""

    def arrays(self) -> dict[str, dict[str, np.ndarray]]:
        if getattr(self, "_arrays", None) is None:
            self._arrays = self.load()
        return self._arrays

    def check(self) -> None:
        self.arrays()

    def _set(self, split: str) -> Arrays:
        arrays = self.arrays()[split]
        if split == "train" and self.train_size is not None:
            keep = self.subset(arrays["y"], self.train_size)
            arrays = {k: v[keep] for k, v in arrays.items()}
        return Arrays(arrays)

    def subset(self, y: np.ndarray, size: int) -> np.ndarray:
        """The rows (in file order) of the `data.train_size=size` training subset: seeded by `split_seed`, stratified
        by class for single-target classification, and nested (the subset for N lies inside the one for 2N)."""
        if size > len(y):
            raise FPTError(f"data.train_size={size} is more than the {len(y)} training examples; choose at most "
                           f"{len(y)} (or null for all)")
        labels = y[:, 0] if self.spec.objective == "classification" and y.shape[1] == 1 else None
        return np.sort(nested_order(len(y), self.split_seed, labels)[:size])

    def train_dataloader(self) -> DataLoader:
        ds = self._set("train")
        if self.trainer is not None and self.trainer.world_size > 1:  # Lightning shards a plain sampler over the ranks
            return loader(ds, self.data, batch_size=self.batch_size, shuffle=True, collate_fn=ds.collate,
                          generator=torch.Generator().manual_seed(self.seed))
        order = epoch_batches(self.trainer, lambda epoch: shuffled_batches(len(ds), self.batch_size, self.seed, epoch))
        return loader(ds, self.data, batch_sampler=order, collate_fn=ds.collate)

    def _eval(self, split: str) -> DataLoader:
        ds = self._set(split)
        return loader(ds, self.data, batch_size=self.options.eval_batch_size, collate_fn=ds.collate)

    def train_set(self) -> DataLoader:
        return self._eval("train")

    def val_dataloader(self) -> DataLoader:
        return self._eval("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval("test")
