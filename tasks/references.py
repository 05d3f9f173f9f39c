"""The strong non-transformer reference classifiers each field uses, scored on a task's own split (results.json's
`baseline/*` keys): MiniRocket + ridge on time series (UEA/UCR), multinomial logistic regression on image pixels.

Both are tuned as their papers tune them, never on the test set: MiniRocket's ridge penalty by leave-one-out
cross-validation on the training file (`RidgeClassifierCV(alphas=np.logspace(-3, 3, 10))`, the ROCKET papers' recipe,
which aeon's MiniRocketClassifier applies after scaling the features), logistic regression's C on the task's own
validation split. MiniRocket is aeon's (uni- and multivariate in one class); its kernels are drawn with a fixed
`random_state`, so the number is the same on every run.
"""

from __future__ import annotations

import warnings

import numpy as np

from fpt.tasks.timeseries import to_array

MINIROCKET_MIN_STEPS = 9  # MiniRocket's kernels are 9 steps long; aeon refuses shorter series
LOGREG_C = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # the grid of inverse penalties that validation chooses from


def minirocket_cells(train: list[np.ndarray], test: list[np.ndarray]) -> int:
    """The cost of MiniRocket's transform: series x steps (padded) x channels; it is linear in each."""
    length = max(max(s.shape[1] for s in train + test), MINIROCKET_MIN_STEPS)
    return (len(train) + len(test)) * length * train[0].shape[0]


def padded(series: list[np.ndarray], length: int) -> np.ndarray:
    """Series (d, t_i) -> (n, d, length) float64, zero-padded at the end (0: the mean of a z-normalised series, as the
    1-NN baseline pads), missing values 0."""
    x, _ = to_array(series, length)  # (n, length, d), NaN for missing values and padding
    return np.ascontiguousarray(np.nan_to_num(x).transpose(0, 2, 1), dtype=np.float64)


def minirocket_acc(train: list[np.ndarray], y_train: np.ndarray, test: list[np.ndarray], y_test: np.ndarray,
                   seed: int = 0, n_kernels: int = 10_000) -> float:
    """Test accuracy of aeon's MiniRocket (10,000 features) + RidgeClassifierCV (alpha by leave-one-out on the training
    file), fitted on the whole training file. Series (d, t_i) as stored; unequal lengths zero-padded to the longest
    (aeon's MiniRocket needs equal lengths), and to at least 9 steps. Raises ImportError without aeon and numba."""
    from aeon.classification.convolution_based import MiniRocketClassifier

    length = max(max(s.shape[1] for s in train + test), MINIROCKET_MIN_STEPS)
    clf = MiniRocketClassifier(n_kernels=n_kernels, n_jobs=1, random_state=seed)
    clf.fit(padded(train, length), np.asarray(y_train))
    return float((clf.predict(padded(test, length)) == np.asarray(y_test)).mean())


def logreg_acc(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
               max_iter: int = 200) -> tuple[float, float]:
    """(test accuracy, the chosen C) of multinomial logistic regression (lbfgs) on flattened features standardised by the
    training split's per-feature mean and std: C from LOGREG_C by validation accuracy (ties: the smaller C, the
    stronger penalty), then scored on test. Each pair is (x (n, ...), y (n,))."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(flat(train[0]))
    xs = [scaler.transform(flat(x)) for x, _ in (train, val, test)]
    best = (-1.0, None, None)
    with warnings.catch_warnings():  # max_iter caps the cost; a not quite converged fit is still a fair reference
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c in LOGREG_C:
            model = LogisticRegression(C=c, max_iter=max_iter).fit(xs[0], train[1])
            acc = float((model.predict(xs[1]) == val[1]).mean())
            if acc > best[0]:
                best = (acc, c, model)
    _, c, model = best
    return float((model.predict(xs[2]) == test[1]).mean()), c


def flat(x: np.ndarray) -> np.ndarray:
    """(n, ...) -> (n, features) float64."""
    return np.asarray(x, dtype=np.float64).reshape(len(x), -1)


def add_note(out: dict, note: str) -> dict:
    """`out` with `note` joined to its `baseline/note` (one text key per run: each skipped reference says why)."""
    out["baseline/note"] = f"{out['baseline/note']}; {note}" if out.get("baseline/note") else note
    return out


def guarded(out: dict, key: str, run, cost: tuple[str, int, int, str]) -> dict:
    """out[key] = run() rounded to 4 places, or None with a `baseline/note` saying why: its cost (what, cells, limit,
    option) exceeds the option's budget, or `run` needs a package that is missing (aeon and its dependencies)."""
    what, cells, limit, option = cost
    name = key.removeprefix("baseline/")
    out[key] = None
    if cells > limit:
        return add_note(out, f"{name} skipped: {cells:.2g} {what} cells exceed {option}={limit:.2g}")
    try:
        out[key] = round(run(), 4)
    except ImportError as e:
        add_note(out, f"{name} needs aeon and its dependencies ({e}): pip install aeon (fpt's [timeseries] extra)")
    return out
