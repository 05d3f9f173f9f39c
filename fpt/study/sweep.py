"""`fpt sweep`: a grid of runs through Hydra's multirun, collected into one table with model selection.

Runs go through Hydra's launcher (basic: in-process, one after the other; `hydra/launcher=joblib`
or `submitit_slurm` with the matching plugin installed for parallel or cluster runs). Each run's
directory is named by its overrides, so running the same sweep again skips finished runs and
retries failed or missing ones.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path

from fpt.errors import FPTError
from fpt.run.results import NAME, Results
from fpt.run.objectives import MODES, fmt

SELECT_OVER = ("seed", "optim.lr")  # averaged over (seed) and selected over (lr) within a cell
DATA_KEYS = ("data.name",)  # overrides that name a data set (a UEA archive, a forecasting file): columns, like tasks
COLUMNS = ["status", "variant", "task", "seed", "lr", "metric", "val", "test", "train", "val/acc", "test/acc", "train/acc", "steps",
           "wall_seconds",
           "params_trainable", "params_used",
           "model", "trunk", "init", "freeze", "config", "run_dir", "error"]


def main(args: list[str]) -> int:
    """fpt sweep [experiment=NAME] [out=DIR] [sweep.lr_protocol=all|seed0] [overrides, a,b to sweep]."""
    from fpt.config import command_line, show_config
    from fpt.run.launch import launch
    from fpt.config.schema import check
    from fpt.config.sections import Sweep

    c = command_line("sweep", args, writes="sweep", flags=("multirun", "cfg"))
    protocol = [a.partition("=")[2] for a in c.overrides if a.partition("=")[0] == "sweep.lr_protocol"]
    rest = c.without("sweep.lr_protocol")  # a choice of the sweep, not of its runs (nor of their folder names)
    if c.cfg:
        c.multirun = True
        return show_config(c, rest)
    exp = next((a.partition("=")[2] for a in rest if a.partition("=")[0] == "experiment"), None)
    sweep_dir = c.out or f"sweeps/{exp or 'sweep'}"
    protocol = check(Sweep, {"lr_protocol": protocol[-1] if protocol else _experiment_protocol(exp)}, "sweep").lr_protocol
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    # the command without its out=: the folder is where it ran, and scripts/results_book.sh re-runs it into another
    _record(Path(sweep_dir), protocol, " ".join(["fpt sweep", *(a for a in args if a.partition("=")[0] != "out")]))
    at = f"hydra.sweep.dir={c.out_arg or sweep_dir}"
    if protocol == "seed0":
        _seed0_then_rest(launch, rest, Path(sweep_dir), at)
    else:
        launch(["--multirun", *rest, at])
    rows = collect(Path(sweep_dir))
    ok = sum(r["status"] == "ok" for r in rows)
    print(f"{ok} of {len(rows)} runs finished; table: {sweep_dir}/results.csv; report: fpt report {sweep_dir}")
    for r in rows:
        if r["status"] != "ok":
            print(f"  failed: {r['run_dir']}: {r['error']}")
    for cell in select(rows, on_seed=lr_seed(Path(sweep_dir))):
        print(f"  {cell['variant']:<32} {cell['task']:<16} {cell['cell']}  (lr {cell['lr']:g})")
    return 0 if ok == len(rows) else 1


def _record(sweep_dir: Path, protocol: str, command: str) -> None:
    """sweep.json: the lr protocol and every command that filled the folder, in order (a study may take two, e.g.
    a grid and one row on one task)."""
    try:
        commands = json.loads((sweep_dir / "sweep.json").read_text()).get("commands", [])
    except (OSError, ValueError):
        commands = []
    commands += [] if command in commands else [command]
    (sweep_dir / "sweep.json").write_text(json.dumps({"lr_protocol": protocol, "commands": commands}) + "\n")


def lr_seed(sweep_dir: Path) -> int | None:
    """The seed the sweep chose learning rates on (its sweep.json: seed0 protocol), or None (all seeds)."""
    try:
        protocol = json.loads((sweep_dir / "sweep.json").read_text()).get("lr_protocol")
    except (OSError, ValueError):
        return None
    return protocol_seed(protocol)


def protocol_seed(protocol: str | None) -> int | None:
    """seed0: learning rates are chosen on seed 0; all (or none recorded): on every seed (None)."""
    return 0 if protocol == "seed0" else None


def _experiment_protocol(exp: str | None) -> str:
    """The experiment's `sweep.lr_protocol` (all: every lr on every seed; seed0: choose on seed 0, then the rest)."""
    if not exp:
        return "all"
    from fpt.config import compose

    return str((compose([f"experiment={exp}"]).get("sweep") or {}).get("lr_protocol", "all"))


