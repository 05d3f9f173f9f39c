"""`task=uea data.name=NAME`: a UEA/UCR classification archive's `.ts` files as patch tokens.

Reads `<data.root>/NAME/NAME_TRAIN.ts` and `NAME_TEST.ts`; without them, the copy that the `aeon` package ships
(JapaneseVowels, GunPoint, ArrowHead, BasicMotions, ItalyPowerDemand, OSULeaf, ...), found through the installed
package without importing it. Uni- and multivariate, unequal lengths (padding masked) and missing values (`?`).
Validation is carved from the training file (seeded by `task.split_seed`); the official test file is the test set,
whole. results.json records the 1-nearest-neighbour Euclidean baseline on the same split (`baseline/1nn_acc`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from fpt.errors import FPTError
from fpt.schema import Count, Fraction, NonNegative, SequenceReadout, choice
from tasks.arrays import ArrayTask
from tasks.base import TaskOptions
from tasks.spec import TaskSpec
from tasks.timeseries import NORMS, channel_stats, normalise, patches, read_ts, to_array


def bundled_root() -> Path | None:
    """The folder of UEA/UCR copies the installed `aeon` package ships (aeon/datasets/data), or None."""
    spec = importlib.util.find_spec("aeon")  # finds the package without running its (heavy) __init__
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return folder if folder.is_dir() else None


def find_files(name: str, root: Path) -> tuple[Path, Path]:
    """NAME_TRAIN.ts and NAME_TEST.ts under root/NAME, else among aeon's bundled copies; one-line error otherwise."""
    bundled = bundled_root()
    for base in (root, bundled):
        if base is not None and (base / name / f"{name}_TRAIN.ts").is_file() and (base / name / f"{name}_TEST.ts").is_file():
            return base / name / f"{name}_TRAIN.ts", base / name / f"{name}_TEST.ts"
    have = sorted(p.parent.name for p in bundled.glob(f"*/*_TRAIN.ts")) if bundled else []
    where = f"bundled with aeon: {', '.join(have)}" if have else "no bundled copies: pip install aeon (or fpt's [timeseries] extra)"
    raise FPTError(f"UEA data set '{name}' not found: no {root / name / (name + '_TRAIN.ts')} and not bundled ({where}); "
                   f"put the archive's NAME/NAME_TRAIN.ts and NAME_TEST.ts under data.root (timeseriesclassification.com)")


class UEAOptions(TaskOptions):
    eval_batch_size: Count = 256
    patch_len: Count = 4
    stride: Count = 2
    norm: choice(*NORMS) = "train"  # by measurement: per-instance normalisation erases the levels that tell classes apart
    readout: SequenceReadout = "mean"
    val_fraction: Fraction = 0.2
    split_seed: NonNegative = 0


class UEA(ArrayTask):
    """A UEA/UCR classification data set: series -> patches of `patch_len` steps (every channel) -> class."""

    Options = UEAOptions

    def __init__(self, batch_size: int = 16, eval_batch_size: int = 256, patch_len: int = 4, stride: int = 2,
                 norm: str = "train", readout: str = "mean", val_fraction: float = 0.2, split_seed: int = 0, seed: int = 0,
                 data=None):
        super().__init__(batch_size, seed, data)
        self.eval_batch_size, self.patch_len, self.stride, self.norm = int(eval_batch_size), int(patch_len), int(stride), norm
        self.readout, self.val_fraction, self.split_seed = readout, float(val_fraction), int(split_seed)

    @property
    def name(self) -> str:
        if not self.data.get("name"):
            raise FPTError("task=uea needs data.name=NAME (e.g. JapaneseVowels, GunPoint: a UEA/UCR archive name)")
        return str(self.data["name"])

    def files(self) -> tuple[Path, Path]:
        return find_files(self.name, self.root)

    def data_files(self) -> list[Path]:
        return list(self.files())

    @property
    def spec(self) -> TaskSpec:
        a = self.arrays()["train"]
        return TaskSpec(seq_len=a["x"].shape[1], num_classes=len(self.classes), token_dim=a["x"].shape[2], readout=self.readout)

    def load(self) -> dict[str, dict[str, np.ndarray]]:
        train_path, test_path = self.files()
        tr, tr_labels, classes = read_ts(train_path)
        te, te_labels, _ = read_ts(test_path)
        if tr[0].shape[0] != te[0].shape[0]:
            raise FPTError(f"{test_path}: {te[0].shape[0]} channels, but {train_path.name} has {tr[0].shape[0]}")
        self.classes = classes or sorted(set(tr_labels))
        index = {c: i for i, c in enumerate(self.classes)}
        if bad := sorted(set(te_labels) - set(index)):
            raise FPTError(f"{test_path}: label {bad[0]!r} never occurs in {train_path.name}")
        length = max(s.shape[1] for s in tr + te)
        x, mask = to_array(tr + te, length)
        y = np.array([index[c] for c in tr_labels + te_labels], dtype=np.int64)[:, None]
        split = np.array(["train"] * len(tr) + ["test"] * len(te))
        order = np.random.default_rng(self.split_seed).permutation(len(tr))
        split[order[: max(1, round(self.val_fraction * len(tr)))]] = "val"
        stats = channel_stats(x[split == "train"], mask[split == "train"])
        x = normalise(x, mask, self.norm, stats)
        self.series = {s: (x[split == s], y[split == s, 0]) for s in ("train", "test")}  # for the 1-NN baseline
        tokens, tmask = patches(x, mask, self.patch_len, self.stride)
        return {s: {"x": tokens[split == s], "mask": tmask[split == s], "y": y[split == s]} for s in ("train", "val", "test")}

    def baselines(self) -> dict:
        """1-nearest-neighbour, Euclidean, on the normalised zero-padded series: train (less validation) vs test."""
        self.arrays()
        (xa, ya), (xb, yb) = self.series["train"], self.series["test"]
        dist = torch.cdist(torch.from_numpy(xb.reshape(len(xb), -1)).double(), torch.from_numpy(xa.reshape(len(xa), -1)).double())
        nearest = ya[dist.argmin(1).numpy()]
        return {"baseline/1nn_acc": round(float((nearest == yb).mean()), 4)}
