"""The image tasks' logistic-regression reference (tasks/pixel_logreg.py) on scikit-learn's real digits."""

from __future__ import annotations

import numpy as np

from fpt.tasks.pixel_logreg import GRID, MAX_TRAIN, logreg_baseline


def _digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x.reshape(-1, 1, 8, 8).astype(np.uint8), y


def test_logistic_regression_on_real_digits_is_strong_and_its_c_comes_from_validation():
    x, y = _digits()
    out = logreg_baseline((x[:1200], y[:1200]), (x[1200:1400], y[1200:1400]), (x[1400:], y[1400:]))
    assert 0.88 <= out["baseline/logreg_acc"] <= 0.99  # the linear model is a strong baseline on these digits
    assert out["baseline/logreg_c"] in GRID and "baseline/logreg_note" not in out


def test_a_training_split_beyond_the_cap_is_subsampled_and_says_so():
    x, y = _digits()
    big = (np.repeat(x, 6, 0)[: MAX_TRAIN + 10], np.repeat(y, 6)[: MAX_TRAIN + 10])
    out = logreg_baseline(big, (x[:50], y[:50]), (x[50:100], y[50:100]))
    assert "subset of 10000" in out["baseline/logreg_note"]