def _seed0_then_rest(train, args: list[str], sweep_dir: Path, at: str) -> None:
    """Every lr on seed 0; then, per (variant, task), the other seeds at the lr with the best seed-0 val/acc."""
    from fpt.config import compose

    fixed = [a for a in args if "," not in a.partition("=")[2] or a.partition("=")[2].startswith("[")]
    grid = dict(compose(fixed, with_hydra=True).hydra.sweeper.params or {})
    for a in args:  # the command line's key=a,b win over the experiment's grid, as in Hydra
        key, eq, value = a.partition("=")
        if eq and (key in grid or "," in value):
            grid[key] = value
    seeds = [v.strip() for v in str(grid.get("seed", "0")).split(",")]
    if "0" not in seeds:
        raise FPTError("sweep.lr_protocol=seed0 chooses the lr on seed 0: the sweep's seeds must include 0")
    train(["--multirun", *args, "seed=0", at])
    rest = [s for s in seeds if s != "0"]
    if not rest:
        return
    lr_text = {float(v): v.strip() for v in str(grid.get("optim.lr", "")).split(",") if v.strip()}  # as the grid spells it
    # a value the command fixes (data.name=GunPoint) belongs to its cells too: a folder holding another data set's
    # cells (put there by another command) must not lend them its lr choice
    own = {**{k: v for k, _, v in (a.partition("=") for a in fixed) if k in ("task", *DATA_KEYS)}, **grid}
    for cell in select(collect(sweep_dir), on_seed=0):
        ov = overrides_of(cell["config"])
        if not _in_grid(ov, own):  # a cell another command put in the folder: that command runs its seeds
            continue
        pinned = [f"{k}={ov[k]}" for k in grid if k not in ("seed", "optim.lr") and k in ov]
        lr = [f"optim.lr={lr_text.get(cell['lr'], cell['lr'])}"] if "optim.lr" in grid else []
        train(["--multirun", *args, *pinned, *lr, f"seed={','.join(rest)}", at])


def _in_grid(ov: dict[str, str], grid: dict) -> bool:
    """Whether a run's overrides lie in this command's grid (each swept key's value among the grid's; lists and keys
    the run lacks are not compared)."""
    for k, values in grid.items():
        text = str(values)
        if k in ("seed", "optim.lr") or k not in ov or text.startswith("["):
            continue
        if ov[k] not in [v.strip() for v in text.split(",")]:
            return False
    return True


def overrides_of(config: str) -> dict[str, str]:
    """A row's overrides from its `config` text (`key=value ...`)."""
    return dict(kv.split("=", 1) for kv in config.split() if "=" in kv)


def variant_of(res: Results, varying: set[str] | None = None) -> str:
    """A run's row in the table: its variant label plus the other overrides that vary across the sweep (e.g.
    data.train_size), or without a label those overrides; never task, seed and lr (columns, mean, selection)."""
    ov = res.overrides or {}
    skip = ("task", *SELECT_OVER, *DATA_KEYS) + (("variant", "experiment") if res.label else ())
    keys = [k for k in sorted(ov) if k not in skip and not k.startswith(("hydra.", "data.root"))
            and (varying is None or k in varying)]
    return " ".join(([str(res.label)] if res.label else []) + [f"{k}={ov[k]}" for k in keys]) or "default"


def task_of(res: Results, varying: set[str] | None = None) -> str:
    """A run's column in the table: its task, with the data set when the sweep varies it (`uea/GunPoint`)."""
    ov = res.overrides or {}
    task = str(_either(res.task, ov.get("task", "")))
    named = [str(ov[k]) for k in DATA_KEYS if k in ov and (varying is None or k in varying)]
    return "/".join([task, *named])


def collect(sweep_dir: Path, write: bool = True) -> list[dict]:
    """Every run's results.json under `sweep_dir` as rows; writes results.csv (unless `write` is false: the report's
    bundle writes its own, fpt.study.bundle)."""
    if not sweep_dir.is_dir():
        raise FPTError(f"no sweep directory at {sweep_dir}")
    results = {path: Results.from_json(json.loads(path.read_text())) for path in sorted(sweep_dir.glob(f"*/{NAME}"))}
    values = defaultdict(set)
    for res in results.values():
        for k, v in (res.overrides or {}).items():
            values[k].add(str(v))
    varying = {k for k, vs in values.items() if len(vs) > 1}  # a key set alike for every run names no row
    rows = [_row(res, path.parent, varying) for path, res in results.items()]
    if not rows:
        raise FPTError(f"no runs (*/results.json) under {sweep_dir}")
    if write:
        write_rows(sweep_dir / "results.csv", rows)
    return rows


