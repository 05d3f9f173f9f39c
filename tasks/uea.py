"""`task=uea data.name=NAME`: a UEA/UCR classification archive's `.ts` files as patch tokens.

Reads `<data.root>/NAME/NAME_TRAIN.ts` and `NAME_TEST.ts`; without them, the copy that the `aeon` package ships
(JapaneseVowels, GunPoint, ArrowHead, BasicMotions, ItalyPowerDemand, OSULeaf, ...), found through the installed
package without importing it. Uni- and multivariate, unequal lengths (padding masked) and missing values (`?`).
Validation is carved from the training file, stratified: round(val_fraction * n_c) of each class (seeded by
`task.split_seed`), never a class's last series; `task.val=cv` cross-validates instead (fpt/run/crossval.py: k
stratified folds of the training file, then a refit on all of it, `task.cv_fold` telling each fit its part). The official test file is the test set, whole. `data.train_size=N`
trains on a stratified, nested subset of the rest (tasks/arrays.py). results.json records the archive's reference
classifiers as timeseriesclassification.com publishes them: 1-nearest-neighbour on the whole training file against
the test file, series as stored, Euclidean (`baseline/1nn_acc`) and full-window DTW through aeon
(`baseline/1nn_dtw_acc`), and the field's strong non-transformer classifier: aeon's MiniRocket + a ridge classifier
whose penalty leave-one-out cross-validation on the training file chooses (`baseline/minirocket_acc`,
tasks/references.py); each null with a `baseline/note` saying why when aeon is missing or the cost exceeds its budget
(`task.dtw_max_cells`, `task.minirocket_max_cells`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import numpy as np
from pydantic import Field

from fpt.errors import FPTError
from fpt.config.schema import Count, Fraction, NonNegative, SequenceReadout, choice
from fpt.tasks.arrays import ArrayOptions, ArrayTask, expect_file, pad_tokens
from fpt.tasks.references import guarded, minirocket_acc, minirocket_cells
from fpt.tasks.sampling import stratified_folds, stratified_holdout
from fpt.tasks.spec import TaskSpec
from fpt.tasks.timeseries import (NORMS, channel_stats, dtw_cells, nn1_dtw, nn1_euclidean, normalise, patch_setting, patches,
                                  read_ts, to_array)


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


REFIT = -1  # task.cv_fold of cross-validation's refit: trains on the whole training file
PatchSize = Annotated[Union[Count, Literal["auto"]], Field(description="a positive integer or auto")]


class UEAOptions(ArrayOptions):
    patch_len: PatchSize = 4
    stride: PatchSize = 2
    norm: choice(*NORMS) = "train"  # by measurement: per-instance normalisation erases the levels that tell classes apart
    readout: SequenceReadout = "mean"
    val_fraction: Fraction = 0.2
    split_seed: NonNegative = 0
    val: choice("holdout", "cv") = "holdout"  # cv: k-fold cross-validation, then a refit on the whole file
    folds: Count = 5
    cv_fold: Optional[int] = None  # set by the cross-validation for each of its fits: k validates on fold k; -1 the refit
    dtw_max_cells: NonNegative = 2_000_000_000  # the DTW 1-NN baseline's budget (train x test pairs x steps^2 x channels)
    minirocket_max_cells: NonNegative = 20_000_000  # MiniRocket's budget (series x steps x channels; ~3 s per million)
    minirocket_seed: NonNegative = 0  # MiniRocket's random_state: the same kernels, so the same number, on every run


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
        if None in tr_labels + te_labels:
            raise FPTError(f"{train_path}: @classLabel false: no class labels to train and test on")
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
        split[np.flatnonzero(self._carve(y[: len(tr), 0], train_path))] = "val"
        self.stored = {"train": (tr, y[: len(tr), 0]), "test": (te, y[len(tr) :, 0])}  # as in the files: the 1-NN baselines
        self._stats, self._length = channel_stats(x[split == "train"], mask[split == "train"]), length
        tokens, tmask = self._tokens(x, mask, self._stats)
        out = {s: {"x": tokens[split == s], "mask": tmask[split == s], "y": y[split == s]} for s in ("train", "val", "test")}
        if self.options.cv_fold == REFIT:  # nothing is held out: its one evaluation, at its last step, reads the training file
            out["val"] = out["train"]
        return out

    def _carve(self, labels: np.ndarray, path: Path) -> np.ndarray:
        """Which training series validate (bool): the stratified holdout, or under cross-validation fold task.cv_fold
        (the refit: none)."""
        o = self.options
        if o.cv_fold is not None:
            if not REFIT <= o.cv_fold < o.folds:
                raise FPTError(f"task.cv_fold={o.cv_fold} is not a fold of task.folds={o.folds}; leave it unset (fpt.run.crossval sets it)")
            return stratified_folds(labels, o.folds, o.split_seed) == o.cv_fold
        held = stratified_holdout(labels, o.val_fraction, o.split_seed)
        if not held.any():
            raise FPTError(f"{path}: no class has two training series, so validation cannot be carved without "
                           f"removing a class from training; add series (or use a larger file)")
        return held

    def training_labels(self) -> list[str]:
        """The training file's class labels, read without tokenising (what task.val=cv deals into folds)."""
        train_path, _ = self.files()
        labels = read_ts(train_path)[1]
        if None in labels:
            raise FPTError(f"{train_path}: @classLabel false: no class labels to train and test on")
        return labels

    def _tokens(self, x: np.ndarray, mask: np.ndarray, stats) -> tuple[np.ndarray, np.ndarray]:
        """Series x (n, t, d) with NaN for missing values -> normalised (task.norm; `stats`: the training split's) patches."""
        patch_len, stride = patch_setting(self.options.patch_len, self.options.stride, x.shape[1])
        return patches(normalise(x, mask, self.options.norm, stats), mask, patch_len, stride)

    def state(self) -> dict:
        """The spec, the class names, channels and series length, and the channels' training statistics."""
        self.arrays()
        return {**super().state(), "classes": list(self.classes), "channels": int(self.stored["train"][0][0].shape[0]),
                "length": int(self._length), "channel_mean": self._stats[0].tolist(), "channel_std": self._stats[1].tolist()}

    def encode(self, x, mask, state: dict, where: str) -> dict[str, np.ndarray]:
        """Series x (N, T, channels) with NaN for missing values, T up to the run's length; mask (N, T) True within each."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[2] != state["channels"]:
            have = f"{x.shape[2]} channels" if x.ndim == 3 else f"shape {x.shape}, not (N, T, channels)"
            raise FPTError(f"{where}: series have {have}, the run was trained on {state['channels']} channel(s)")
        if x.shape[1] > state["length"]:
            raise FPTError(f"{where}: series of {x.shape[1]} steps, the run was trained on at most {state['length']}")
        mask = np.ones(x.shape[:2], dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        padded = pad_tokens(x, mask, state["length"], np.nan)  # as the training files' shorter series are
        stats = (np.float32(state["channel_mean"]), np.float32(state["channel_std"]))
        tokens, tmask = self._tokens(padded["x"], padded["mask"], stats)
        return {"x": tokens, "mask": tmask}

    def read_new(self, path: Path, state: dict) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """A .ts file; its labels (when it has them) as indices into the run's classes."""
        path = expect_file(path, (".ts",), "uea", "a UEA/UCR .ts file")
        series, labels, _ = read_ts(path)
        arrays = self.encode(*to_array(series, max(s.shape[1] for s in series)), state, str(path))
        if None in labels:
            return arrays, None
        classes = state["classes"]
        if bad := sorted(set(labels) - set(classes)):
            raise FPTError(f"{path}: label {bad[0]!r} is not among the run's classes {' '.join(classes)}")
        return arrays, np.array([classes.index(c) for c in labels], dtype=np.int64)

    def baselines(self) -> dict:
        """The archive's reference classifiers and MiniRocket, whole training file vs test file, series as stored: 1-NN
        Euclidean, 1-NN full-window DTW, MiniRocket + ridge (tasks/references.py); each a null with `baseline/note` saying
        why without aeon or beyond its budget (task.dtw_max_cells, task.minirocket_max_cells)."""
        self.arrays()
        (a, ya), (b, yb), o = self.stored["train"], self.stored["test"], self.options
        out = {"baseline/1nn_acc": round(nn1_euclidean(a, ya, b, yb), 4)}
        guarded(out, "baseline/1nn_dtw_acc", lambda: nn1_dtw(a, ya, b, yb),
                ("DTW", dtw_cells(a, b), o.dtw_max_cells, "task.dtw_max_cells"))
        return guarded(out, "baseline/minirocket_acc", lambda: minirocket_acc(a, ya, b, yb, seed=o.minirocket_seed),
                       ("MiniRocket", minirocket_cells(a, b), o.minirocket_max_cells, "task.minirocket_max_cells"))
