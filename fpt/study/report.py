"""`fpt report DIR`: a sweep directory -> report.md (the paper's table layout) and PNG plots.

Rows are variants (models or trained groups), columns tasks; a cell is the test value of the task objective's
metric (accuracy, F1, MSE, ...) at the learning rate chosen on its validation value (accuracy up, MSE down), mean ±
std over seeds, with the runs behind it named. The plots show the tasks scored in percent (accuracy, F1, mAP).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from fpt.study import bundle, efficiency, intervals
from fpt.errors import FPTError
from fpt.run.objectives import MODES, PERCENT, fmt
from fpt.study.figures import bars, learning_curves, lr_plot, size_plot
from fpt.study.sweep import select


def main(args: list[str]) -> int:
    """fpt report SWEEP_DIR (or dir=SWEEP_DIR) [with=DIR or with=[DIR,DIR]] [out=DIR]: writes OUT/report.md and
    OUT/plots/*.png (OUT: the sweep's folder). with=: other sweeps or book pages whose runs join this one's (a page
    that a sweep adds tasks to)."""
    from fpt.config import command_line

    c = command_line("report", args, writes="dir", positional="SWEEP_DIR")
    values = c.values()
    sweep = c.positional or values.pop("dir", None)
    joined = values.pop("with", None) or []
    joined = [joined] if isinstance(joined, str) else list(joined)
    if not sweep or values:
        raise FPTError(f"unknown option '{next(iter(values))}'; fpt report takes SWEEP_DIR (or dir=SWEEP_DIR), with=DIR "
                       "and out=DIR" if values else "usage: fpt report SWEEP_DIR [with=DIR or with=[DIR,DIR]] [out=DIR]")
    path = report(Path(str(sweep)).expanduser(), Path(c.out).expanduser() if c.out else None,
                  [Path(str(d)).expanduser() for d in joined])
    print(f"wrote {path}")
    return 0


@dataclass
class Sweep:
    """What the report reads: every run (rows), the finished ones in the sweep's order (ok), the selected cells."""

    dir: Path
    rows: list[dict]
    ok: list[dict]
    cells: list[dict]
    on_seed: int | None  # sweep.lr_protocol=seed0: the seed the learning rate was chosen on
    variants: list[str]
    tasks: list[str]
    by: dict  # (variant, task) -> cell
    metric: dict  # task -> its metric
    refs: dict  # baseline/NAME -> {task: its value(s) on the task's split}
    chance: dict  # task -> its chance accuracy (a fraction), where the runs recorded or imply one
    evidence: bundle.Evidence  # the files the report is made from (fpt.study.bundle)


def report(sweep_dir: Path, out_dir: Path | None = None, joined: list[Path] | None = None) -> Path:
    """Write report.md and plots for a sweep directory or a results-book page (into `out_dir`, default the folder
    itself, with the evidence files beside them: fpt.study.bundle); `joined`: more folders whose runs join the
    first's (bundle.merge, rows after its rows). Returns the report's path."""
    out_dir = out_dir or sweep_dir
    sw = read(sweep_dir, joined or [])
    sw.dir = out_dir  # the study's name in the page: the folder it is written to (a joined page keeps its name)
    if joined or out_dir.resolve() != sweep_dir.resolve():
        bundle.write(sw.evidence, out_dir)
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    figs = _plots(sw, plots)
    lines = _tables(sw)
    more, fig = efficiency.section(sw.cells, sw.ok, plots, f"sweep {sw.dir.name}", sw.chance)
    lines += more
    figs.append(fig)
    lines += intervals.section(*_interval_args(sw))
    lines += _steps_tables(sw)
    lines += ["## Plots", ""] + [f"![{f.stem}](plots/{f.name})" for f in figs if f] + [""]
    lines += _runs(sw)
    out = out_dir / "report.md"
    out.write_text("\n".join(lines) + "\n")
    return out


def read(sweep_dir: Path, joined: list[Path] = ()) -> Sweep:
    """The sweep's evidence (fpt.study.bundle: its run folders or a book page's files, and those of `joined`) and its
    cells; refused when no run finished."""
    ev = bundle.merge(*(bundle.load(d) for d in (*joined, sweep_dir)))
    on_seed = ev.lr_seed()
    cells = select(ev.rows, on_seed=on_seed)
    if not cells:
        raise FPTError(f"no finished runs under {sweep_dir}: nothing to report (see results.csv for the errors)")
    ok = [r for r in ev.rows if r["status"] == "ok"]  # in the sweep's order (bundle.from_runs)
    variants = list(dict.fromkeys(r["variant"] for r in ok))
    tasks = list(dict.fromkeys(r["task"] for r in ok))
    by = {(c["variant"], c["task"]): c for c in cells}
    return Sweep(sweep_dir, ev.rows, ok, cells, on_seed, variants, tasks, by, {c["task"]: c["metric"] for c in cells},
                 references(ok), {r["task"]: float(r["chance"]) for r in ok if r.get("chance") not in (None, "")}, ev)


def references(ok: list[dict]) -> dict[str, dict[str, list[float]]]:
    """The tasks' own reference numbers (results.json's baseline/* keys, e.g. 1-NN on the same split): per key, per
    task column, the distinct values its runs recorded (one, unless the split varies within the column). A key is a
    row in the columns of the metric its name ends in (baseline/dlinear_mae: not in an MSE column); a number that is
    no score (baseline/logreg_c, the C validation chose) is no row."""
    out: dict[str, dict[str, list[float]]] = {}
    for r in ok:
        for k, v in r.items():
            if k.startswith("baseline/") and isinstance(v, (int, float)) and not isinstance(v, bool) and _fits(k, r):
                values = out.setdefault(k, {}).setdefault(r["task"], [])
                if float(v) not in values:
                    values.append(float(v))
    return out


def _fits(key: str, row: dict) -> bool:
    """Whether a baseline key belongs in the row's metric column: its name's last `_` part is that metric."""
    return key.rsplit("_", 1)[-1] == (row.get("metric") or "acc")


def _plots(sw: Sweep, plots: Path) -> list[Path | None]:
    """The plots of the tasks scored in percent (their one 0-100% scale); none when no task is."""
    pct = [t for t in sw.tasks if sw.metric[t] in PERCENT]
    if not pct:
        return []
    pby = {k: c for k, c in sw.by.items() if k[1] in pct}
    name = f"sweep {sw.dir.name}"
    chance = sw.chance
    return [learning_curves(sw.evidence.curves, pby, pct, plots, name, chance, sw.ok), bars(pby, sw.variants, pct, plots, name, chance, sw.refs),
            lr_plot(pby, sw.variants, pct, plots, name, chance),
            size_plot([r for r in sw.ok if r["task"] in pct], plots, name, chance)]


def _tables(sw: Sweep) -> list[str]:
    """The report's head: the test table, the validation table of the same runs, train vs test."""
    metric, by, tasks, variants = sw.metric, sw.by, sw.tasks, sw.variants
    heads = [f"{t} ({metric[t]}{' %' if metric[t] in PERCENT else ''} {'↑' if MODES[metric[t]] == 'max' else '↓'})" for t in tasks]
    how = ("the learning rate is chosen on seed 0's validation metric and the other seeds run at it only "
           "(sweep.lr_protocol=seed0: the full lr x seed grid did not fit the budget)" if sw.on_seed is not None else
           "the learning rate with the best mean validation metric over seeds is chosen")
    lines = [f"# Sweep report: {sw.dir.name}", "", *_provenance(sw),
             f"Test value of each task's metric at the selected learning rate, mean ± std over seeds (n); {how}. "
             "Accuracy, F1 and mAP in %, higher is better (↑); MSE and MAE as they are, lower is better (↓).", ""]
    lines += main_table(sw)
    if any(c.get("budget_bound") for c in sw.cells):
        lines += ["", "† budget-bound: a run of the cell was still improving on validation when its steps ran out "
                  "(its best validation came at one of its last two evaluations): a snapshot, not a converged value, "
                  "so the cell does not rank against the others."]
    if sw.refs:
        lines += ["", "Rows in italics are the tasks' own reference numbers on the same split (results.json's `baseline/*`: "
                  "no training, no selection; e.g. 1-NN on the whole training file), not variants of the sweep."]
    lines += ["", "## Validation metric of the same runs", "",
              "Best validation value of the selected runs, mean over seeds: the number model selection saw." +
              (" The paper's remote-homology result (12.7%) is on TAPE's validation split (its code evaluated `valid` "
               "only): compare it with this table, not with the fold-holdout test/acc above." if "remote_homology" in tasks else ""), ""]
    lines += _table(["variant", *heads], [[v, *(fmt(metric[t], by[(v, t)]['val_mean']) if (v, t) in by else "–" for t in tasks)]
                                          for v in variants])
    return lines + _train_vs_test(by, variants, tasks)


def main_table(sw: Sweep) -> list[str]:
    """The report's first table (rows: variants and the tasks' references; columns: tasks), as markdown lines: also
    what the README shows of a results-book page (fpt.study.book)."""
    metric, by, tasks = sw.metric, sw.by, sw.tasks
    heads = [f"{t} ({metric[t]}{' %' if metric[t] in PERCENT else ''} {'↑' if MODES[metric[t]] == 'max' else '↓'})" for t in tasks]
    return _table(["variant", *heads], [[v, *(by[(v, t)]["cell"] if (v, t) in by else "–" for t in tasks)] for v in sw.variants]
                  + [[f"*{k}*", *(_ref(metric[t], sw.refs[k].get(t)) for t in tasks)] for k in sw.refs])


def _interval_args(sw: Sweep) -> tuple:
    return (sw.by, sw.variants, sw.tasks, sw.metric, {r["run_dir"]: int(r["seed"] or 0) for r in sw.ok}, sw.evidence.examples)


def interval_table(sw: Sweep) -> list[str]:
    """The table of the report's differences with 95% confidence intervals, without its heading (fpt.study.book)."""
    return intervals.table(*_interval_args(sw))


def _provenance(sw: Sweep) -> list[str]:
    """Where the numbers come from: the command that ran the sweep, how many runs, their summed wall time and the
    precision each ran in (auto resolves per machine, so a page can mix them)."""
    ev, done = sw.evidence, len(sw.ok)
    commands = ev.sweep.get("commands") or []
    ran = " && ".join(f"`{c}`" for c in commands) + f" && `fpt report sweeps/{sw.dir.name}`" if commands else "not recorded"
    precisions = Counter(r.get("precision") or "not recorded" for r in sw.ok)
    how = ", ".join(f"{p} {n}" for p, n in sorted(precisions.items()))
    return [f"Commands: {ran}; {done} of {len(ev.rows)} runs finished, {ev.run_minutes():.0f} run-minutes (wall time "
            "summed over runs, as each recorded it). `fpt report` rebuilds this page from the folder's results.csv, "
            "curves.csv, examples.npz and sweep.json alone (fpt.study.bundle).", "",
            f"Precision as each run resolved trainer.precision (auto: bf16-mixed on bf16 hardware), runs: {how}.", ""]


def _steps_tables(sw: Sweep) -> list[str]:
    """One table per validation-accuracy target: the median steps to reach it."""
    lines = ["", "## Steps to target validation accuracy", "",
             "Median training steps until val/acc first reached the target (runs that reached it / runs).", ""]
    targets = sorted({k for c in sw.cells for k in c["steps_to"]}, key=float)
    for target in targets:
        lines += [f"**val/acc ≥ {target}**", ""]
        lines += _table(["variant", *sw.tasks], [[v, *(_steps(sw.by.get((v, t)), target) for t in sw.tasks)] for v in sw.variants])
        lines.append("")
    return lines


def _runs(sw: Sweep) -> list[str]:
    """The runs behind each cell, and the failed runs with their errors."""
    lines = ["## The runs behind each cell", ""]
    for c in sw.cells:
        lines.append(f"- **{c['variant']} / {c['task']}** — lr {c['lr']:g} (mean test {c['metric']} per lr: "
                     + ", ".join(f"{k:g}: {fmt(c['metric'], v)}" for k, v in c["lrs"].items()) + f"); config `{c['config']}`; runs: "
                     + ", ".join(f"`{Path(r).name}`" for r in c["runs"]))
    failed = [r for r in sw.rows if r["status"] != "ok"]
    if failed:
        lines += ["", "## Failed runs", ""] + [f"- `{Path(r['run_dir']).name}`: {r['error']}" for r in failed]
    return lines


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


def _ref(metric: str, values: list[float] | None) -> str:
    """A reference cell: its value, or the range when the split varies within the column (data.train_size)."""
    if not values:
        return "–"
    return fmt(metric, values[0]) if len(values) == 1 else f"{fmt(metric, min(values))}–{fmt(metric, max(values))}"


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(map(str, r)) + " |" for r in body]


def _steps(cell: dict | None, target: str) -> str:
    if not cell or target not in cell["steps_to"]:
        return "–"
    med, n = cell["steps_to"][target]
    return f"{med:.0f} ({n}/{cell['n']})" if med is not None else f"not reached (0/{cell['n']})"
