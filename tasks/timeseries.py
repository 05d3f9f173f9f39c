"""Time series as patch tokens (One Fits All's recipe) and the UEA/UCR `.ts` reader.

Axes: n series, t time steps, d channels, p patches, l patch length.

Normalisation (`task.norm`): `train` (each channel by the training split's mean and std), `instance` (each series
and channel by its own: RevIN without the affine part) or `none`. Missing values (NaN, `?` in .ts files) and padding
become 0 after normalisation (the channel's mean); padding is masked out.

The archive's reference classifiers (`nn1_euclidean`, `nn1_dtw`) read the series as the files store them (the UCR
files hold each series z-normalised already): the whole training file against the test file, missing values 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from fpt.errors import FPTError

NORMS = ("train", "instance", "none")


def read_ts(path: Path) -> tuple[list[np.ndarray], list[str | None], list[str] | None]:
    """A UEA/UCR .ts file -> (series, each (d, t) float with NaN for `?`; labels (None each under `@classLabel false`);
    the header's class labels or None)."""
    series, labels, dims, head = [], [], None, {"classes": None, "labelled": True, "data": False}
    with open(path) as f:
        for no, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not head["data"]:
                _header(line, head, path, no)
                continue
            *channels, label = line.split(":") if head["labelled"] else [*line.split(":"), None]
            if not channels:
                raise FPTError(f"{path}:{no}: a data line needs channels then ':' and the class label; got {line[:40]!r}")
            if dims is not None and len(channels) != dims:
                raise FPTError(f"{path}:{no}: {len(channels)} channels, but the lines before have {dims}; fix or remove this line")
            dims = len(channels)
            series.append(_channels(channels, path, no))
            labels.append(None if label is None else label.strip())
    if not head["data"] or not series:
        raise FPTError(f"{path}: no @data section with examples; is it a UEA/UCR .ts file?")
    classes = head["classes"]
    if classes is not None and (bad := sorted(set(labels) - set(classes))):
        raise FPTError(f"{path}: label {bad[0]!r} is not among @classLabel {' '.join(classes)}")
    return series, labels, classes


def _header(line: str, head: dict, path: Path, no: int) -> None:
    """One header line of a .ts file into `head`: its class labels (or none), and where the data starts."""
    key, _, rest = line.partition(" ")
    key = key.lower()
    if key == "@classlabel":
        words = rest.split()
        head["classes"] = words[1:] if words and words[0].lower() == "true" else None
        head["labelled"] = not (words and words[0].lower() == "false")
    elif key == "@timestamps" and rest.strip().lower() == "true":
        raise FPTError(f"{path}:{no}: time-stamped .ts files are not supported; use the archive's plain form")
    elif key == "@data":
        head["data"] = True


def _channels(channels: list[str], path: Path, no: int) -> np.ndarray:
    rows = []
    for c in channels:
        try:
            rows.append(np.array([np.nan if v.strip() == "?" else float(v) for v in c.split(",")], dtype=np.float32))
        except ValueError:
            bad = next(v for v in c.split(",") if v.strip() != "?" and not _is_number(v))
            raise FPTError(f"{path}:{no}: {bad.strip()!r} is not a number (missing values are '?')") from None
    longest = max(len(r) for r in rows)
    return np.stack([np.pad(r, (0, longest - len(r)), constant_values=np.nan) for r in rows])  # (d, t)


def _is_number(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def to_array(series: list[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Series (d, t_i) -> x (n, length, d) with NaN for missing values and mask (n, length): True within each series."""
    x = np.full((len(series), length, series[0].shape[0]), np.nan, dtype=np.float32)
    mask = np.zeros((len(series), length), dtype=bool)
    for i, s in enumerate(series):
        x[i, : s.shape[1]] = s.T
        mask[i, : s.shape[1]] = True
    return x, mask


def channel_stats(x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (d,) over the real, non-missing values of x (n, t, d)."""
    real = np.where(mask[..., None], x, np.nan)
    mean, std = np.nanmean(real, axis=(0, 1)), np.nanstd(real, axis=(0, 1))
    return np.nan_to_num(mean), np.where(np.nan_to_num(std) > 0, np.nan_to_num(std), 1.0)


def normalise(x: np.ndarray, mask: np.ndarray, norm: str, stats=None) -> np.ndarray:
    """x (n, t, d) normalised by `norm` (`stats`: the training split's (mean, std) for `train`); missing and padding -> 0."""
    if norm == "train":
        x = (x - stats[0]) / stats[1]
    elif norm == "instance":
        real = np.where(mask[..., None], x, np.nan)
        mean, std = np.nanmean(real, axis=1, keepdims=True), np.nanstd(real, axis=1, keepdims=True)  # (n, 1, d)
        x = (x - np.nan_to_num(mean)) / np.where(np.nan_to_num(std) > 0, np.nan_to_num(std), 1.0)
    return np.where(mask[..., None], np.nan_to_num(x), 0.0).astype(np.float32)


def auto_patch(t: int, tokens: int = 32) -> tuple[int, int]:
    """(patch_len, stride) for series of t steps under `task.patch_len: auto`: stride round(t / tokens) (at least 1),
    patches twice as long (half overlapping), so about `tokens` tokens: 16 every 8 at ArrowHead's 251 steps (One Fits
    All's setting), 10 every 5 at GunPoint's 150, 2 every 1 at ItalyPowerDemand's 24 (scripts/patch_length.py)."""
    stride = max(1, round(t / tokens))
    return 2 * stride, stride


def patch_setting(patch_len: int | str, stride: int | str, t: int) -> tuple[int, int]:
    """(patch_len, stride) for series of t steps from `task.patch_len` and `task.stride`, either of them `auto`: both
    auto_patch's; one given, the other from patches twice the stride (half overlapping)."""
    if patch_len == "auto" and stride == "auto":
        return auto_patch(t)
    if patch_len == "auto":
        return 2 * int(stride), int(stride)
    return int(patch_len), (max(1, int(patch_len) // 2) if stride == "auto" else int(stride))


def n_patches(t: int, patch_len: int, stride: int) -> int:
    """Patches of a series of t steps, the last one padded to full length."""
    return 1 + max(0, -(-(t - patch_len) // stride))


def patches(x: np.ndarray, mask: np.ndarray, patch_len: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """x (n, t, d), mask (n, t) -> tokens (n, p, l*d) and their mask (n, p): a patch is real if any step in it is."""
    p = n_patches(x.shape[1], patch_len, stride)
    pad = (p - 1) * stride + patch_len - x.shape[1]
    x = np.pad(x, ((0, 0), (0, pad), (0, 0)))
    mask = np.pad(mask, ((0, 0), (0, pad)))
    idx = np.arange(p)[:, None] * stride + np.arange(patch_len)[None, :]  # (p, l)
    tokens = rearrange(x[:, idx], "n p l d -> n p (l d)")
    return np.ascontiguousarray(tokens, dtype=np.float32), mask[:, idx].any(-1)


def nn1_euclidean(train: list[np.ndarray], y_train: np.ndarray, test: list[np.ndarray], y_test: np.ndarray) -> float:
    """1-NN test accuracy, Euclidean over every channel, series (d, t_i) as stored; unequal lengths are zero-padded to
    the longest (0 is the mean of a z-normalised series), missing values are 0; ties go to the first training series."""
    length = max(s.shape[1] for s in train + test)
    a, b = (torch.from_numpy(np.nan_to_num(to_array(s, length)[0])).double().flatten(1) for s in (train, test))
    nearest = y_train[torch.cdist(b, a).argmin(1).numpy()]
    return float((nearest == y_test).mean())


def dtw_cells(train: list[np.ndarray], test: list[np.ndarray]) -> int:
    """The cost of full-window DTW 1-NN: series pairs x steps^2 x channels (cells of the DTW tables, summed)."""
    length = max(s.shape[1] for s in train + test)
    return len(train) * len(test) * length**2 * train[0].shape[0]


def nn1_dtw(train: list[np.ndarray], y_train: np.ndarray, test: list[np.ndarray], y_test: np.ndarray) -> float:
    """1-NN test accuracy with full-window DTW (aeon's; multivariate: dependent DTW, one warping for all channels),
    series as stored, unequal lengths as they are, missing values 0. Raises ImportError without aeon and numba."""
    from aeon.distances import dtw_pairwise_distance

    a, b = ([np.nan_to_num(s).astype(np.float64) for s in part] for part in (train, test))
    if len({s.shape[1] for s in a + b}) == 1:
        a, b = np.stack(a), np.stack(b)  # (n, d, t): aeon's fast path for equal lengths
    nearest = y_train[np.asarray(dtw_pairwise_distance(b, a, window=None)).argmin(1)]
    return float((nearest == y_test).mean())
