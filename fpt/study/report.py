"""`fpt report DIR`: a sweep directory -> report.md (the paper's table layout) and PNG plots.

Rows are variants (models or trained groups), columns tasks; a cell is the test value of the task objective's
metric (accuracy, F1, MSE, ...) at the learning rate chosen on its validation value (accuracy up, MSE down), mean ±
std over seeds, with the runs behind it named. The plots show the tasks scored in percent (accuracy, F1, mAP).
"""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from pathlib import Path

from fpt.study import efficiency
from fpt.errors import FPTError
from fpt.run.objectives import MODES, PERCENT, fmt
from fpt.plots import pyplot, save
from fpt.study.sweep import collect, lr_seed, overrides_of, select


def main(args: list[str]) -> int:
    """fpt report SWEEP_DIR (or dir=SWEEP_DIR) [out=DIR]: writes OUT/report.md and OUT/plots/*.png (OUT: the sweep's folder)."""
    from fpt.config import command_line

    c = command_line("report", args, writes="dir", positional="SWEEP_DIR")
    values = c.values()
    sweep = c.positional or values.pop("dir", None)
    if not sweep or values:
        raise FPTError(f"unknown option '{next(iter(values))}'; fpt report takes SWEEP_DIR (or dir=SWEEP_DIR) and out=DIR"
                       if values else "usage: fpt report SWEEP_DIR [out=DIR]")
    path = report(Path(str(sweep)).expanduser(), Path(c.out).expanduser() if c.out else None)
    print(f"wrote {path}")
    return 0


def sweep_order(sweep_dir: Path):
    """Sort key: rows in the order the sweep lists its variants, its other swept values and its tasks, then as found."""
    from omegaconf import OmegaConf

    params = {}
    if (sweep_dir / "multirun.yaml").is_file():
        hydra = OmegaConf.load(sweep_dir / "multirun.yaml").hydra
        params = dict(hydra.sweeper.get("params") or {})  # an experiment's grid
        for o in (hydra.get("overrides") or {}).get("task") or []:  # the command line's key=a,b (these win)
            key, _, values = str(o).partition("=")
            if "," in values and not values.startswith("["):
                params[key] = values
    keys = ["variant", *(k for k in params if k not in ("variant", "task", "seed", "optim.lr")), "task"]
    order = {k: [v.strip() for v in str(params[k]).split(",")] for k in keys if k in params}

    def key(row: dict):
        ov = overrides_of(row["config"])
        return tuple(order[k].index(ov[k]) if k in order and ov.get(k) in order[k] else len(order.get(k, ())) for k in keys)

    return key


