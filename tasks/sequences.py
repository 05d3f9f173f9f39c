"""Variable-length token tasks in one place: ragged token arrays, their hashed on-disk cache, the padding
collate, length-bucketed training batches and the loaders. ListOps and remote homology are built on it.

A new sequence task is a `SequenceTask` subclass that says where its files are and how one is tokenized:

    class Mine(SequenceTask):
        def read(self, split):                       # split: train, val, test (and any extra test names)
            path = self.root / f"{split}.tsv"
            return cached(path, "mine-v1", lambda: Ragged.of(my_tokenize(path), my_labels(path), path))

and sets `self.spec` (vocab_size, pad_id, num_classes, readout, truncatable=True) and `self.max_len` in its
`__init__(self, options=None, **kw)`, after `super().__init__(options, **kw)`, from `self.options`. Batches, bucketing, DDP sharding, resumable order, truncation reports and `fit_to` come from here.

Axes: b batch, t tokens.
"""

from __future__ import annotations

import hashlib
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from fpt.errors import FPTError
from fpt.tasks.base import Task
from fpt.tasks.loading import loader
from fpt.tasks.sampling import bucketed_batches, epoch_batches


@dataclass(frozen=True)
class Ragged:
    """One split: every example's ids back to back, where each starts, its label (and the file it came from)."""

    tokens: np.ndarray  # (n_tokens,) small unsigned ints: example i is tokens[offsets[i]:offsets[i + 1]]
    offsets: np.ndarray  # (n + 1,) int64
    labels: np.ndarray  # (n,) int64
    source: Path | None = None

    @classmethod
    def of(cls, seqs: Sequence, labels: Sequence[int], source: Path | None = None, dtype=np.uint8) -> Ragged:
        """From a list of id sequences and their labels."""
        lengths = [len(s) for s in seqs]
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(lengths)
        tokens = np.concatenate([np.asarray(s, dtype=dtype) for s in seqs]) if seqs else np.zeros(0, dtype)
        return cls(tokens, offsets, np.asarray(labels, dtype=np.int64), source)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per example, before any cut."""
        return np.diff(self.offsets)

    def subset(self, rows) -> Ragged:
        """The examples `rows`, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        parts = [self.tokens[self.offsets[r] : self.offsets[r + 1]] for r in rows]
        return Ragged(np.concatenate(parts) if parts else self.tokens[:0], offsets, self.labels[rows], self.source)


# --- the cache: <file's folder>/.cache/<file name>.<tag>.<key>.npz ----------------------------------------
_HASHES: dict[tuple, str] = {}  # (path, size, mtime) -> content hash: prepare_data and setup hash once


def file_hash(path: Path) -> str:
    """sha256 of a file's bytes (a directory, i.e. an LMDB: of its data.mdb), memoised while size and mtime hold."""
    path = Path(path)
    target = path / "data.mdb" if path.is_dir() else path
    st = target.stat()
    stamp = (str(target.resolve()), st.st_size, st.st_mtime_ns)
    if stamp not in _HASHES:
        h = hashlib.sha256()
        with open(target, "rb") as f:
            while block := f.read(1 << 22):
                h.update(block)
        _HASHES[stamp] = h.hexdigest()
    return _HASHES[stamp]


def cache_path(source: Path, tag: str, settings: str) -> Path:
    """Where `source` tokenized under `settings` is kept: the key hashes the settings and the file's bytes."""
    key = hashlib.sha256(f"{settings}\n{file_hash(source)}".encode()).hexdigest()[:20]
    return Path(source).parent / ".cache" / f"{Path(source).name}.{tag}.{key}.npz"


def cached(source: Path, tag: str, settings: str, build: Callable[[], Ragged]) -> Ragged:
    """The tokenized `source`: from its cache when the file and settings are unchanged, else `build()` and cache it.

    `tag` names the tokenizer setting (one cache per file and tag is kept: older contents' caches are removed);
    `settings` is everything that changes the ids (vocabulary, version, options). A damaged cache is rebuilt;
    a read-only folder still works, tokenizing on every run (one note line)."""
    target = cache_path(source, tag, settings)
    if target.is_file():
        try:
            with np.load(target) as z:
                return Ragged(z["tokens"], z["offsets"], z["labels"], Path(source))
        except (OSError, ValueError, KeyError):
            pass  # damaged: rebuilt below
    data = build()
    try:
        _write(target, data, stale=f"{Path(source).name}.{tag}.*.npz")
    except OSError as e:
        print(f"note: cannot cache the tokenized {Path(source).name} in {target.parent} ({e.strerror}); "
              f"tokenizing on every run", file=sys.stderr)
    return data


