"""`task=custom data.path=FILE`: your own data with no code, a `.npz` or a Hugging Face `datasets` folder.

Columns: `x` (N, T, D) floats or (N, T) integer token ids; `y` (N,) integers (classification), (N,) floats
(regression) or (N, K) of 0/1 (multi-label); optional `mask` (N, T) (True/1 = real token) and optional `split`
(N,) of train/val/test (without it: a seeded 80/10/10 split). A `datasets` folder (`save_to_disk`) holds the same
columns, in one Dataset or a DatasetDict whose split names are train/val(idation)/test (not both val and validation).
`task.objective` overrides the guess from y. `data.train_size=N` trains on a seeded, class-stratified subset of the
training split (nested: the subset for N lies inside the one for 2N; tasks/arrays.py). Every check names the file and
what to change, in one line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fpt.errors import FPTError
from fpt.config.schema import SequenceReadout, choice
from fpt.tasks.arrays import SPLITS, ArrayOptions, ArrayTask, expect_file, pad_tokens, random_split
from fpt.tasks.spec import TaskSpec


class CustomOptions(ArrayOptions):
    objective: choice("auto", "classification", "multilabel", "regression") = "auto"
    readout: SequenceReadout = "mean"
    norm: choice("train", "none") = "train"  # float x: per-feature standardisation by the training split's statistics
    split_seed: int = 0  # the 80/10/10 split when the data has none: the same for every run seed


def read_columns(path: Path) -> dict[str, np.ndarray]:
    """The columns of an .npz or a datasets folder as numpy arrays (a DatasetDict's splits become a `split` column)."""
    if not path.exists():
        raise FPTError(f"data.path {path} does not exist; pass an .npz file or a datasets save_to_disk folder")
    if path.is_dir():
        return _read_datasets(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise FPTError(f"{path}: holds Python objects; store `split` as strings (np.array([...], dtype=str)) and "
                           f"numbers as numeric arrays") from None
        raise FPTError(f"{path}: not a readable .npz ({e})") from None
    except (OSError, EOFError) as e:
        raise FPTError(f"{path}: not a readable .npz ({e})") from None


def _read_datasets(path: Path) -> dict[str, np.ndarray]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise FPTError(f"{path}: not a datasets save_to_disk folder ({str(e).splitlines()[0]})") from None
    if isinstance(ds, datasets.DatasetDict):
        if "val" in ds and "validation" in ds:
            raise FPTError(f"{path}: has both a 'val' and a 'validation' split; keep one (merge or drop the other) so the "
                           f"validation set is unambiguous")
        parts = {("val" if k == "validation" else k): d for k, d in ds.items()}
        cols = [_columns(d, path) for d in parts.values()]
        out = {k: _stack([c[k] for c in cols], k, path) for k in cols[0]}
        out["split"] = np.concatenate([np.full(len(d), k, dtype="<U16") for k, d in parts.items()])
        return out
    return _columns(ds, path)


def _columns(ds, path: Path) -> dict[str, np.ndarray]:
    out = {c: _stack([ds[c]], c, path) for c in ds.column_names}
    if "x" in out and "mask" not in out:  # ragged sequences: their lengths are the mask
        lengths = np.array([len(r) for r in ds["x"]])
        out["mask"] = np.arange(out["x"].shape[1])[None, :] < lengths[:, None]
    return out


def _stack(parts: list, name: str, path: Path) -> np.ndarray:
    """Rows (possibly ragged lists) -> one array; ragged sequences are right-padded with 0 (their mask marks them)."""
    rows = [np.asarray(r) for part in parts for r in part]
    if not rows:
        return np.zeros((0,))
    if len({r.shape for r in rows}) == 1:
        return np.stack(rows)
    longest = max(len(r) for r in rows)
    out = np.zeros((len(rows), longest, *rows[0].shape[1:]), dtype=rows[0].dtype)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def _check_x(x: np.ndarray, path) -> bool:
    """Whether x holds token ids (else float features): one line when it is neither, empty or not finite."""
    if len(x) == 0:
        raise FPTError(f"{path}: x holds no examples")
    discrete = np.issubdtype(x.dtype, np.integer)
    if not (discrete and x.ndim == 2) and not (np.issubdtype(x.dtype, np.floating) and x.ndim == 3):
        raise FPTError(f"{path}: x must be (N, T, D) floats or (N, T) integer ids, got shape {x.shape} dtype {x.dtype}")
    if not discrete and not np.isfinite(x).all():
        raise FPTError(f"{path}: x holds {int((~np.isfinite(x)).sum())} NaN/inf values; fill or drop them (or mark them padding in mask)")
    return discrete


def _standardised(x: np.ndarray, mask: np.ndarray, stats) -> np.ndarray:
    """Float features by the training split's (mean, std) per feature (None: as stored); padding 0."""
    if stats is not None:
        x = (x - stats[0]) / stats[1]
    return np.where(mask[..., None], x, 0.0).astype(np.float32)


class Custom(ArrayTask):
    """Your own arrays: classification, multi-label or regression, chosen from y (or task.objective)."""

    Options = CustomOptions
    options: CustomOptions

    def __init__(self, options: CustomOptions | None = None, **kw):
        super().__init__(options, **kw)
        self._spec: TaskSpec | None = None

    @property
    def path(self) -> Path:
        p = self.data.get("path")
        if not p:
            raise FPTError("task=custom needs data.path=FILE: an .npz (x, y, optional mask and split) or a datasets folder")
        return Path(str(p)).expanduser()

    def data_files(self) -> list[Path]:
        return [self.path]

    @property
    def spec(self) -> TaskSpec:
        self.arrays()
        return self._spec

    def load(self) -> dict[str, dict[str, np.ndarray]]:
        path = self.path
        cols = read_columns(path)
        for need in ("x", "y"):
            if need not in cols:
                raise FPTError(f"{path}: no '{need}' column (found: {', '.join(sorted(cols)) or 'none'}); see README 'Your own data'")
        x, y = cols["x"], cols["y"]
        n, discrete = len(x), _check_x(x, path)
        if len(y) != n:
            raise FPTError(f"{path}: y has {len(y)} rows but x has {n}")
        mask = self._mask(cols.get("mask"), x, path)
        objective = self._objective(y, path)
        y = self._targets(y, objective, path)
        split = self._split(cols.get("split"), n, path)
        parts = {s: split == s for s in SPLITS}
        x = self._tokens(x, mask, parts["train"], discrete)
        loc, scale = 0.0, 1.0
        if objective == "regression":
            train_y = y[parts["train"]]
            loc, scale = float(train_y.mean()), float(train_y.std()) or 1.0
            y = ((y - loc) / scale).astype(np.float32)
        self._spec = self._make_spec(x, y, objective, discrete, loc, scale)
        return {s: {"x": x[m], "mask": mask[m], "y": y[m]} for s, m in parts.items()}

    def state(self) -> dict:
        """The spec (token width or vocabulary, length, classes, target loc/scale) and the features' training statistics."""
        stats = getattr(self, "_x_stats", None) if self.spec.token_dim is not None else None
        return {**super().state(), "x_loc": None if stats is None else stats[0].tolist(),
                "x_scale": None if stats is None else stats[1].tolist()}

    def encode(self, x, mask, state: dict, where: str) -> dict[str, np.ndarray]:
        """x (N, T, D) floats or (N, T) ids as the run's files held them (T up to the run's length) -> its tokens."""
        spec, x = TaskSpec.from_record(state["spec"]), np.asarray(x)
        discrete, trained = _check_x(x, where), spec.vocab_size is not None
        if discrete != trained or not discrete and x.shape[2] != spec.token_dim:
            have = "integer token ids" if discrete else f"{x.shape[2]} features per token"
            raise FPTError(f"{where}: x has {have}, the run was trained on "
                           f"{'integer token ids' if trained else f'{spec.token_dim} features per token'}")
        if x.shape[1] > spec.seq_len:
            raise FPTError(f"{where}: x has {x.shape[1]} tokens per example, the run was trained on {spec.seq_len}")
        mask = self._mask(None if mask is None else np.asarray(mask), x, where)
        if discrete:
            if (bad := x[mask][(x[mask] < 0) | (x[mask] >= spec.pad_id)]).size:
                raise FPTError(f"{where}: token id {bad[0]} is outside the run's vocabulary 0..{spec.pad_id - 1}")
            x = np.where(mask, x, spec.pad_id).astype(np.int64)
        else:
            stats = None if state["x_loc"] is None else (np.float32(state["x_loc"]), np.float32(state["x_scale"]))
            x = _standardised(x.astype(np.float32), mask, stats)
        return pad_tokens(x, mask, spec.seq_len, spec.pad_id or 0)

    def read_new(self, path: Path, state: dict) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """An .npz or datasets folder with x (and optionally mask and y: the labels returned); split is ignored."""
        if Path(path).is_file():
            path = expect_file(path, (".npz",), "custom", "an .npz file or a datasets save_to_disk folder")
        cols = read_columns(Path(path))
        if "x" not in cols:
            raise FPTError(f"{path}: no 'x' column (found: {', '.join(sorted(cols)) or 'none'}); a custom run reads x")
        arrays, y = self.encode(cols["x"], cols.get("mask"), state, str(path)), cols.get("y")
        spec = TaskSpec.from_record(state["spec"])
        if y is not None and (len(y) != len(cols["x"]) or spec.objective == "multilabel" and y.shape[1:] != (spec.n_targets,)):
            raise FPTError(f"{path}: y is {y.shape}, for {len(cols['x'])} examples the run predicts "
                           f"{spec.n_targets if spec.objective == 'multilabel' else 1} value(s) each")
        return arrays, y

    def _mask(self, mask, x, path: Path) -> np.ndarray:
        if mask is None:
            return np.ones(x.shape[:2], dtype=bool)
        if mask.shape != x.shape[:2]:
            raise FPTError(f"{path}: mask must be (N, T) = {x.shape[:2]}, got {mask.shape}")
        if not (mask.dtype == bool or np.isin(mask, (0, 1)).all()):
            raise FPTError(f"{path}: mask must hold only 0/1 (or True/False)")
        mask = mask.astype(bool)
        if not mask.any(1).all():
            raise FPTError(f"{path}: example {int(np.argmin(mask.any(1)))} has no real token in mask")
        return mask

    def _objective(self, y: np.ndarray, path: Path) -> str:
        if self.options.objective != "auto":
            return self.options.objective
        if y.ndim == 2:
            return "multilabel"
        if y.ndim == 1:
            return "classification" if (np.issubdtype(y.dtype, np.integer) or y.dtype == bool) else "regression"
        raise FPTError(f"{path}: y must be (N,) or (N, K), got shape {y.shape}")

    def _targets(self, y: np.ndarray, objective: str, path: Path) -> np.ndarray:
        if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
            raise FPTError(f"{path}: y must be numeric, got dtype {y.dtype}")
        if not np.isfinite(y.astype(np.float64)).all():
            raise FPTError(f"{path}: y holds NaN/inf values")
        if objective == "multilabel":
            if y.ndim != 2 or not np.isin(y, (0, 1)).all():
                raise FPTError(f"{path}: multi-label y must be (N, K) of 0/1, got shape {y.shape} with values "
                               f"{np.unique(y)[:5].tolist()}")
            return y.astype(np.int64)
        if y.ndim != 1:
            raise FPTError(f"{path}: {objective} y must be (N,), got shape {y.shape}")
        if objective == "regression":
            return y.astype(np.float32)[:, None]
        if (y != np.round(y)).any() or y.min() < 0:
            raise FPTError(f"{path}: class labels must be integers 0..C-1, got min {y.min()} (and non-integers: "
                           f"{bool((y != np.round(y)).any())}); or set task.objective=regression")
        return y.astype(np.int64)[:, None]

    def _split(self, split, n: int, path: Path) -> np.ndarray:
        if split is None:
            return random_split(n, self.options.split_seed)
        split = np.asarray(split).astype(str)
        if split.shape != (n,):
            raise FPTError(f"{path}: split must be (N,) = ({n},), got {split.shape}")
        unknown = sorted(set(split.tolist()) - set(SPLITS))
        if unknown:
            raise FPTError(f"{path}: unknown split name(s) {', '.join(map(repr, unknown))}; use train, val and test")
        empty = [s for s in SPLITS if not (split == s).any()]
        if empty:
            raise FPTError(f"{path}: split '{empty[0]}' is empty; every one of train, val and test needs examples")
        return split

    def _tokens(self, x, mask, train, discrete: bool) -> np.ndarray:
        if discrete:
            if x.min() < 0:
                raise FPTError(f"{self.path}: token ids must be >= 0, got {x.min()}")
            self._pad = int(x.max()) + 1  # padding gets its own id
            return np.where(mask, x, self._pad).astype(np.int64)
        x, self._x_stats = x.astype(np.float32), None
        if self.options.norm == "train":
            real = x[train][mask[train]]  # (tokens, D) of the training split
            self._x_stats = (real.mean(0), np.where(real.std(0) > 0, real.std(0), 1.0))
        return _standardised(x, mask, self._x_stats)

    def _make_spec(self, x, y, objective: str, discrete: bool, loc: float, scale: float) -> TaskSpec:
        if objective == "classification":
            classes, per = int(y.max()) + 1, 1
            if classes < 2:
                raise FPTError(f"{self.path}: classification needs at least 2 classes, y holds only {classes}")
        else:
            classes, per = 1, y.shape[1]
        tokens = {"vocab_size": self._pad + 1, "pad_id": self._pad} if discrete else {"token_dim": int(x.shape[2])}
        return TaskSpec(seq_len=int(x.shape[1]), num_classes=classes, targets_per_position=per, readout=self.options.readout,
                        objective=objective, target_loc=loc, target_scale=scale, **tokens)
