"""Training batch orders that are a pure function of (seed, epoch): the same on every run, and resumable.

`EpochBatches` is the training DataLoader's batch sampler for map-style tasks. Each epoch's batches come
from `batches_of(epoch)`, never from a generator whose state carries across epochs, so a run resumed in
the middle of epoch e skips the batches it already trained on and goes on with exactly the rest. Keys are
`(index, epoch)` pairs when the dataset asks for them (`with_epoch`): augmentation can then be seeded per
example and epoch (see `example_seed`), not by whatever the global generator holds.

Which examples a split holds is seeded here too: `stratified_holdout` (a validation carve that keeps every class in
training), `stratified_folds` (the folds of `task.val=cv`) and `nested_order` (the `data.train_size` subsets: stratified, and each one inside every larger one).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from torch.utils.data import Sampler

from fpt.seeds import mix64


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Which examples to hold out (bool, per example): of each class's n_c, round(fraction * n_c) drawn by `seed`,
    but never its last one (at most n_c - 1); at least one in all when some class has two."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        held[idx[: min(int(np.floor(fraction * len(idx) + 0.5)), len(idx) - 1)]] = True
    if not held.any():  # a tiny fraction of a tiny file: one example of the largest class
        values, counts = np.unique(labels, return_counts=True)
        if counts.max() > 1:
            held[rng.choice(np.flatnonzero(labels == values[counts.argmax()]))] = True
    return held


def stratified_folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """The fold (0..k-1) of each example: each class's examples, shuffled by `seed`, dealt to the folds in turn, the
    count going on from class to class, so a class's share of two folds differs by at most one, and so do fold sizes."""
    rng = np.random.default_rng([seed, 2])  # a stream apart from the holdout's and the subsets'
    fold, start = np.empty(len(labels), dtype=np.int64), 0
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        fold[idx] = (start + np.arange(len(idx))) % k
        start += len(idx)
    return fold


def nested_order(n: int, seed: int, labels: np.ndarray | None = None) -> np.ndarray:
    """A seeded order of range(n) whose first N are the `data.train_size=N` subset: smaller subsets are prefixes of
    larger ones (nested), and with class labels every prefix holds each class in proportion: class c's examples,
    shuffled, sit at (k + 0.5) / n_c for k = 0..n_c-1 (Sainte-Lague's apportionment), ties broken by the seed."""
    rng = np.random.default_rng([seed, 1])  # a stream apart from the validation carve's
    if labels is None:
        return rng.permutation(n)
    key = np.empty(n)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        key[idx] = (np.arange(len(idx)) + 0.5) / len(idx)
    return np.lexsort((rng.random(n), key))


def shuffled_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """A fresh permutation of range(n) per (seed, epoch), cut into batches (the last one may be short)."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return [order[i : i + batch_size].tolist() for i in range(0, n, batch_size)]


def bucketed_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int, pool: int = 50) -> list[list[int]]:
    """Shuffled batches of similar length (less padding): shuffle, sort pools of `pool` batches by length,
    cut them into batches, shuffle the full batches; the short ones go last. pool=1: plain shuffled batches."""
    rng = np.random.default_rng([seed, epoch])
    order, chunk, batches = rng.permutation(len(lengths)), batch_size * max(1, int(pool)), []
    for s in range(0, len(order), chunk):
        part = order[s : s + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size].tolist() for i in range(0, len(part), batch_size)]
    full = [b for b in batches if len(b) == batch_size]
    return [full[j] for j in rng.permutation(len(full))] + [b for b in batches if len(b) < batch_size]


def example_seed(seed: int, epoch: int, index: int) -> int:
    """A seed for the augmentation of example `index` in `epoch` of run `seed`."""
    return int(mix64(np.uint64(seed & 0xFFFFFF) << np.uint64(40) | np.uint64(epoch & 0xFFFF) << np.uint64(24)
                     | np.uint64(index & 0xFFFFFF)) >> np.uint64(1))


class EpochBatches(Sampler):
    """Batches of `batches_of(epoch)`; the first epoch iterated skips its first `skip` batches (a resumed run).

    Lightning calls `set_epoch(epoch)` before every epoch on a loader's `sampler` and its `batch_sampler.sampler`,
    not on the batch sampler itself: `sampler` is this object, so the call reaches it.
    """

    def __init__(self, batches_of: Callable[[int], list[list[int]]], n_batches: int, skip: int = 0, epoch: int = 0,
                 with_epoch: bool = False):
        self.batches_of, self.n_batches, self.skip, self.epoch, self.with_epoch = batches_of, n_batches, skip, epoch, with_epoch
        self.sampler = self  # where Lightning looks for set_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self):
        skip, self.skip = self.skip, 0
        for batch in self.batches_of(self.epoch)[skip:]:
            yield [(i, self.epoch) for i in batch] if self.with_epoch else batch


def resume_position(trainer, n_batches: int) -> tuple[int, int]:
    """(epoch, batches already trained in it) of a run restored at `trainer.global_step` (0, 0 when fresh)."""
    if trainer is None or n_batches == 0:
        return 0, 0
    done = int(trainer.global_step) * int(trainer.accumulate_grad_batches or 1)
    return divmod(done, n_batches)


def epoch_batches(trainer, batches_of: Callable[[int], list[list[int]]], with_epoch: bool = False) -> EpochBatches:
    """The resumable batch sampler for a task's training set, positioned where the trainer's run stands."""
    n = len(batches_of(0))
    epoch, skip = resume_position(trainer, n)
    return EpochBatches(batches_of, n, skip=skip, epoch=epoch, with_epoch=with_epoch)