def write_rows(path: Path, rows: list[dict]) -> None:
    """results.csv: the known COLUMNS first, then every other key a row has (baseline/*, steps_to/*, ...), sorted."""
    extra = sorted({k for r in rows for k in r if k not in COLUMNS})
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS + extra, restval="", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def _row(res: Results, run_dir: Path, varying: set[str]) -> dict:
    """One run's row of results.csv (a value the run did not record: empty)."""
    ov = res.overrides or {}
    row = {
        "status": res.status, "variant": variant_of(res, varying), "task": task_of(res, varying),
        "seed": _either(res.seed, ov.get("seed", "")), "lr": _either(res.lr, ov.get("optim.lr", "")),
        "config": " ".join(f"{k}={v}" for k, v in sorted(ov.items())), "run_dir": str(run_dir),
        "freeze": ",".join(res.freeze or []), "error": res.error or "",
    }
    for k in ("val/acc", "test/acc", "train/acc", "val/loss"):
        row[k] = _either(res.scores.get(k), "")
    row["improving_at_end"] = "" if res.improving_at_end is None else int(res.improving_at_end)
    for k in ("steps", "wall_seconds", "params_trainable", "params_used", "model", "trunk", "init", "precision", "chance"):
        row[k] = _either(getattr(res, k), "")
    for k, v in res.scores.items():  # the task's reference numbers (baseline/1nn_acc, ...); model.align's distances
        if k.startswith(("baseline/", "align/")):
            row[k] = v
    m = row["metric"] = res.metric or "acc"  # the task objective's validation metric: val, test, train hold it
    for split in ("val", "test", "train"):
        row[split] = _either(res.score(split, m), "")
    for t, step in (res.steps_to or {}).items():
        row[f"steps_to/{t}"] = "" if step is None else step
    return row


def _either(value, otherwise):
    return otherwise if value is None else value


def select(rows: list[dict], on_seed: int | None = None) -> list[dict]:
    """Per (variant, task): the lr with the best mean validation metric (over seed `on_seed` only, if given: the seed0
    protocol), in the metric's direction (accuracy up, MSE down), ties broken by the lower mean validation loss (then
    the smaller lr); the test metric's mean ± std over the seeds run at that lr. A cell with a run that was still
    improving when its steps ran out is marked † (budget-bound)."""
    cells: dict[tuple, dict[float, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["status"] == "ok":
            cells[(r["variant"], r["task"])][float(r["lr"])].append(r)
    out = []
    for (variant, task), by_lr in cells.items():
        def score(kv):
            runs = [r for r in kv[1] if on_seed is None or str(r["seed"]) == str(on_seed)]
            if not runs:
                return (float("-inf"), float("-inf"), -kv[0])
            return (sign * statistics.fmean(_value(r, "val", sign) for r in runs), -_loss(runs), -kv[0])

        metric = _metric(next(iter(by_lr.values()))[0])
        sign = 1.0 if MODES.get(metric, "max") == "max" else -1.0
        lr, runs = max(by_lr.items(), key=score)
        tests = [_value(r, "test", sign) for r in runs]
        mean, std = statistics.fmean(tests), (statistics.stdev(tests) if len(tests) > 1 else 0.0)
        trains = [float(r["train"]) for r in runs if r.get("train") not in (None, "")]
        used = [int(r["params_used"]) for r in runs if r.get("params_used") not in (None, "")]
        out.append({
            "train_mean": statistics.fmean(trains) if trains else None,
            "train_std": statistics.stdev(trains) if len(trains) > 1 else 0.0,
            "params_used": used[0] if used else None,
            "variant": variant, "task": task, "lr": lr, "n": len(tests), "test_mean": mean, "test_std": std, "metric": metric,
            "val_mean": statistics.fmean(_value(r, "val", sign) for r in runs),
            "cell": f"{fmt(metric, mean)} ± {fmt(metric, std)} (n={len(tests)})" + (" †" if _bound(runs) else ""),
            "budget_bound": _bound(runs),
            "runs": [r["run_dir"] for r in runs], "config": runs[0]["config"],
            "lrs": {k: statistics.fmean(_value(r, "test", sign) for r in v) for k, v in sorted(by_lr.items())},
            "steps_to": _steps_to(runs),
        })
    return out


def _metric(row: dict) -> str:
    return row.get("metric") or "acc"


def _loss(runs: list[dict]) -> float:
    """The runs' mean validation loss at their tested checkpoints (inf when any did not record it: no tie-break)."""
    losses = [r.get("val/loss") for r in runs]
    return statistics.fmean(float(v) for v in losses) if all(v not in (None, "") for v in losses) else float("inf")


def _bound(runs: list[dict]) -> bool:
    """Some run of the cell was still improving when its step budget ended it (results.json improving_at_end)."""
    return any(str(r.get("improving_at_end")) in ("1", "True", "true") for r in runs)


def _value(row: dict, split: str, sign: float) -> float:
    """The row's `split` value of its metric; a run that never validated counts as the worst value."""
    v = row.get(split, row.get(f"{split}/acc"))
    return float(v) if v not in (None, "") else (0.0 if sign > 0 else float("inf"))


def _steps_to(runs: list[dict]) -> dict[str, float]:
    """Median steps to each target over the runs that reached it (reported with how many did)."""
    keys = sorted({k for r in runs for k in r if k.startswith("steps_to/")})
    out = {}
    for k in keys:
        got = [float(r[k]) for r in runs if r.get(k) not in (None, "")]
        out[k.removeprefix("steps_to/")] = (statistics.median(got), len(got)) if got else (None, 0)
    return out
