"""How far apart two rows of a sweep are: each row's difference to FPT (and FPT's to the frozen random trunk) with a
95% confidence interval from a paired bootstrap over seeds and test examples. Seeds pair by number and examples by
their place in the test set (every run writes test_examples.npz in the test set's order; fpt.run.testing), so the
interval holds the seed noise and the test set's sampling noise, and a difference whose interval holds zero is said
to be "not distinguishable"."""

from __future__ import annotations

import numpy as np

from fpt.run.objectives import PERCENT

REFERENCE, RANDOM = "FPT", "frozen random"  # the labels of variant=fpt and variant=frozen_random
# FPT under the parameter-group ablation's name (variant=plus_pos: attention and feed-forward frozen, all else trains)
SAME_AS_FPT = ("+ positions",)


def reference(variants: list[str]) -> str:
    """The row the others are set against: FPT, or in a sweep without it the ablation's row that is FPT."""
    labels = {_split(v)[0] for v in variants}
    return next((lab for lab in (REFERENCE, *SAME_AS_FPT) if lab in labels), REFERENCE)


def paired_interval(a: dict[int, np.ndarray], b: dict[int, np.ndarray], reps: int = 2000,
                    seed: int = 0) -> tuple[float, float, float, int] | None:
    """(mean of a - b, 2.5th and 97.5th percentile of the bootstrap, seeds paired): seeds and examples resampled
    with replacement, each draw the same for both rows. None without a seed in common or with test sets that differ."""
    seeds = sorted(set(a) & set(b))
    if not seeds or len({len(a[s]) for s in seeds} | {len(b[s]) for s in seeds}) != 1:
        return None
    d = np.stack([a[s] - b[s] for s in seeds])  # (seeds, examples)
    rng = np.random.default_rng(seed)
    n_s, n_e = d.shape
    draws = np.array([d[np.ix_(rng.integers(0, n_s, n_s), rng.integers(0, n_e, n_e))].mean() for _ in range(reps)])
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return float(d.mean()), float(lo), float(hi), n_s


def _split(variant: str) -> tuple[str, str]:
    """A row's label and the swept values after it ('FPT data.train_size=8' -> ('FPT', 'data.train_size=8'))."""
    words = variant.split(" ")
    i = next((k for k, w in enumerate(words) if "=" in w), len(words))
    return " ".join(words[:i]), " ".join(words[i:])


def _cell_text(metric: str, r: tuple[float, float, float, int] | None) -> str:
    if r is None:
        return "–"
    k = 100.0 if metric in PERCENT else 1.0
    mean, lo, hi, n = (k * r[0], k * r[1], k * r[2], r[3])
    text = f"{mean:+.1f} [{lo:+.1f}, {hi:+.1f}]" if k == 100.0 else f"{mean:+.3g} [{lo:+.3g}, {hi:+.3g}]"
    return text + (" not distinguishable" if lo <= 0 <= hi else "") + f" (n={n})"


def section(by: dict, variants: list[str], tasks: list[str], metric: dict, seed_of: dict[str, int],
            examples: dict[str, np.ndarray]) -> list[str]:
    """The report's section: its heading and `table`; empty when no run kept its examples."""
    rows = table(by, variants, tasks, metric, seed_of, examples)
    if not rows:
        return []
    ref = reference(variants)
    named = "FPT's" if ref == REFERENCE else f"FPT's (the row '{ref}': FPT's own trained groups)"
    return ["", "## Differences with 95% confidence intervals", "",
            f"Each row's test value minus {named} (and FPT's minus the frozen random trunk's), in points for % metrics: "
            "the mean difference [2.5%, 97.5%] of a paired bootstrap over seeds and test examples (2,000 draws; seeds "
            "paired by number, examples by their place in the test set); n: the seeds both rows ran. A difference "
            "whose interval holds zero is not distinguishable from the seed and test-set noise.", "", *rows]


def table(by: dict, variants: list[str], tasks: list[str], metric: dict, seed_of: dict[str, int],
          examples: dict[str, np.ndarray]) -> list[str]:
    """One row per comparison, one column per task, as markdown lines; empty when no run kept its examples.
    `examples`: run -> its per-example test values (fpt.study.bundle; test_examples.npz of each run)."""

    def row_values(v, t):
        runs = (by.get((v, t)) or {}).get("runs", [])
        return {seed_of[r]: examples[r] for r in runs if r in examples}

    ref = reference(variants)
    pairs = [(v, f"{ref} {_split(v)[1]}".strip()) for v in variants if _split(v)[0] != ref]
    pairs += [(f"{ref} {s}".strip(), v) for v in variants for lab, s in [_split(v)] if lab == RANDOM]
    rows = []
    for a, b in pairs:
        if a not in variants or b not in variants:
            continue
        cells = [_cell_text(metric[t], paired_interval(row_values(a, t), row_values(b, t))) for t in tasks]
        if any(c != "–" for c in cells):
            rows.append([f"{a} − {b}", *cells])
    if not rows:
        return []
    head = ["| comparison | " + " | ".join(tasks) + " |", "|" + "---|" * (len(tasks) + 1)]
    return head + ["| " + " | ".join(r) + " |" for r in rows]
