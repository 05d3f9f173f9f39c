"""What every file-based task's loaders share: the DataLoader setup and a pickle reader that runs no code."""

from __future__ import annotations

import pickle

import torch
from torch.utils.data import DataLoader


def loader(dataset, data_cfg, **kw) -> DataLoader:
    """A DataLoader with `data.num_workers` workers (kept alive across epochs) and pinned memory when a GPU
    will receive the batches; `kw` as DataLoader takes them (batch_size or batch_sampler, collate_fn, ...)."""
    workers = int((data_cfg or {}).get("num_workers", 0) or 0)
    return DataLoader(dataset, num_workers=workers, persistent_workers=workers > 0, pin_memory=torch.cuda.is_available(), **kw)


# What pickled data files may contain: plain containers, numpy arrays and scalars. Nothing that runs code.
SAFE_GLOBALS = {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")} | {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # how protocol-2 pickles store bytes
}


class SafeUnpickler(pickle.Unpickler):
    """Unpickles plain records and numpy arrays only: a data file must not be able to run code."""

    def find_class(self, module, name):
        if (module, name) not in SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return super().find_class(module, name)
