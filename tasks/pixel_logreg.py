"""The image tasks' strong non-transformer reference: multinomial logistic regression on the raw pixels, flattened
and standardised by the training split, its inverse regularisation C chosen on the task's validation split from a
grid, then scored once on the test set (`baseline/logreg_acc`, with `baseline/logreg_c`). Trained on the same training
split the runs use; beyond `MAX_TRAIN` images (full MNIST, CIFAR-10) a seeded subset of the training split, which
`baseline/logreg_note` says."""

from __future__ import annotations

import numpy as np

GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
MAX_TRAIN = 10_000  # lbfgs on 10k x 3072 pixels takes about a minute on 2 cores; full MNIST/CIFAR would take many


def logreg_baseline(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
                    test: tuple[np.ndarray, np.ndarray], seed: int = 0) -> dict:
    """{baseline/logreg_acc, baseline/logreg_c[, baseline/logreg_note]} for images (n, ...) and labels (n,)."""
    from sklearn.linear_model import LogisticRegression

    (xa, ya), (xv, yv), (xt, yt) = ((x.reshape(len(x), -1).astype(np.float64), np.asarray(y)) for x, y in (train, val, test))
    out = {}
    if len(xa) > MAX_TRAIN:
        keep = np.random.default_rng(seed).choice(len(xa), MAX_TRAIN, replace=False)
        xa, ya = xa[keep], ya[keep]
        out["baseline/logreg_note"] = f"logreg_acc trained on a seeded subset of {MAX_TRAIN} training images"
    mean, std = xa.mean(0), xa.std(0) + 1e-8
    xa, xv, xt = ((x - mean) / std for x in (xa, xv, xt))
    best = None
    for c in GRID:
        model = LogisticRegression(C=c, max_iter=500).fit(xa, ya)
        score = float((model.predict(xv) == yv).mean()) if len(yv) else 0.0
        if best is None or score > best[0]:  # ties: the stronger regularisation (the grid's earlier C)
            best = (score, c, model)
    _, c, model = best
    return {"baseline/logreg_acc": round(float((model.predict(xt) == yt).mean()), 4), "baseline/logreg_c": c, **out}
