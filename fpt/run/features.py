"""Output-only training on cached trunk features: the trunk runs once, later epochs never.

When only the `output` layer trains, everything before it (input layer, trunk, readout) is a fixed
function of the example. `CachedFeatures` wraps a task: on first use it runs that fixed part once
over the whole training, validation and test sets (in eval mode: no dropout, as a fixed feature
extractor), stores the readout features and labels under `features.dir`, and from then on serves
batches `{"r": features, "y": labels}` that the module sends through the output layer alone.

The cache file is named by a hash of everything the features depend on: the exact bytes of every
frozen tensor (trunk, input layer, positions), the readout, the task's config, `data.*`, the seed
(it seeds the validation split) and the size and mtime of the task's data files. Change any of them
and a new file is written; the old one is never read again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from fpt.checkpoint import atomic_write_bytes
from fpt.errors import FPTError

MODES = ("auto", "true", "false")
FORMAT = 1  # bump when the file layout or the meaning of a feature changes


def cache_mode(cfg) -> str:
    """`features.cache` as one of auto | true | false."""
    mode = str((cfg.get("features") or {}).get("cache", "auto")).lower()
    if mode not in MODES:
        raise FPTError(f"unknown features.cache '{mode}'; choose auto, true or false")
    return mode


def cache_dir(cfg) -> Path:
    """`features.dir`; configs saved before it existed get its default ($FPT_CACHE or ~/.cache/fpt, /features)."""
    d = (cfg.get("features") or {}).get("dir") or Path(os.environ.get("FPT_CACHE", "~/.cache/fpt")) / "features"
    return Path(str(d)).expanduser()


def why_not(task, model) -> str | None:
    """Why features of this run cannot be cached (None: they can)."""
    if not model.fixed_features:
        return "more than the output layer trains"
    if getattr(task, "augment", False):
        return "task.augment=true changes the training inputs every epoch"
    if not task.finite_train:
        return "the training set is an endless stream (set data.train_size=N for a fixed training set)"
    return None


def maybe_cache(cfg, task, model):
    """The task itself, or a CachedFeatures wrapper when `features.cache` asks for it and it applies."""
    mode = cache_mode(cfg)
    if mode == "false":
        return task
    reason = why_not(task, model)
    if reason is None:
        return CachedFeatures(task, model, cache_dir(cfg), identity(cfg))
    if mode == "true":
        raise FPTError(f"features.cache=true but the features cannot be cached: {reason}; use features.cache=auto or false")
    return task


def identity(cfg) -> dict:
    """What the features depend on, besides the frozen weights and the data files."""
    from omegaconf import OmegaConf

    c = OmegaConf.to_container(cfg, resolve=True)
    task = {k: v for k, v in c["task"].items() if k != "files"}  # where the files are looked for: data.root says it
    return {"format": FORMAT, "task": task, "data": c.get("data"), "seed": c["seed"],
            "readout": c["model"].get("readout"), "depth": c["model"].get("depth")}


def weights_digest(model) -> str:
    """Hash of the exact bytes of every tensor except the output layer's."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in sorted(model.state_dict().items()):
        if name.startswith("output."):
            continue
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.detach().reshape(-1).contiguous().cpu().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def files_identity(paths) -> list:
    """(path, size, mtime) of each data file (every file inside a directory, e.g. LMDB)."""
    out = []
    for p in sorted(Path(p) for p in paths):
        for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
            if f.is_file():
                st = f.stat()
                out.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
    return out


def _as_dict(rows):
    r, y = (torch.stack(t) for t in zip(*rows))
    return {"r": r, "y": y}


class CachedFeatures(pl.LightningDataModule):
    """A task's train/val/test sets as cached readout features (see the module docstring)."""

    def __init__(self, task, model, cache_dir: Path, ident: dict):
        super().__init__()
        self.task, self.model, self.cache_dir, self.ident = task, model, Path(cache_dir), ident
        self.spec = task.spec
        self.sets: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.info: dict = {}  # path, hit, seconds: for results.json

    # Lightning hooks, passed on to the task
    def prepare_data(self) -> None:
        self.task.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        self.task.trainer = self.trainer
        self.task.setup(stage)
        self.sets = self.load_or_build()

    def truncation(self) -> dict | None:
        return self.task.truncation()

    def train_eval_dataloader(self) -> DataLoader:
        """The cached training features in a fixed order (train/acc)."""
        return self._loader("train", shuffle=False)

    def extra_test_dataloaders(self) -> dict:
        return self.task.extra_test_dataloaders()  # run through the whole model (batches with "x")

    @property
    def path(self) -> Path:
        ident = {**self.ident, "weights": weights_digest(self.model), "files": files_identity(self.task.data_files())}
        key = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:24]
        return self.cache_dir / f"{self.ident['task'].get('name', 'task')}-{key}.pt"

    def load_or_build(self) -> dict:
        t0 = time.perf_counter()
        path = self.path
        if path.is_file():
            try:
                sets = torch.load(path, map_location="cpu", weights_only=True)
                self.info = {"path": str(path), "hit": True, "seconds": round(time.perf_counter() - t0, 3)}
                return sets
            except Exception as e:  # a truncated or foreign file: rebuild it
                print(f"note: feature cache {path} unreadable ({type(e).__name__}); computing it again", file=sys.stderr)
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        loaders = {"train": self.task.train_set(), "val": self.task.val_dataloader(), "test": self.task.test_dataloader()}
        sets = {split: self.compute(loader, device) for split, loader in loaders.items()}
        buf = io.BytesIO()
        torch.save(sets, buf)
        atomic_write_bytes(path, buf.getvalue())
        self.info = {"path": str(path), "hit": False, "seconds": round(time.perf_counter() - t0, 3)}
        print(f"output-only: trunk features of {sum(len(s[1]) for s in sets.values())} examples cached in "
              f"{self.info['seconds']:.1f} s at {path}", file=sys.stderr)
        return sets

    @torch.no_grad()
    def compute(self, loader, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Readout features (n, k, h) or (n, h) and labels (n, targets) over one pass of `loader`."""
        was_training = self.model.training
        self.model.to(device).eval()
        feats, labels = [], []
        try:
            for batch in loader:
                feats.append(self.model.features(batch["x"].to(device), batch["mask"].to(device)).float().cpu())
                labels.append(batch["y"])
        finally:
            self.model.train(was_training)
        return torch.cat(feats), torch.cat(labels)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        r, y = self.sets[split]
        g = torch.Generator().manual_seed(self.task.seed) if shuffle else None
        size = self.task.batch_size if shuffle else max(self.task.batch_size, 256)
        return DataLoader(TensorDataset(r, y), batch_size=size, shuffle=shuffle, generator=g, collate_fn=_as_dict)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

