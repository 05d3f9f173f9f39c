"""Seeds derived from (seed, step, ...) tuples: the same numbers on every run, resume and validation schedule.

No torch here: tasks import it too (tasks import only fpt.errors, fpt.seeds and tasks.base).
"""

from __future__ import annotations

import numpy as np

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def mix64(x) -> np.ndarray:
    """splitmix64, vectorised: a bijection of uint64 that scatters nearby integers."""
    with np.errstate(over="ignore"):
        z = (np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)) & _M64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M64
        return z ^ (z >> np.uint64(31))


def pack(seed: int, steps, rank: int = 0) -> np.ndarray:
    """(seed, step, rank) packed into one uint64 without collisions: seed < 2^23, step < 2^32, rank < 256."""
    if not (0 <= seed < 2**23 and 0 <= rank < 256):
        raise ValueError(f"seeds must be in 0..{2**23 - 1} (got {seed}) and ranks below 256 (got {rank})")
    steps = np.asarray(steps, dtype=np.uint64)
    return (np.uint64(seed) << np.uint64(40)) | (steps << np.uint64(8)) | np.uint64(rank)


STEP_SALT = np.uint64(0xD1B54A32D192ED03)  # sets the global generator's seeds apart from the bit tasks' batch seeds


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """A 63-bit seed for torch's global generator at training step `step` of run `seed` on DDP `rank`."""
    return int(mix64(pack(seed, [step], rank) ^ STEP_SALT)[0] >> np.uint64(1))
