"""A study's evidence in files small enough to commit, from which `fpt report` rebuilds its report alone.

`fpt report SWEEP_DIR` first reduces the sweep's run folders to four files, then reports from those files only;
`fpt report DIR` on a folder that holds just the files (docs/results/NAME/, the results book) gives the same report:
- results.csv: one row per run (fpt sweep's table, in the sweep's order; run folders by name; each task's chance)
- curves.csv: each run's validation metric and training loss at every step it logged them
- examples.npz: each run's per-example test values in the test set's order (the paired bootstrap's input)
- sweep.json: the lr protocol the sweep chose with, and the commands that filled the folder
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fpt.errors import FPTError
from fpt.run.results import NAME
from fpt.study.sweep import collect, overrides_of, protocol_seed, write_rows

FILES = ("results.csv", "curves.csv", "examples.npz", "sweep.json")
NUMERIC = ("baseline/", "chance", "align/")  # columns read back as numbers (the others as select() reads them: text)


@dataclass
class Evidence:
    """What a report is made from: the runs' rows, and per run (by folder name) its curves and test examples."""

    rows: list[dict]
    curves: dict[str, dict[str, dict[int, float]]]  # run -> {"val": {step: v}, "train_loss": {step: v}}
    examples: dict[str, np.ndarray]  # run -> per-example test values
    sweep: dict  # {"lr_protocol": "all" | "seed0", "commands": ["fpt sweep ...", ...]}

    def lr_seed(self) -> int | None:
        """The seed learning rates were chosen on (seed0 protocol), or None (every seed)."""
        return protocol_seed(self.sweep.get("lr_protocol"))

    def run_minutes(self) -> float:
        """The runs' summed wall time in minutes (what the study cost, run after run)."""
        return sum(float(r["wall_seconds"]) for r in self.rows if r.get("wall_seconds") not in (None, "")) / 60


def load(folder: Path) -> Evidence:
    """The evidence of a sweep folder (its run folders, reduced to the files and written beside them) or of a
    folder holding only the files (a page of the results book)."""
    if not folder.is_dir():
        raise FPTError(f"no sweep directory at {folder}: give a sweep's folder (fpt sweep ... out=DIR) or a results-book "
                       "page (docs/results/NAME)")
    if any(folder.glob(f"*/{NAME}")):
        ev = from_runs(folder)
        write(ev, folder)
        return ev
    if (folder / "results.csv").is_file():
        return read(folder)
    raise FPTError(f"nothing to report under {folder}: no run folders (*/{NAME}) and no results.csv; "
                   "give a sweep's folder (fpt sweep ... out=DIR) or a results-book page (docs/results/NAME)")


def merge(first: Evidence, *more: Evidence) -> Evidence:
    """One study from several folders (a page and the sweep that adds tasks to it): rows in the given order, the
    commands of each in turn; refused when the folders chose learning rates differently or name one run twice with
    different results."""
    out = Evidence(list(first.rows), dict(first.curves), dict(first.examples), dict(first.sweep))
    commands = list(first.sweep.get("commands") or [])
    for ev in more:
        if ev.sweep.get("lr_protocol") != out.sweep.get("lr_protocol"):
            raise FPTError(f"cannot join sweeps that chose learning rates differently (lr_protocol "
                           f"{out.sweep.get('lr_protocol')} and {ev.sweep.get('lr_protocol')}): report them apart")
        names = {r["run_dir"]: r for r in out.rows}
        for r in ev.rows:
            if r["run_dir"] in names:
                if str(names[r["run_dir"]].get("test")) != str(r.get("test")):
                    raise FPTError(f"run {r['run_dir']} is in both folders with different test values: keep one of them")
                continue
            out.rows.append(r)
            out.curves[r["run_dir"]] = ev.curves.get(r["run_dir"], {"val": {}, "train_loss": {}})
            if r["run_dir"] in ev.examples:
                out.examples[r["run_dir"]] = ev.examples[r["run_dir"]]
        commands += [c for c in ev.sweep.get("commands") or [] if c not in commands]
    out.sweep["commands"] = commands
    return out