def report(sweep_dir: Path, out_dir: Path | None = None) -> Path:
    """Write report.md and plots for a sweep directory (into `out_dir`, default the sweep's own); returns the report's path."""
    out_dir = out_dir or sweep_dir
    rows = collect(sweep_dir)
    on_seed = lr_seed(sweep_dir)
    cells = select(rows, on_seed=on_seed)
    if not cells:
        raise FPTError(f"no finished runs under {sweep_dir}: nothing to report (see results.csv for the errors)")
    ok = sorted((r for r in rows if r["status"] == "ok"), key=sweep_order(sweep_dir))
    variants = list(dict.fromkeys(r["variant"] for r in ok))
    tasks = list(dict.fromkeys(r["task"] for r in ok))
    by = {(c["variant"], c["task"]): c for c in cells}
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    metric = {c["task"]: c["metric"] for c in cells}
    pct = [t for t in tasks if metric[t] in PERCENT]  # the plots' one 0-100% scale: tasks scored in percent
    pby = {k: c for k, c in by.items() if k[1] in pct}
    name, chance = f"sweep {sweep_dir.name}", task_chances(ok)
    figs = [learning_curves(rows, pby, pct, plots, name, chance), bars(pby, variants, pct, plots, name, chance),
            lr_plot(pby, variants, pct, plots, name, chance), size_plot([r for r in ok if r["task"] in pct], plots, name, chance)
            ] if pct else []
    heads = [f"{t} ({metric[t]}{' %' if metric[t] in PERCENT else ''} {'↑' if MODES[metric[t]] == 'max' else '↓'})" for t in tasks]
    how = ("the learning rate is chosen on seed 0's validation metric and the other seeds run at it only "
           "(sweep.lr_protocol=seed0: the full lr x seed grid did not fit the budget)" if on_seed is not None else
           "the learning rate with the best mean validation metric over seeds is chosen")
    lines = [f"# Sweep report: {sweep_dir.name}", "",
             f"Test value of each task's metric at the selected learning rate, mean ± std over seeds (n); {how}. "
             "Accuracy, F1 and mAP in %, higher is better (↑); MSE and MAE as they are, lower is better (↓).", ""]
    lines += _table(["variant", *heads], [[v, *(by[(v, t)]["cell"] if (v, t) in by else "–" for t in tasks)] for v in variants])
    lines += ["", "## Validation metric of the same runs", "",
              "Best validation value of the selected runs, mean over seeds: the number model selection saw." +
              (" The paper's remote-homology result (12.7%) is on TAPE's validation split (its code evaluated `valid` "
               "only): compare it with this table, not with the fold-holdout test/acc above." if "remote_homology" in tasks else ""), ""]
    lines += _table(["variant", *heads], [[v, *(fmt(metric[t], by[(v, t)]['val_mean']) if (v, t) in by else "–" for t in tasks)]
                                          for v in variants])
    lines += _train_vs_test(by, variants, tasks)
    more, fig = efficiency.section(cells, ok, plots, name)
    lines += more
    figs.append(fig)
    lines += ["", "## Steps to target validation accuracy", "",
              "Median training steps until val/acc first reached the target (runs that reached it / runs).", ""]
    targets = sorted({k for c in cells for k in c["steps_to"]}, key=float)
    for target in targets:
        lines += [f"**val/acc ≥ {target}**", ""]
        lines += _table(["variant", *tasks], [[v, *(_steps(by.get((v, t)), target) for t in tasks)] for v in variants])
        lines.append("")
    lines += ["## Plots", ""] + [f"![{f.stem}](plots/{f.name})" for f in figs if f] + [""]
    lines += ["## The runs behind each cell", ""]
    for c in cells:
        lines.append(f"- **{c['variant']} / {c['task']}** — lr {c['lr']:g} (mean test {c['metric']} per lr: "
                     + ", ".join(f"{k:g}: {fmt(c['metric'], v)}" for k, v in c["lrs"].items()) + f"); config `{c['config']}`; runs: "
                     + ", ".join(f"`{Path(r).name}`" for r in c["runs"]))
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["", "## Failed runs", ""] + [f"- `{Path(r['run_dir']).name}`: {r['error']}" for r in failed]
    out = out_dir / "report.md"
    out.write_text("\n".join(lines) + "\n")
    return out


def _train_vs_test(by: dict, variants: list[str], tasks: list[str]) -> list[str]:
    """The paper's Table 7 layout: test / train accuracy per model (train: the selected checkpoint on its training set)."""
    if not any(c.get("train_mean") is not None for c in by.values()):
        return []
    out = ["", "## Train vs test accuracy (paper Table 7)", "",
           "Test / train accuracy (%) of the selected runs, mean over seeds. Train: the selected checkpoint measured on "
           "its training set without augmentation (all of it, or the first `eval.train_examples`; bit tasks: the first "
           "examples of the training stream). A model "
           "far better on train than on test overfits; one alike on both underfits.", ""]
    def cell(v, t):
        c = by.get((v, t))
        if not c or c.get("train_mean") is None:
            return "–"
        return f"{fmt(c['metric'], c['test_mean'])} / {fmt(c['metric'], c['train_mean'])}"
    return out + _table(["variant (test / train)", *tasks], [[v, *(cell(v, t) for t in tasks)] for v in variants])


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(map(str, r)) + " |" for r in body]


def _steps(cell: dict | None, target: str) -> str:
    if not cell or target not in cell["steps_to"]:
        return "–"
    med, n = cell["steps_to"][target]
    return f"{med:.0f} ({n}/{cell['n']})" if med is not None else f"not reached (0/{cell['n']})"


def curves(run_dir: str) -> dict[str, dict[int, float]]:
    """step -> value of val/acc and train/loss from a run's metrics.csv (empty when it logged nothing)."""
    path = Path(run_dir) / "metrics.csv"
    out: dict[str, dict[int, float]] = {"val/acc": {}, "train/loss": {}}
    if not path.is_file():
        return out
    with open(path) as f:
        for r in csv.DictReader(f):
            for key, series in out.items():
                if r.get(key) not in (None, "") and r.get("step") not in (None, ""):
                    series[int(r["step"])] = float(r[key])
    return out


def _mean_curve(series: list[dict[int, float]]) -> tuple[list[int], list[float]]:
    steps = sorted(set().union(*series)) if series else []
    return steps, [statistics.fmean(c[s] for c in series if s in c) for s in steps]


