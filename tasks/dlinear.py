"""DLinear (Zeng et al. 2023, "Are Transformers Effective for Time Series Forecasting?"), the forecasting field's strong
non-transformer reference, fitted in closed form on a forecasting task's own windows.

Axes: n windows, L input steps (seq_len), H horizon, c channels.

The model as the paper builds it: each input window x (L,) splits into a trend, the moving average of `kernel` (25)
steps with the window's first and last values repeated at its ends, and the seasonal rest x - trend; one Linear(L, H)
reads each part and their outputs add. Channel-independent, one set of weights shared by every channel (the paper's
`individual=False`), no per-window normalisation. Both parts are linear in x, so the least-squares fit is one ridge
regression on the features [seasonal, trend, 1] (2L + 1 of them) instead of Adam on the MSE; its one hyperparameter,
the ridge penalty, is chosen from PENALTIES by the validation windows' MSE. The normal equations are accumulated
channel by channel from the raw windows' moments (X'X is L x L), so memory stays at one channel's windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

KERNEL = 25  # the paper's moving-average window
PENALTIES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)  # ridge penalties on the mean squared error; validation chooses one


@dataclass(frozen=True)
class Fit:
    """What DLinear scored: test MSE and MAE over every (window, channel, step), the penalty validation chose and the
    validation MSE it reached."""

    mse: float
    mae: float
    penalty: float
    val_mse: float


def trend_matrix(seq_len: int, kernel: int = KERNEL) -> np.ndarray:
    """A (L, L): trend = x @ A.T, the centred moving average of `kernel` steps, the ends padded with the first and last
    values (the paper's `moving_avg`: AvgPool1d(kernel, stride 1) over a replicate-padded window)."""
    half = (kernel - 1) // 2
    a = np.zeros((seq_len, seq_len))
    for i in range(seq_len):
        for j in range(i - half, i + kernel - half):
            a[i, min(max(j, 0), seq_len - 1)] += 1.0 / kernel
    return a


def feature_map(seq_len: int, kernel: int = KERNEL) -> np.ndarray:
    """M (L, 2L): x @ M = [seasonal, trend] of each window x."""
    a = trend_matrix(seq_len, kernel)
    return np.concatenate([np.eye(seq_len) - a.T, a.T], axis=1)


def channel_windows(series: np.ndarray, seq_len: int, horizon: int, windows: int | None = None):
    """Per channel of `series` (rows, c): its inputs X (n, L) and targets Y (n, H) as float64, the first `windows`."""
    for ch in range(series.shape[1]):
        w = sliding_window_view(series[:, ch], seq_len + horizon)[:windows].astype(np.float64)  # (n, L + H)
        yield w[:, :seq_len], w[:, seq_len:]


def normal_equations(train: np.ndarray, m: np.ndarray, horizon: int, windows: int | None = None):
    """(F'F / n, F'Y / n) of the features F = [X @ M, 1] over every training window and channel."""
    seq_len = m.shape[0]
    xx, xy = np.zeros((seq_len + 1, seq_len + 1)), np.zeros((seq_len + 1, horizon))
    n = 0
    for x, y in channel_windows(train, seq_len, horizon, windows):
        x1 = np.concatenate([x, np.ones((len(x), 1))], axis=1)  # (n, L + 1): the bias as a constant input
        xx += x1.T @ x1
        xy += x1.T @ y
        n += len(x)
    lift = np.zeros((seq_len + 1, 2 * seq_len + 1))  # [x, 1] -> [x @ M, 1]
    lift[:seq_len, : 2 * seq_len], lift[seq_len, 2 * seq_len] = m, 1.0
    return lift.T @ xx @ lift / n, lift.T @ xy / n


def solve(ff: np.ndarray, fy: np.ndarray, penalty: float) -> np.ndarray:
    """W (2L + 1, H): ridge on the weights, not on the bias (the last row)."""
    ridge = np.full(len(ff), penalty)
    ridge[-1] = 0.0
    return np.linalg.solve(ff + np.diag(ridge), fy)


def errors(series: np.ndarray, m: np.ndarray, ws: list[np.ndarray]) -> list[tuple[float, float]]:
    """(MSE, MAE) of each weight set in `ws` over every window, channel and step of `series` (rows, c)."""
    seq_len, horizon = m.shape[0], ws[0].shape[1]
    se, ae, count = np.zeros(len(ws)), np.zeros(len(ws)), 0
    for x, y in channel_windows(series, seq_len, horizon):
        f = np.concatenate([x @ m, np.ones((len(x), 1))], axis=1)  # (n, 2L + 1)
        for k, w in enumerate(ws):
            d = f @ w - y
            se[k], ae[k] = se[k] + (d * d).sum(), ae[k] + np.abs(d).sum()
        count += y.size
    return [(float(s / count), float(a / count)) for s, a in zip(se, ae)]


def dlinear(train: np.ndarray, val: np.ndarray, test: np.ndarray, seq_len: int, horizon: int, windows: int | None = None,
            kernel: int = KERNEL, penalties: tuple[float, ...] = PENALTIES) -> Fit:
    """DLinear fitted on `train`'s windows (its first `windows`; None: all), its penalty chosen on `val`'s, scored on
    `test`'s. Splits (rows, c) on the scale the metrics use; a window is L input rows and the next H."""
    m = feature_map(seq_len, kernel)
    ff, fy = normal_equations(train, m, horizon, windows)
    ws = [solve(ff, fy, p) for p in penalties]
    on_val = [mse for mse, _ in errors(val, m, ws)]
    best = int(np.argmin(on_val))
    (mse, mae), = errors(test, m, [ws[best]])
    return Fit(mse=mse, mae=mae, penalty=penalties[best], val_mse=on_val[best])