def from_runs(sweep_dir: Path) -> Evidence:
    """Read every run folder: rows in the sweep's order with run names relative to the sweep, curves, examples."""
    rows = collect(sweep_dir, write=False)  # write() gives the folder its results.csv, with run names
    order = sweep_order(sweep_dir)
    rows.sort(key=lambda r: (r["status"] != "ok", order(r)))
    recorded = {r["task"]: r["chance"] for r in rows if r["status"] == "ok" and r.get("chance") not in (None, "")}
    chance = {**task_chances([r for r in rows if r["task"] not in recorded]), **recorded}  # a run's own record first
    curves, examples = {}, {}
    for r in rows:
        path, r["run_dir"] = Path(r["run_dir"]), Path(r["run_dir"]).name
        r["chance"] = chance.get(r["task"], "")
        curves[r["run_dir"]] = _metrics(path, r.get("metric") or "acc")
        if (path / "test_examples.npz").is_file():
            with np.load(path / "test_examples.npz") as z:
                examples[r["run_dir"]] = z["values"]
    try:
        sweep = json.loads((sweep_dir / "sweep.json").read_text())
    except (OSError, ValueError):
        sweep = {}
    return Evidence(rows, curves, examples, sweep)


def write(ev: Evidence, folder: Path) -> None:
    """The four files into `folder` (created); examples as uint8 where every value is 0 or 1 (accuracies)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_rows(folder / "results.csv", ev.rows)
    with open(folder / "curves.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["run", "step", "val", "train_loss"])
        for run, c in ev.curves.items():
            for step in sorted(set(c["val"]) | set(c["train_loss"])):
                w.writerow([run, step, _num(c["val"].get(step)), _num(c["train_loss"].get(step))])
    np.savez_compressed(folder / "examples.npz", **{run: _compact(v) for run, v in ev.examples.items()})
    (folder / "sweep.json").write_text(json.dumps(ev.sweep, indent=1, sort_keys=True) + "\n")


def read(folder: Path) -> Evidence:
    """The evidence from the four files alone (examples.npz and curves.csv may be absent: no intervals, no curves)."""
    with open(folder / "results.csv", newline="") as f:
        rows = [{k: _parsed(k, v) for k, v in r.items()} for r in csv.DictReader(f)]
    curves: dict[str, dict[str, dict[int, float]]] = {r["run_dir"]: {"val": {}, "train_loss": {}} for r in rows}
    if (folder / "curves.csv").is_file():
        with open(folder / "curves.csv", newline="") as f:
            for r in csv.DictReader(f):
                c = curves.setdefault(r["run"], {"val": {}, "train_loss": {}})
                for key in ("val", "train_loss"):
                    if r[key] != "":
                        c[key][int(r["step"])] = float(r[key])
    examples = {}
    if (folder / "examples.npz").is_file():
        with np.load(folder / "examples.npz") as z:
            examples = {k: z[k].astype(np.float64) for k in z.files}
    sweep = json.loads((folder / "sweep.json").read_text()) if (folder / "sweep.json").is_file() else {}
    return Evidence(rows, curves, examples, sweep)


def _metrics(run_dir: Path, metric: str) -> dict[str, dict[int, float]]:
    """step -> val/<metric> and train/loss from a run's metrics.csv (empty when it logged nothing)."""
    out: dict[str, dict[int, float]] = {"val": {}, "train_loss": {}}
    if (run_dir / "metrics.csv").is_file():
        with open(run_dir / "metrics.csv", newline="") as f:
            for r in csv.DictReader(f):
                for key, col in (("val", f"val/{metric}"), ("train_loss", "train/loss")):
                    if r.get(col) not in (None, "") and r.get("step") not in (None, ""):
                        out[key][int(r["step"])] = float(r[col])
    return out


def _compact(v: np.ndarray) -> np.ndarray:
    return v.astype(np.uint8) if v.size and np.isin(v, (0, 1)).all() else v.astype(np.float32)


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.6g}"


def _parsed(key: str, value: str):
    """A results.csv cell as the report reads it: reference numbers and chance as floats, the rest as text."""
    if key.startswith(NUMERIC) and value != "":
        try:
            return float(value)
        except ValueError:
            return value
    return value


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


def task_chances(rows: list[dict]) -> dict[str, float]:
    """Chance accuracy per task, 1 / classes per target (bit tasks 50%, 10-class tasks 10%), from the task class a
    finished run's config.yaml names (built for its TaskSpec only: no data is read), for runs that predate
    results.json's `chance` (a task whose classes come from its data, UEA's, has none here)."""
    from omegaconf import OmegaConf

    out = {}
    for r in rows:
        if r["status"] != "ok" or r["task"] in out or not (Path(r["run_dir"]) / "config.yaml").is_file():
            continue
        try:
            from fpt.tasks.base import task_class, task_options

            task = OmegaConf.to_container(OmegaConf.load(Path(r["run_dir"]) / "config.yaml").task)
            spec = task_class(task)(task_options(task), data={}).spec
            out[r["task"]] = spec.chance
        except Exception:  # noqa: BLE001 - a task this version cannot build: its plots go without a chance line
            out[r["task"]] = None
    return {t: c for t, c in out.items() if c is not None}