def task_chances(rows: list[dict]) -> dict[str, float]:
    """Chance accuracy per task, 1 / classes per target (bit tasks 50%, 10-class tasks 10%), from the task class a
    finished run's config.yaml names (built for its TaskSpec only: no data is read)."""
    from omegaconf import OmegaConf

    out = {}
    for r in rows:
        if r["status"] != "ok" or r["task"] in out or not (Path(r["run_dir"]) / "config.yaml").is_file():
            continue
        try:
            from fpt.tasks.base import META_KEYS, task_class

            task = OmegaConf.to_container(OmegaConf.load(Path(r["run_dir"]) / "config.yaml").task)
            spec = task_class(task)(**{k: v for k, v in task.items() if k not in META_KEYS}, data={}).spec
            out[r["task"]] = 1 / spec.num_classes if spec.objective == "classification" else None
        except Exception:  # noqa: BLE001 - a task this version cannot build: its plots go without a chance line
            out[r["task"]] = None
    return {t: c for t, c in out.items() if c is not None}


def percent_axis(ax, chance: float | None = None, highest: float = 100.0) -> None:
    """The one accuracy scale of every plot: 0-100% (raised only to show an error bar above 100), a chance line."""
    ax.set_ylim(0, max(100.0, highest) + (3 if highest > 100 else 0))
    if chance is not None:
        ax.axhline(100 * chance, ls=":", lw=1.2, color="gray", label=f"chance ({100 * chance:.3g}%)")


def seeds_label(ns) -> str:
    """What an error bar is: 'std over 3 seeds' (or '2-3 seeds' when cells differ)."""
    ns = sorted(set(ns))
    return f"std over {ns[0] if len(ns) == 1 else f'{ns[0]}-{ns[-1]}'} seed{'s' if ns[-1] != 1 else ''}"


def learning_curves(rows, by, tasks, plots: Path, title: str = "", chance: dict | None = None) -> Path:
    """Per task: val accuracy (markers: every evaluation, however few) over training loss, one line per variant
    (mean over the selected runs)."""
    plt = pyplot()
    fig, axes = plt.subplots(2, len(tasks), figsize=(5 * len(tasks), 6.6), squeeze=False, sharex="col")
    for col, task in enumerate(tasks):
        acc_ax, loss_ax = axes[0][col], axes[1][col]
        for (variant, t), cell in by.items():
            if t != task:
                continue
            runs = [curves(r) for r in cell["runs"]]
            steps, ys = _mean_curve([c["val/acc"] for c in runs])
            line = acc_ax.plot(steps, [100 * y for y in ys], marker="o", ms=4, label=f"{variant} (mean of {len(runs)})")[0]
            steps, ys = _mean_curve([c["train/loss"] for c in runs])
            loss_ax.plot(steps, ys, color=line.get_color(), alpha=0.8)
        percent_axis(acc_ax, (chance or {}).get(task))
        acc_ax.set(title=task, ylabel="val accuracy (%)")
        loss_ax.set(xlabel="step", ylabel="train loss")
        for ax in (acc_ax, loss_ax):
            ax.grid(alpha=0.3)
        acc_ax.legend(fontsize=7)
    fig.suptitle(f"{title}\nvalidation accuracy and training loss of the selected runs", fontsize=10)
    return save(fig, plots / "learning_curves.png")


def bars(by, variants, tasks, plots: Path, title: str = "", chance: dict | None = None) -> Path:
    """Grouped bars: test accuracy per variant (e.g. the parameter-group ablation) for each task."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(5.5, 1.2 * len(variants) * len(tasks)), 4.2))
    width = 0.8 / max(len(variants), 1)
    highest = 0.0
    for i, v in enumerate(variants):
        xs = [j + i * width for j in range(len(tasks))]
        ys = [100 * by[(v, t)]["test_mean"] if (v, t) in by else 0 for t in tasks]
        es = [100 * by[(v, t)]["test_std"] if (v, t) in by else 0 for t in tasks]
        highest = max([highest, *(y + e for y, e in zip(ys, es))])
        ax.bar(xs, ys, width, yerr=es, capsize=3, label=v)
    shown = [(j, (chance or {})[t]) for j, t in enumerate(tasks) if t in (chance or {})]
    for k, (j, c) in enumerate(shown):  # each task's own chance level, across its group of bars
        ax.hlines(100 * c, j - width / 2 - 0.05, j + 0.8 - width / 2 + 0.05, ls=":", lw=1.2, color="gray",
                  label="chance (1 / classes)" if k == 0 else None)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(tasks))], tasks)
    percent_axis(ax, highest=highest)
    ax.set_ylabel(f"test accuracy (%)\nbars: mean; error bars: {seeds_label(c['n'] for c in by.values())}")
    ax.set_title(f"{title}\ntest accuracy at the lr chosen on validation", fontsize=10)
    ax.legend(fontsize=8)
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
