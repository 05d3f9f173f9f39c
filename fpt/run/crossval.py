"""`task.val=cv`: k-fold cross-validation on the training file, then a refit on all of it (small training sets).

One run does: k fits (`task.cv_fold=0..k-1`), each validating on one stratified fold of the training file with the
same lr, seed, steps and evaluation interval, in RUN/cv/foldK; the number of steps is the evaluation step with the
best mean validation metric over the folds (ties: the earlier step); then a refit on the whole training file
(`task.cv_fold=-1`) for exactly that many steps, in RUN itself: it evaluates once, at its last step (on the training
file: nothing is held out), so its checkpoints/best.ckpt holds its last weights, which are tested and which
`fpt eval` and `fpt predict` load. results.json is the refit's, with `val/<metric>` the folds' mean at the chosen step
(what `fpt sweep` chooses the lr on), `cv/folds`, `cv/steps` and the per-fold values. Each finished fold is recorded in
RUN/cv.json at once; the same command again skips them (an interrupted fold resumes from its own last.ckpt).

The folds run to the step budget: a fold stopped early (stop_at_val_acc, early_stop.patience) would leave the mean
curve without its later steps, so both stops are off in every fit of a cross-validation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from fpt.checkpoint import load_checkpoint, write_json
from fpt.config import resolved
from fpt.errors import FPTError
from fpt.run.results import Results

CV_FILE = "cv.json"
REFIT = -1  # task.cv_fold of the refit (fpt.tasks.uea.REFIT)


def is_cv(cfg: DictConfig) -> bool:
    """Whether this run cross-validates (and is not itself one of a cross-validation's fits)."""
    return cfg.task.get("val") == "cv" and cfg.task.get("cv_fold") is None


def check_cv(cfg: DictConfig) -> None:
    """task.val=cv's refusals, one line each, before anything is built: a task with no training-file carve, fewer than 2
    folds or more than the smallest class's training series, a data.train_size subset, several devices, a budget in
    epochs."""
    from fpt.tasks.base import task_class, task_options

    if not is_cv(cfg):
        return
    t, k = cfg.task, int(cfg.task.get("folds") or 0)
    cls = task_class(t)
    if not hasattr(cls, "training_labels"):
        raise FPTError(f"task.val=cv: task={t.name} does not carve its validation from a training file; "
                       f"cross-validation is offered by task=uea")
    if k < 2:
        raise FPTError(f"task.folds={k}: cross-validation needs at least 2 folds; choose task.folds=5 (or 2 up to the "
                       f"smallest class's training series)")
    if cfg.data.get("train_size") is not None:
        raise FPTError("task.val=cv cross-validates the whole training file; drop data.train_size (or use task.val=holdout)")
    devices = cfg.trainer.get("devices", 1)
    if (len(devices) if OmegaConf.is_list(devices) or isinstance(devices, list) else devices) not in (1, "1", "auto"):
        raise FPTError(f"task.val=cv runs its fits one after another on one device; set trainer.devices=1 (got {devices})")
    if int(cfg.trainer.get("max_steps") or -1) < 1:
        raise FPTError("task.val=cv chooses a number of steps: set trainer.max_steps (a budget in epochs cannot be refit)")
    names, counts = np.unique(cls(task_options(t), seed=int(cfg.seed), data=cfg.data).training_labels(), return_counts=True)
    if k > counts.min():
        raise FPTError(f"task.folds={k} is more than the {counts.min()} training series of class {str(names[counts.argmin()])!r}: "
                       f"every fold needs each class; choose task.folds={counts.min()} or fewer")


def choose_step(curves: list[list[tuple[int, float]]], mode: str) -> tuple[int, float]:
    """(step, mean) of the evaluation step, among those every fold evaluated, with the best mean validation metric over
    the folds (mode max: highest; min: lowest); ties go to the earlier step."""
    common = sorted(set.intersection(*(set(s for s, _ in c) for c in curves)))
    if not common:
        raise FPTError("the folds share no evaluation step; use a trainer.val_check_interval in steps "
                       "(check_val_every_n_epoch=null)")
    means = {s: float(np.mean([dict(c)[s] for c in curves])) for s in common}
    sign = 1.0 if mode == "max" else -1.0
    best = max(common, key=lambda s: (sign * means[s], -s))
    return best, means[best]


def cross_validate(cfg: DictConfig, run_dir: Path, extra: dict | None = None) -> Results | None:
    """The folds (those cv.json does not hold yet), the choice of steps, the refit and its test; returns the refit's
    record with the cross-validation's keys (see the module's docstring). `cfg`: the checked config (preflight)."""
    from fpt.run.train import train

    run_dir, config = Path(run_dir), json.loads(json.dumps(resolved(cfg)))  # as cv.json holds it
    record = _record(run_dir / CV_FILE, config)
    for k in range(int(cfg.task.folds)):
        if str(k) in record["folds"]:
            print(f"cv: fold {k} finished already ({run_dir / CV_FILE})")
            continue
        record["folds"][str(k)] = _fit_fold(cfg, run_dir / "cv" / f"fold{k}", k)
        write_json(run_dir / CV_FILE, record)
    folds = [record["folds"][str(k)] for k in range(int(cfg.task.folds))]
    mode = folds[0]["mode"]
    steps, mean = choose_step([[tuple(h) for h in f["curve"]] for f in folds], mode)
    print(f"cv: {len(folds)} folds; the best mean validation {mean:.4f} at step {steps}: refit on the whole training file")
    res = train(_with(cfg, refit_changes(steps)), run_dir, extra)
    if res is None:  # a DDP rank other than 0
        return None
    _cv_keys(res, folds, steps, mean)
    res.write(run_dir)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(config))  # the command's own: a rerun finds nothing to do
    return res


