"""`task=uea data.name=NAME`: a UEA/UCR classification archive's `.ts` files as patch tokens.

Reads `<data.root>/NAME/NAME_TRAIN.ts` and `NAME_TEST.ts`; without them, the copy that the `aeon` package ships
(JapaneseVowels, GunPoint, ArrowHead, BasicMotions, ItalyPowerDemand, OSULeaf, ...), found through the installed
package without importing it. Uni- and multivariate, unequal lengths (padding masked) and missing values (`?`).
Validation is carved from the training file, stratified: round(val_fraction * n_c) of each class (seeded by
`task.split_seed`), never a class's last series. The official test file is the test set, whole. `data.train_size=N`
trains on a stratified, nested subset of the rest (tasks/arrays.py). results.json records the archive's reference
classifiers as timeseriesclassification.com publishes them: 1-nearest-neighbour on the whole training file against
the test file, series as stored, Euclidean (`baseline/1nn_acc`) and full-window DTW through aeon
(`baseline/1nn_dtw_acc`; null with a `baseline/note` saying why when aeon is missing or the cost exceeds
`task.dtw_max_cells`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from fpt.errors import FPTError
from fpt.config.schema import Count, Fraction, NonNegative, SequenceReadout, choice
from fpt.tasks.arrays import ArrayOptions, ArrayTask
from fpt.tasks.sampling import stratified_holdout
from fpt.tasks.spec import TaskSpec
from fpt.tasks.timeseries import NORMS, channel_stats, dtw_cells, nn1_dtw, nn1_euclidean, normalise, patches, read_ts, to_array


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
    have = sorted(p.parent.name for p in bundled.glob("*/*_TRAIN.ts")) if bundled else []
    where = f"bundled with aeon: {', '.join(have)}" if have else "no bundled copies: pip install aeon (or fpt's [timeseries] extra)"
    raise FPTError(f"UEA data set '{name}' not found: no {root / name / (name + '_TRAIN.ts')} and not bundled ({where}); "
                   f"put the archive's NAME/NAME_TRAIN.ts and NAME_TEST.ts under data.root (timeseriesclassification.com)")


class UEAOptions(ArrayOptions):
    patch_len: Count = 4
    stride: Count = 2
    norm: choice(*NORMS) = "train"  # by measurement: per-instance normalisation erases the levels that tell classes apart
    readout: SequenceReadout = "mean"
    val_fraction: Fraction = 0.2
    split_seed: NonNegative = 0
    dtw_max_cells: NonNegative = 2_000_000_000  # the DTW 1-NN baseline's budget (train x test pairs x steps^2 x channels)


class UEA(ArrayTask):
    """A UEA/UCR classification data set: series -> patches of `patch_len` steps (every channel) -> class."""

    Options = UEAOptions
    options: UEAOptions

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
        return TaskSpec(seq_len=a["x"].shape[1], num_classes=len(self.classes), token_dim=a["x"].shape[2], readout=self.options.readout)

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
        held = stratified_holdout(y[: len(tr), 0], self.options.val_fraction, self.options.split_seed)
        if not held.any():
            raise FPTError(f"{train_path}: no class has two training series, so validation cannot be carved without "
                           f"removing a class from training; add series (or use a larger file)")
        split[np.flatnonzero(held)] = "val"
        self.stored = {"train": (tr, y[: len(tr), 0]), "test": (te, y[len(tr) :, 0])}  # as in the files: the 1-NN baselines
        stats = channel_stats(x[split == "train"], mask[split == "train"])
        x = normalise(x, mask, self.options.norm, stats)
        tokens, tmask = patches(x, mask, self.options.patch_len, self.options.stride)
        return {s: {"x": tokens[split == s], "mask": tmask[split == s], "y": y[split == s]} for s in ("train", "val", "test")}

    def baselines(self) -> dict:
        """The archive's reference classifiers, whole training file vs test file, series as stored: 1-NN Euclidean and
        1-NN full-window DTW (null, with `baseline/note` saying why, without aeon or beyond task.dtw_max_cells)."""
        self.arrays()
        (a, ya), (b, yb) = self.stored["train"], self.stored["test"]
        out = {"baseline/1nn_acc": round(nn1_euclidean(a, ya, b, yb), 4), "baseline/1nn_dtw_acc": None}
        if (cells := dtw_cells(a, b)) > (limit := self.options.dtw_max_cells):
            out["baseline/note"] = f"1nn_dtw_acc skipped: {cells:.2g} DTW cells exceed task.dtw_max_cells={limit:.2g}"
            return out
        try:
            out["baseline/1nn_dtw_acc"] = round(nn1_dtw(a, ya, b, yb), 4)
        except ImportError as e:
            out["baseline/note"] = f"1nn_dtw_acc needs aeon and its dependencies ({e}): pip install aeon (fpt's [timeseries] extra)"
        return out
