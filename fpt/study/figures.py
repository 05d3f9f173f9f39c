"""The plots of `fpt report`: learning curves, accuracy bars, accuracy vs learning rate and vs training-set size, on
one 0-100% scale with each task's chance line."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from fpt.plots import pyplot, save
from fpt.study.sweep import overrides_of


def _mean_band(series: list[dict[int, float]], carry: bool = False) -> tuple[list[int], list[float], list[float], list[float]]:
    """Steps, the mean over the runs that logged each step, and its band: the lowest and highest of those runs.
    `carry`: a run that stopped before the others counts at its last value after it (validation accuracy: the mean of
    the runs still going would rise as the weaker ones stop on their plateau)."""
    steps = sorted(set().union(*series)) if series else []
    last = [max(c) if c else None for c in series]
    at = [[c[s] if s in c else c[end] for c, end in zip(series, last) if s in c or (carry and end is not None and s > end)]
          for s in steps]
    return steps, [statistics.fmean(v) for v in at], [min(v) for v in at], [max(v) for v in at]


def percent_axis(ax, chance: float | None = None, highest: float = 100.0) -> None:
    """The one accuracy scale of every plot: 0-100% (raised only to show an error bar above 100), a chance line."""
    ax.set_ylim(0, max(100.0, highest) + (3 if highest > 100 else 0))
    if chance is not None:
        ax.axhline(100 * chance, ls=":", lw=1.2, color="gray", label=f"chance ({100 * chance:.3g}%)")


def seeds_label(ns) -> str:
    """What an error bar is: 'std over 3 seeds' (or '2-3 seeds' when cells differ)."""
    ns = sorted(set(ns))
    return f"std over {ns[0] if len(ns) == 1 else f'{ns[0]}-{ns[-1]}'} seed{'s' if ns[-1] != 1 else ''}"


def align_note(rows: list[dict], runs: list[str]) -> str:
    """'; align 55.8 -> 22.4': the mean alignment distance before and after the stage (model.align, results.csv's
    align/before and align/after) over these runs; '' when none aligned."""
    pairs = [(r["align/before"], r["align/after"]) for r in rows
             if r.get("run_dir") in runs and isinstance(r.get("align/before"), float) and isinstance(r.get("align/after"), float)]
    if not pairs:
        return ""
    return f"; align {statistics.fmean(p[0] for p in pairs):.3g} -> {statistics.fmean(p[1] for p in pairs):.3g}"


def learning_curves(curves: dict, by, tasks, plots: Path, title: str = "", chance: dict | None = None,
                    rows: list[dict] | None = None) -> Path:
    """Per task: validation accuracy (markers: every evaluation, however few) and training loss, one line per variant
    (the mean over the selected runs, i.e. over seeds; a run that stopped early counts at its last validation accuracy
    after it) in a band from the lowest to the highest seed; a variant that
    aligned its input layer first (model.align) names its distance before and after the stage (`rows`: results.csv's).
    `curves`: run -> {"val": {step: value}, "train_loss": {step: value}} (fpt.study.bundle)."""
    plt = pyplot()
    fig, axes = plt.subplots(2, len(tasks), figsize=(5 * len(tasks), 6.6), squeeze=False, sharex="col")
    for col, task in enumerate(tasks):
        acc_ax, loss_ax = axes[0][col], axes[1][col]
        for (variant, t), cell in by.items():
            if t != task:
                continue
            runs = [curves.get(r, {"val": {}, "train_loss": {}}) for r in cell["runs"]]
            steps, ys, lo, hi = _mean_band([c["val"] for c in runs], carry=True)
            label = f"{variant} (n={len(runs)}{align_note(rows or [], cell['runs'])})"
            line = acc_ax.plot(steps, [100 * y for y in ys], marker="o", ms=4, label=label)[0]
            acc_ax.fill_between(steps, [100 * y for y in lo], [100 * y for y in hi], color=line.get_color(), alpha=0.15, lw=0)
            steps, ys, lo, hi = _mean_band([c["train_loss"] for c in runs])
            loss_ax.plot(steps, ys, color=line.get_color(), alpha=0.8)
            loss_ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
        percent_axis(acc_ax, (chance or {}).get(task))
        acc_ax.set(title=task, ylabel="val accuracy (%)")
        loss_ax.set(xlabel="step", ylabel="train loss")
        if any(y > 0 for line in loss_ax.lines for y in line.get_ydata()):
            loss_ax.set_yscale("log")
        for ax in (acc_ax, loss_ax):
            ax.grid(alpha=0.3)
        acc_ax.legend(fontsize=7)
    fig.suptitle(f"{title}\nvalidation accuracy and training loss of the selected runs: mean over seeds, band: lowest "
                 "to highest seed\n(a run that stopped early stays at its last validation accuracy)", fontsize=10)
    return save(fig, plots / "learning_curves.png")


def bars(by, variants, tasks, plots: Path, title: str = "", chance: dict | None = None, refs: dict | None = None) -> Path:
    """Grouped bars: test accuracy per variant (e.g. the parameter-group ablation) for each task column; each task's
    chance level and its own reference numbers (`refs`: baseline/NAME -> {task: [values]}) as lines across its group."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(5.5, 0.45 * len(variants) * len(tasks) + 2.5), 4.2))
    width = 0.8 / max(len(variants), 1)
    highest = 0.0
    for i, v in enumerate(variants):
        xs = [j + i * width for j, t in enumerate(tasks) if (v, t) in by]  # a cell the sweep did not run: no bar
        ys = [100 * by[(v, t)]["test_mean"] for t in tasks if (v, t) in by]
        es = [100 * by[(v, t)]["test_std"] for t in tasks if (v, t) in by]
        highest = max([highest, *(y + e for y, e in zip(ys, es))])
        ax.bar(xs, ys, width, yerr=es, capsize=3, label=v)
    lines = [("chance (1 / classes)", {t: [c] for t, c in (chance or {}).items() if c is not None}, ":", "gray")]
    lines += [(k, per_task, style, "black") for (k, per_task), style in zip((refs or {}).items(), ("--", "-.", (0, (1, 3)), "-"))]
    for label, per_task, style, color in lines:  # across each task's group of bars
        shown = [(j, v) for j, t in enumerate(tasks) for v in per_task.get(t, [])]
        for k, (j, v) in enumerate(shown):
            ax.hlines(100 * v, j - width / 2 - 0.05, j + 0.8 - width / 2 + 0.05, ls=style, lw=1.4, color=color,
                      label=label if k == 0 else None)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(tasks))], tasks)
    percent_axis(ax, highest=highest)
    ax.set_ylabel(f"test accuracy (%)\nbars: mean; error bars: {seeds_label(c['n'] for c in by.values())}")
    ax.set_title(f"{title}\ntest accuracy at the lr chosen on validation", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save(fig, plots / "accuracy_bars.png")


def lr_plot(by, variants, tasks, plots: Path, title: str = "", chance: dict | None = None) -> Path | None:
    """Test accuracy vs learning rate per variant, when more than one lr was run."""
    if not any(len(c["lrs"]) > 1 for c in by.values()):
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4.0), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for v in variants:
            if (v, task) in by:
                lrs = by[(v, task)]["lrs"]
                ax.plot(list(lrs), [100 * a for a in lrs.values()], marker="o", label=v)
        percent_axis(ax, (chance or {}).get(task))
        ax.set(title=task, xscale="log", xlabel="learning rate", ylabel="test accuracy (%), mean over seeds")
        ax.legend(fontsize=7)
    fig.suptitle(f"{title}\ntest accuracy vs learning rate", fontsize=10)
    return save(fig, plots / "accuracy_vs_lr.png")