def _write(target: Path, data: Ragged, stale: str) -> None:
    """Atomically (ranks and concurrent runs may share a data folder), dropping caches of older file contents."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, tokens=data.tokens, offsets=data.offsets, labels=data.labels)
    os.replace(tmp, target)
    for old in target.parent.glob(stale):
        if old != target:
            old.unlink(missing_ok=True)


# --- examples and batches ----------------------------------------------------------------------------------
class Examples(Dataset):
    """(ids, label) of one split, each cut to `max_len` tokens when read: its first ones, or with `end` set,
    its first max_len - 1 and then `end` (a sequence that must close with its end marker)."""

    def __init__(self, data: Ragged, max_len: int, end: int | None = None):
        self.data, self.max_len, self.end = data, int(max_len), end

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        s, e = self.data.offsets[i], self.data.offsets[i + 1]
        ids = self.data.tokens[s:e]
        if len(ids) > self.max_len:
            ids = ids[: self.max_len] if self.end is None else np.append(ids[: self.max_len - 1], self.end)
        return ids, int(self.data.labels[i])

    def lengths(self) -> np.ndarray:
        """Tokens per example after the cut."""
        return np.minimum(self.data.lengths, self.max_len)


class PadCollate:
    """Right-pad to the batch's longest sequence: x (b, t) long, mask (b, t) bool (False on pads), y (b, 1) long."""

    def __init__(self, pad_id: int):
        self.pad_id = int(pad_id)

    def __call__(self, rows: list[tuple[np.ndarray, int]]) -> dict[str, torch.Tensor]:
        lengths = torch.tensor([len(ids) for ids, _ in rows])
        x = torch.full((len(rows), int(lengths.max())), self.pad_id, dtype=torch.long)
        for b, (ids, _) in enumerate(rows):
            x[b, : len(ids)] = torch.from_numpy(ids.astype(np.int64))
        mask = torch.arange(x.shape[1])[None, :] < lengths[:, None]
        y = torch.tensor([label for _, label in rows], dtype=torch.long)[:, None]
        return {"x": x, "mask": mask, "y": y}


# --- the task ----------------------------------------------------------------------------------------------
class SequenceTask(Task, ABC):
    """A task of variable-length token sequences, one label each. Subclasses define `read(split) -> Ragged` and set
    `spec` and `max_len`; `bucket` (batches per length-sorted pool; 1: plain shuffle), `end_id` (kept last when a
    sequence is cut) and `eval_batch_size` are optional. Splits are named train, val, test, plus any extra tests."""

    bucket: int = 50
    end_id: int | None = None
    min_len: int = 1  # the shortest cut that still makes an example
    eval_batch_size: int | None = None  # None: twice the training batch (no gradients)

    def __init__(self, options=None, **kw):
        super().__init__(options, **kw)
        self._ragged: dict[str, Ragged] = {}

    @abstractmethod
    def read(self, split: str) -> Ragged:
        """The tokenized split (usually through `cached`)."""

    def split_data(self, split: str) -> Ragged:
        """`read(split)` once per task object."""
        if split not in self._ragged:
            self._ragged[split] = self.read(split)
        return self._ragged[split]

    def dataset(self, split: str) -> Examples:
        return Examples(self.split_data(split), self.max_len, self.end_id)

    # Lightning hooks
    def prepare_data(self) -> None:
        """Tokenize and cache every split once (rank 0), so the other ranks only load."""
        for split in ("train", "val", "test"):
            self.split_data(split)

    def fit_to(self, seq_len: int) -> None:
        """Cut every sequence to `seq_len` tokens (a trunk's position limit); none is dropped."""
        if seq_len < self.min_len:
            raise FPTError(f"cannot cut {type(self).__name__} sequences to {seq_len} tokens: an example needs {self.min_len}")
        self.max_len = min(self.max_len, int(seq_len))
        self.spec = replace(self.spec, seq_len=self.max_len)

    def raw_lengths(self, split: str) -> np.ndarray:
        return self.split_data(split).lengths

    def train_dataloader(self) -> DataLoader:
        """Shuffled batches of similar length (pools of `bucket` batches), a function of (seed, epoch): resumable.
        Under DDP, a plain seeded shuffle that Lightning shards over the ranks."""
        ds = self.dataset("train")
        if self.trainer is not None and self.trainer.world_size > 1:
            return self._loader(ds, batch_size=self.batch_size, shuffle=True, generator=torch.Generator().manual_seed(self.seed))
        lengths = ds.lengths()
        order = epoch_batches(self.trainer, lambda epoch: bucketed_batches(lengths, self.batch_size, self.seed, epoch, self.bucket))
        return self._loader(ds, batch_sampler=order)

    def eval_dataloader(self, split: str) -> DataLoader:
        """Every example of `split`, sorted by length so batches pad little (order cannot change a metric)."""
        ds = self.dataset(split)
        order = np.argsort(ds.lengths(), kind="stable").tolist()
        return self._loader(ds, batch_size=self.eval_batch_size or 2 * self.batch_size, sampler=order)

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")

    def _loader(self, ds: Examples, **kw) -> DataLoader:
        return loader(ds, self.data, collate_fn=PadCollate(self.spec.pad_id), **kw)
