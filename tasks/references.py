"""The time-series field's strong non-transformer reference classifier, scored on a UEA/UCR task's own split
(results.json's `baseline/minirocket_acc`), and the guard every costly reference goes through (`guarded`: null with a
`baseline/note` beyond its budget or without its package).

MiniRocket is aeon's (uni- and multivariate in one class), followed by a ridge classifier whose penalty leave-one-out
cross-validation on the training file chooses (`RidgeClassifierCV(alphas=np.logspace(-3, 3, 10))`, the ROCKET papers'
recipe, which aeon's MiniRocketClassifier applies after scaling the features): never tuned on the test set. Its
kernels are drawn with a fixed `random_state`, so the number is the same on every run. (The image tasks' logistic
regression: tasks/pixel_logreg.py; forecasting's DLinear: tasks/dlinear.py.)
"""

from __future__ import annotations

import numpy as np

from fpt.tasks.timeseries import to_array

MINIROCKET_MIN_STEPS = 9  # MiniRocket's kernels are 9 steps long; aeon refuses shorter series


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
    import torch

    threads = torch.get_num_threads()
    try:
        out[key] = round(run(), 4)
    except ImportError as e:
        add_note(out, f"{name} needs aeon and its dependencies ({e}): pip install aeon (fpt's [timeseries] extra)")
    finally:  # aeon's numba kernels leave OpenMP at every core: torch's steps after them (the next run of a sweep) would
        torch.set_num_threads(threads)  # spin a second thread that OMP_NUM_THREADS=1 had ruled out (2-4x slower steps)
    return out