def size_plot(rows, plots: Path, title: str = "", chance: dict | None = None) -> Path | None:
    """Test accuracy vs training-set size (data.train_size), one line per variant, per task."""
    pts: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        size = overrides_of(r["config"]).get("data.train_size")
        if r["status"] == "ok" and size not in (None, "null"):
            variant = r["variant"].replace(f"data.train_size={size}", "").strip() or "default"
            pts[(r["task"], variant)][int(size)].append(float(r["test"]))
    if not pts:
        return None
    plt = pyplot()
    tasks = sorted({t for t, _ in pts})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4.0), squeeze=False)
    ns = [len(accs) for by_size in pts.values() for accs in by_size.values()]
    for ax, task in zip(axes[0], tasks):
        highest = 0.0
        for (t, v), by_size in pts.items():  # the sweep's variant order: the same colours as the other plots
            if t == task:
                sizes = sorted(by_size)
                ys = [100 * statistics.fmean(by_size[s]) for s in sizes]
                es = [100 * (statistics.stdev(by_size[s]) if len(by_size[s]) > 1 else 0) for s in sizes]
                highest = max([highest, *(y + e for y, e in zip(ys, es))])
                ax.errorbar(sizes, ys, yerr=es, marker="o", capsize=3, label=v)
        percent_axis(ax, (chance or {}).get(task), highest)
        ax.set(title=task, xscale="log", xlabel="training examples", ylabel=f"test accuracy (%)\nmean, error bars: {seeds_label(ns)}")
        ax.legend(fontsize=7)
    fig.suptitle(f"{title}\ntest accuracy vs training-set size", fontsize=10)
    return save(fig, plots / "accuracy_vs_train_size.png")
