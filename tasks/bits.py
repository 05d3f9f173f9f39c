"""Bit memory and bit XOR, as the FPT paper defines them (accuracy over all target bits).

Training batches are fresh and seeded by (seed, step), so the stream is the same on every run
and on resume; val and test are fixed sets drawn from `data_seed`, shared by all run seeds.

Every generator seed carries its domain (train, val, test, pool) in its two lowest bits, so a training
batch can never be drawn from the seed of a validation or test set, whatever the run seed and step.
(Bit XOR has only 2^10 possible inputs, so its training batches do contain validation inputs: the
streams are independent draws from one small space. Bit memory's strings are far too many to repeat.)
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from pydantic import model_validator

from fpt.errors import FPTError
from fpt.config.schema import Count, Dropout, Invalid, NonNegative
from fpt.seeds import mix64, pack
from fpt.tasks.base import Task, TaskOptions, TaskSpec


TRAIN, VAL, TEST, POOL = range(4)  # seed domains: the two low bits of every generator seed


def domain_seeds(domain: int, values) -> np.ndarray:
    """Generator seeds for `values` in one domain: distinct values give distinct seeds, domains never meet."""
    mixed = mix64(values)
    return ((mixed >> np.uint64(3)) << np.uint64(2)) | np.uint64(domain)  # < 2**63, the domain in the low bits


def batch_seeds(seed: int, steps, rank: int = 0) -> np.ndarray:
    """The training-batch seeds of run `seed` at `steps` on DDP `rank` (rank 0: the single-process stream)."""
    return domain_seeds(TRAIN, pack(seed, steps, rank))


def set_seed(domain: int, data_seed: int) -> int:
    """The seed of a fixed set (val, test or the data.train_size pool) drawn from `data_seed`."""
    return int(domain_seeds(domain, [data_seed])[0])


class _Stream(IterableDataset):
    """Endless whole batches from `sample(n, generator)`, batch i drawn from seed (seed, i[, rank]).

    Under DDP every rank draws its own batches (rank 0 the same ones as a single process). Batches are
    drawn on `device` (the training device: no host-to-device copy; a GPU draws other numbers than the CPU).
    """

    def __init__(self, sample, batch_size: int, seed: int, start: int = 0, rank: int = 0, device="cpu"):
        self.sample, self.batch_size, self.seed, self.start, self.rank = sample, batch_size, seed, start, rank
        self.device = torch.device(device)

    def __iter__(self):
        step = self.start
        while True:
            g = torch.Generator(self.device).manual_seed(int(batch_seeds(self.seed, [step], self.rank)[0]))
            x, y = self.sample(self.batch_size, g)
            yield {"x": x, "mask": torch.ones(x.shape[:2], dtype=torch.bool, device=x.device), "y": y}
            step += 1


class BitTaskOptions(TaskOptions):
    val_size: Count = 1000
    test_size: Count = 1000
    data_seed: NonNegative = 1234  # the val/test sets (and the data.train_size pool): shared by every run seed


class BitTask(Task):
    """Shared data plumbing: endless seeded training stream, fixed val/test sets.

    Subclasses define `sample(n, generator) -> (x (n, T, token_dim) float, y (n, n_targets) long)`.
    """

    Options = BitTaskOptions
    options: BitTaskOptions

    def _fixed(self, n: int, seed: int) -> DataLoader:
        x, y = self.sample(n, torch.Generator().manual_seed(seed))
        ds = TensorDataset(x, torch.ones(x.shape[:2], dtype=torch.bool), y)
        return DataLoader(ds, batch_size=max(self.batch_size, 64), collate_fn=_as_dict)

    def train_dataloader(self) -> DataLoader:
        start = self.trainer.global_step if self.trainer is not None else 0  # resume mid-stream
        rank = self.trainer.global_rank if self.trainer is not None else 0
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        sample = self.sample if self.train_size is None else self._pool_sampler(self.train_size, device)
        return DataLoader(_Stream(sample, self.batch_size, self.seed, start, rank, device), batch_size=None)

    @property
    def finite_train(self) -> bool:
        return self.train_size is not None

    def _pool(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed training pool of `size` examples (data.train_size)."""
        return self.sample(size, torch.Generator().manual_seed(set_seed(POOL, self.options.data_seed)))

    def train_set(self) -> DataLoader:
        """The pool of data.train_size examples, once (an endless stream has no such set)."""
        if self.train_size is None:
            raise FPTError("the bit tasks' training stream is endless; set data.train_size=N for a fixed training set")
        x, y = self._pool(self.train_size)
        ds = TensorDataset(x, torch.ones(x.shape[:2], dtype=torch.bool), y)
        return DataLoader(ds, batch_size=max(self.batch_size, 64), collate_fn=_as_dict)

    def train_eval_dataloader(self) -> DataLoader:
        """The training set for train/acc: the data.train_size pool, or else the stream's first batches
        (as many examples as the validation set), exactly as training drew them."""
        if self.train_size is not None:
            return self.train_set()
        stream = iter(_Stream(self.sample, self.batch_size, self.seed))
        batches = [next(stream) for _ in range(-(-self.options.val_size // self.batch_size))]
        x, y = (torch.cat([b[k] for b in batches]) for k in ("x", "y"))
        ds = TensorDataset(x, torch.ones(x.shape[:2], dtype=torch.bool), y)
        return DataLoader(ds, batch_size=max(self.batch_size, 64), collate_fn=_as_dict)

    def _pool_sampler(self, size: int, device=None):
        """Draw batches from one fixed pool of `size` examples (data-size scaling) instead of fresh ones."""
        x, y = (t.to(device) for t in self._pool(size))

        def sample(n, g):
            idx = torch.randint(0, size, (n,), generator=g, device=g.device)
            return x[idx], y[idx]

        return sample

    def val_dataloader(self) -> DataLoader:
        return self._fixed(self.options.val_size, set_seed(VAL, self.options.data_seed))

    def test_dataloader(self) -> DataLoader:
        return self._fixed(self.options.test_size, set_seed(TEST, self.options.data_seed))


def _as_dict(rows):
    x, mask, y = (torch.stack(t) for t in zip(*rows))
    return {"x": x, "mask": mask, "y": y}


def _bits(shape, g: torch.Generator) -> torch.Tensor:
    """Uniform random bits in {0, 1} as long, on the generator's device."""
    return torch.randint(0, 2, shape, generator=g, device=g.device)


class BitXorOptions(BitTaskOptions):
    n_bits: Count = 5


class BitXor(BitTask):
    """Two random n-bit strings, one bit per token (+-1); predict their XOR at the last n positions."""

    Options = BitXorOptions
    options: BitXorOptions

    def __init__(self, options: BitXorOptions | None = None, **kw):
        super().__init__(options, **kw)
        bits = self.options.n_bits
        self.spec = TaskSpec(seq_len=2 * bits, token_dim=1, num_classes=2, readout="last_k", k=bits)

    def sample(self, n, g):
        a, b = _bits((n, self.options.n_bits), g), _bits((n, self.options.n_bits), g)
        x = rearrange(torch.cat([a, b], dim=1).float() * 2 - 1, "n t -> n t 1")  # (n, 2*bits, 1)
        return x, a ^ b


class BitMemoryOptions(BitTaskOptions):
    n_strings: Count = 5
    n_bits: Count = 1000
    patch: Count = 50  # bits per token
    mask_prob: Dropout = 0.5

    @model_validator(mode="after")
    def _patch_divides(self):
        if self.n_bits % self.patch:
            raise Invalid(f"task.patch={self.patch} must divide task.n_bits={self.n_bits}")
        return self


class BitMemory(BitTask):
    """Memorise n_strings random bit strings; recall the one shown again with bits masked.

    Strings are +-1, masked bits 0; each string is cut into patches of `patch` bits (one token).
    The target is the full unmasked string, read at the last n_bits/patch positions.
    """

    Options = BitMemoryOptions
    options: BitMemoryOptions

    def __init__(self, options: BitMemoryOptions | None = None, **kw):
        super().__init__(options, **kw)
        o = self.options
        k = o.n_bits // o.patch
        self.spec = TaskSpec(
            seq_len=(o.n_strings + 1) * k, token_dim=o.patch, num_classes=2,
            readout="last_k", k=k, targets_per_position=o.patch,
        )

    def sample(self, n, g):
        o = self.options
        bits = _bits((n, o.n_strings, o.n_bits), g)  # (n, S, L)
        pick = torch.randint(0, o.n_strings, (n,), generator=g, device=g.device)
        target = bits[torch.arange(n, device=g.device), pick]  # (n, L)
        keep = torch.rand((n, o.n_bits), generator=g, device=g.device) >= o.mask_prob
        signed = bits.float() * 2 - 1
        query = (target.float() * 2 - 1) * keep  # masked bits become 0
        seq = torch.cat([signed, query[:, None]], dim=1)  # (n, S+1, L)
        x = rearrange(seq, "n s (k p) -> n (s k) p", p=o.patch)  # (n, (S+1)*L/p, p)
        return x, target