def fold_changes(k: int) -> dict:
    """What fold k's fit changes in the run's config: its part of the training file, and no early stop."""
    return {"task.cv_fold": k, "stop_at_val_acc": None, "early_stop.patience": None, "eval.train_acc": False}


def refit_changes(steps: int) -> dict:
    """What the refit changes: the whole training file, exactly `steps` steps, one evaluation at the last of them."""
    return {"task.cv_fold": REFIT, "trainer.max_steps": steps, "trainer.max_epochs": None,
            "trainer.val_check_interval": steps, "trainer.check_val_every_n_epoch": None,
            "stop_at_val_acc": None, "early_stop.patience": None}


def _with(cfg: DictConfig, changes: dict) -> DictConfig:
    """A copy of `cfg` with dotted `changes`. The folds skip the task's costly references (task.*_max_cells: DTW 1-NN,
    MiniRocket): they are the same for every fit, and the refit records them."""
    out = OmegaConf.create(OmegaConf.to_container(cfg))
    if changes.get("task.cv_fold", REFIT) != REFIT:
        changes = {**changes, **{f"task.{k}": 0 for k in out.task if str(k).endswith("_max_cells")}}
    for key, value in changes.items():
        OmegaConf.update(out, key, value, force_add=True)
    OmegaConf.set_struct(out, True)
    return out


def _record(path: Path, config: dict) -> dict:
    """cv.json: the folds finished so far under this config; a file written by another config is refused."""
    if not path.is_file():
        return {"config": config, "folds": {}}
    record = json.loads(path.read_text())
    if record.get("config") != config:
        diff = _first_difference(record.get("config") or {}, config)
        raise FPTError(f"{path} holds folds of another configuration ({diff} differs); run it in a new directory "
                       f"(hydra.run.dir=...) or delete {path.parent / 'cv'} and {path}")
    return record


def _first_difference(a: dict, b: dict, at: str = "") -> str:
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            if x != y:
                return _first_difference(x, y, f"{at}{key}.")
        elif x != y:
            return f"{at}{key}"
    return "nothing"


def _fit_fold(cfg: DictConfig, fold_dir: Path, k: int) -> dict:
    """Fold k's fit (resumed from its last.ckpt when it was interrupted) -> its record: the validation curve and losses
    at every evaluation, its own best step and value, and its selected checkpoint's test."""
    from fpt.run.train import train

    res = Results.read(fold_dir)
    if res is None or not res.finished:
        res = train(_with(cfg, fold_changes(k)), fold_dir)
    state = load_checkpoint(fold_dir / "checkpoints" / "last.ckpt").get("callbacks", {}).get("ValHistory", {})
    m = res.metric
    print(f"cv: fold {k}: best val/{m} {res.score('val'):.4f} at step {res.best_step}, test/{m} {res.score('test'):.4f}")
    return {"curve": state.get("history", []), "losses": state.get("losses", {}), "best_step": res.best_step,
            "val": res.score("val"), "test": res.score("test"), "metric": m, "mode": res.mode}


def _cv_keys(res: Results, folds: list[dict], steps: int, mean: float) -> None:
    """The cross-validation's record in the refit's results: val/<metric> (and val/loss) the folds' means at `steps`."""
    m = res.metric
    losses = [f["losses"].get(str(steps)) for f in folds]
    res.scores[f"val/{m}"] = round(mean, 6)
    if all(v is not None for v in losses):
        res.scores["val/loss"] = float(np.mean(losses))
    else:
        res.scores.pop("val/loss", None)
    res.scores.update({"cv/folds": len(folds), "cv/steps": steps,
                       f"cv/fold_val/{m}": [dict(map(tuple, f["curve"]))[steps] for f in folds],
                       "cv/fold_best_step": [f["best_step"] for f in folds],
                       f"cv/fold_test/{m}": [f["test"] for f in folds]})
    res.best_step, res.improving_at_end, res.steps_to = steps, None, None
