"""The fields' strong non-transformer references (results.json's baseline/*): MiniRocket + ridge (tasks/references.py)
and DLinear in closed form (tasks/dlinear.py), each on data the test builds. (Logistic regression on pixels:
tests/test_pixel_logreg.py.)"""

import numpy as np
import pytest

from fpt.tasks.dlinear import KERNEL, dlinear, feature_map, trend_matrix
from fpt.tasks.references import guarded, minirocket_acc


def _minirocket():
    try:
        from aeon.classification.convolution_based import MiniRocketClassifier  # noqa: F401 - needs aeon with numba
    except ImportError:
        pytest.skip("MiniRocket needs aeon installed with its dependencies (numba)")


def test_minirocket_separates_an_easy_two_class_set_of_unequal_lengths():
    _minirocket()
    rng = np.random.default_rng(0)

    def series(label, n):  # class 0: a slow sine, class 1: a fast one; random phase, length and noise
        out = []
        for _ in range(n):
            t = np.arange(rng.integers(40, 61))
            out.append(np.sin(2 * np.pi * t / (20 if label else 8) + rng.uniform(0, 6))[None] + 0.3 * rng.normal(size=(1, len(t))))
        return out

    train, test = series(0, 15) + series(1, 15), series(0, 20) + series(1, 20)
    y_train, y_test = np.repeat([0, 1], 15), np.repeat([0, 1], 20)
    acc = minirocket_acc(train, y_train, test, y_test)
    assert acc > 0.9
    assert minirocket_acc(train, y_train, test, y_test) == acc  # seeded kernels: the same number twice


def test_a_reference_leaves_torchs_thread_count_as_it_found_it():
    """aeon's numba kernels reset OpenMP to every core; torch then spun a second thread in every later run of a
    single-threaded sweep (cpu_align's UEA runs went from 0.05 to 0.2-0.8 s a step on two side-by-side sweeps)."""
    import torch

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        out = guarded({}, "baseline/x_acc", lambda: torch.set_num_threads(2) or 0.5, ("x", 1, 10, "task.x_max_cells"))
        assert out == {"baseline/x_acc": 0.5} and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


# --- DLinear --------------------------------------------------------------------------------------------------------
def test_the_trend_is_the_papers_replicate_padded_moving_average():
    x = np.random.default_rng(0).normal(size=(3, 40))
    half = (KERNEL - 1) // 2
    padded = np.concatenate([np.repeat(x[:, :1], half, 1), x, np.repeat(x[:, -1:], half, 1)], 1)  # their moving_avg
    trend = np.stack([padded[:, i : i + KERNEL].mean(1) for i in range(40)], 1)
    np.testing.assert_allclose(x @ trend_matrix(40).T, trend)
    np.testing.assert_allclose(x @ feature_map(40), np.concatenate([x - trend, trend], 1))  # [seasonal, trend]


def _splits(series: np.ndarray, seq_len: int):
    """7:1:2 with val and test starting seq_len early, as task=forecast cuts a non-ETT file."""
    n = len(series)
    a, b = int(n * 0.7), n - int(n * 0.2)
    return series[:a], series[a - seq_len : b], series[b - seq_len :]


def test_dlinear_recovers_an_exact_linear_series():
    t = np.arange(1000, dtype=np.float64)[:, None]
    fit = dlinear(*_splits(np.concatenate([0.01 * t - 3, -0.02 * t + 5], 1), 48), 48, 12)
    assert fit.mse < 1e-6 and fit.mae < 1e-3 and fit.penalty == 1e-4  # the weakest penalty: nothing to regularise


def test_dlinear_beats_the_last_value_on_a_seasonal_series():
    rng = np.random.default_rng(0)
    t = np.arange(2000)[:, None]
    series = np.sin(2 * np.pi * t / 24) + 0.3 * np.sin(2 * np.pi * t / 168) + 0.2 * rng.normal(size=(2000, 2))
    train, val, test = _splits(series, 96)
    fit = dlinear(train, val, test, 96, 24)
    windows = np.lib.stride_tricks.sliding_window_view(test, 96 + 24, axis=0)  # (n, c, 120)
    naive = ((windows[..., 96:] - windows[..., 95:96]) ** 2).mean()  # repeat the last input value
    assert fit.mse < 0.1 < naive  # measured 0.041 vs 1.11: the noise's 0.04 is the floor
