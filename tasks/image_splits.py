"""The image tasks' train/val carve: one seeded permutation of the training file, validation first, the training
images a prefix of the rest (smaller data.train_size values give nested subsets; validation never depends on them)."""

from __future__ import annotations

from typing import Union

import torch

from fpt.config.schema import rule
from fpt.errors import FPTError

# a validation split (or data.train_size) as a count, or a fraction of the training file
CountOrFraction = rule(Union[int, float], lambda v: 0 < v < 1 or v >= 1 and float(v).is_integer(),  # a count stays an int
                       "a count or a fraction in (0, 1)")



def _count(value, n: int) -> int:
    """A count (int) or a fraction of n (float in (0, 1), CountOrFraction), as a count."""
    return max(1, round(value * n)) if value < 1 else int(value)


def split_sizes(n: int, val_size, train_size) -> tuple[int, int]:
    """(n_train, n_val) for a training file of n images; one-line errors when they do not fit the file."""
    n_val = _count(val_size, n)
    if n_val >= n:
        raise FPTError(f"task.val_size={val_size} leaves no training images: the training file has {n}; choose fewer (e.g. 0.1)")
    n_train = n - n_val if train_size is None else _count(train_size, n - n_val)
    if n_train > n - n_val:
        raise FPTError(f"data.train_size={train_size} must be between 1 and the {n - n_val} training images "
                       f"left after task.val_size={val_size}")
    return n_train, n_val


def carve(n: int, val_size, train_size, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) indices into a training file of n images: one seeded permutation, val first.

    The train indices are a prefix of the rest, so smaller train_size values give nested subsets
    and the val split never depends on train_size.
    """
    n_train, n_val = split_sizes(n, val_size, train_size)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_val : n_val + n_train], perm[:n_val]
