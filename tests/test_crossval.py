"""task.val=cv (fpt/run/crossval.py): stratified folds, the step chosen on the mean curve, the refit, the record, a rerun
that skips finished folds, and the refusals; on a tiny GPT-2 and a small .ts file written here."""

import json

import numpy as np
import pytest

from fpt.checkpoint import META_KEY, load_checkpoint
from fpt.errors import FPTError
from fpt.run.crossval import choose_step
from fpt.tasks.base import build_task
from fpt.tasks.sampling import stratified_folds
from tests.helpers import FAST, compose_cfg, run_fpt

HEADER = "@problemName Toy\n@timeStamps false\n@univariate true\n@equalLength true\n@classLabel true a b c\n@data\n"
COUNTS = {"a": 7, "b": 5, "c": 3}  # 15 training series, smallest class 3
FAST_RUN = [o for o in FAST if not o.startswith("task.")]


def _series(label: str, rng) -> str:
    base = {"a": 0.0, "b": 2.0, "c": -2.0}[label]
    return ",".join(f"{base + v:.3f}" for v in rng.normal(size=8)) + f":{label}"


def _write(root):
    rng = np.random.default_rng(0)
    (root / "Toy").mkdir(parents=True, exist_ok=True)
    train = [_series(c, rng) for c, n in COUNTS.items() for _ in range(n)]
    test = [_series(c, rng) for c in "abc" for _ in range(3)]
    (root / "Toy" / "Toy_TRAIN.ts").write_text(HEADER + "\n".join(train) + "\n")
    (root / "Toy" / "Toy_TEST.ts").write_text(HEADER + "\n".join(test) + "\n")
    return root


def test_folds_are_disjoint_stratified_and_cover_every_example():
    labels = np.array([0] * 7 + [1] * 5 + [2] * 3)
    fold = stratified_folds(labels, 3, seed=4)
    assert sorted(np.bincount(fold).tolist()) == [5, 5, 5]  # every example in exactly one fold, sizes within one
    for c, n in ((0, 7), (1, 5), (2, 3)):
        share = np.bincount(fold[labels == c], minlength=3)
        assert share.sum() == n and share.max() - share.min() <= 1  # each class spread evenly
    assert not np.array_equal(fold, stratified_folds(labels, 3, seed=5))  # seeded by split_seed


def test_each_fit_validates_on_its_fold_and_the_refit_on_nothing_held_out(tmp_path):
    root = _write(tmp_path)

    def arrays(fold):
        cfg = compose_cfg("task=uea", f"data.root={root}", "data.name=Toy", "task.patch_len=2", "task.stride=2",
                          "task.val=cv", "task.folds=3", f"task.cv_fold={fold}")
        return build_task(cfg.task, 0, cfg.data).arrays()

    seen, shares = [], []
    for k in range(3):
        a = arrays(k)
        assert len(a["train"]["y"]) + len(a["val"]["y"]) == 15 and len(a["val"]["y"]) == 5
        shares.append(np.bincount(a["val"]["y"][:, 0], minlength=3))
        seen += [tuple(x.ravel().round(4)) for x in a["val"]["x"]]
    shares = np.array(shares)  # (fold, class)
    assert shares.sum(0).tolist() == [7, 5, 3] and (shares.max(0) - shares.min(0) <= 1).all()  # stratified
    assert len(set(seen)) == 15  # the three validation folds are disjoint and hold the whole training file
    refit = arrays(-1)
    assert len(refit["train"]["y"]) == 15 and len(refit["test"]["y"]) == 9


def test_the_chosen_step_is_the_argmax_of_the_mean_curve():
    curves = [[(2, 0.5), (4, 0.9), (6, 0.6)], [(2, 0.7), (4, 0.5), (6, 0.9)]]  # means 0.6, 0.7, 0.75
    assert choose_step(curves, "max") == (6, pytest.approx(0.75))
    assert choose_step(curves, "min") == (2, pytest.approx(0.6))
    tied = [[(2, 1.0), (4, 1.0)], [(2, 0.5), (4, 0.5), (8, 1.0)]]  # a tie between 2 and 4: the earlier; 8: not in every fold
    assert choose_step(tied, "max") == (2, pytest.approx(0.75))
    with pytest.raises(FPTError, match="share no evaluation step"):
        choose_step([[(2, 1.0)], [(3, 1.0)]], "max")


def _cv(capsys, tiny, root, out, *more):
    return run_fpt(capsys, "train", "task=uea", f"data.root={root}", "data.name=Toy", "trunk=gpt2",
                   f"trunk.path={tiny['gpt2']}", *FAST_RUN, "trainer.precision=32-true", "freeze=none", "optim.lr=3e-3",
                   "task.patch_len=2", "task.stride=2", "task.val=cv", "task.folds=3", "trainer.max_steps=6",
                   "trainer.val_check_interval=2", f"out={out}", *more)


@pytest.mark.slow  # eight fits and tests of a tiny trunk: about 15 s on a loaded 2-core machine
def test_a_cv_run_refits_for_the_chosen_steps_and_records_the_folds(tiny, tmp_path, capsys, one_thread):
    root = _write(tmp_path)
    code, out, err = _cv(capsys, tiny, root, tmp_path / "run")
    assert code in (0, None), err
    run = tmp_path / "run"
    res, cv = json.loads((run / "results.json").read_text()), json.loads((run / "cv.json").read_text())
    folds = [cv["folds"][str(k)] for k in range(3)]
    assert all([s for s, _ in f["curve"]] == [2, 4, 6] for f in folds)  # same steps and evaluations in every fold
    steps, mean = choose_step([[tuple(h) for h in f["curve"]] for f in folds], "max")
    assert res["cv/folds"] == 3 and res["cv/steps"] == steps == res["steps"] == res["best_step"]
    assert res["val/acc"] == pytest.approx(mean) and res["cv/fold_val/acc"] == [dict(map(tuple, f["curve"]))[steps] for f in folds]
    assert len(res["cv/fold_test/acc"]) == 3 and 0 <= res["test/acc"] <= 1
    ckpt = load_checkpoint(run / "checkpoints" / "best.ckpt")  # the refit's last weights: what fpt eval / predict load
    task = ckpt[META_KEY]["config"]["task"]
    assert ckpt["global_step"] == steps and task["val"] == "cv" and task["cv_fold"] == -1
    assert len(build_task(task, 0, ckpt[META_KEY]["config"]["data"]).arrays()["train"]["y"]) == 15  # the refit: every series
    code, ev, err = run_fpt(capsys, "eval", f"run={run}")
    assert code in (0, None) and f"{res['test/acc']:.4f}" in ev, err
    # a crash after fold 0: fold 1 and 2 and the refit run again, fold 0 is read from cv.json
    cv["folds"] = {"0": cv["folds"]["0"]}
    (run / "cv.json").write_text(json.dumps(cv))
    (run / "results.json").unlink()
    before = (run / "cv" / "fold0" / "results.json").stat().st_mtime_ns
    code, out, err = _cv(capsys, tiny, root, run)
    assert code in (0, None) and "fold 0 finished already" in out and "fold 1 finished already" not in out, err
    assert (run / "cv" / "fold0" / "results.json").stat().st_mtime_ns == before
    assert json.loads((run / "results.json").read_text())["test/acc"] == res["test/acc"]  # the same run again, seeded
    code, out, err = _cv(capsys, tiny, root, run)
    assert code in (0, None) and "finished already" in out and "cv: fold" not in out, err  # a finished run: nothing to do


@pytest.mark.parametrize("more, says", [
    (["task.folds=1"], "task.folds=1: cross-validation needs at least 2 folds"),
    (["task.folds=4"], "task.folds=4 is more than the 3 training series of class 'c'"),
    (["data.train_size=10"], "drop data.train_size"),
    (["trainer.devices=2"], "set trainer.devices=1"),
    (["trainer.max_steps=-1", "trainer.max_epochs=3"], "set trainer.max_steps"),
])
def test_bad_cv_options_are_refused_before_training(tiny, tmp_path, capsys, more, says):
    root = _write(tmp_path)
    code, _, err = _cv(capsys, tiny, root, tmp_path / "run", *more)
    lines = [ln for ln in err.splitlines() if ln.startswith("fpt train: error")]
    assert code == 2 and len(lines) == 1 and says in lines[0], err
    assert not (tmp_path / "run").exists()


def test_cv_on_a_task_without_a_training_file_carve_is_refused(capsys):
    code, _, err = run_fpt(capsys, "train", "task=bit_xor", "task.val=cv")
    assert code == 2 and "cross-validation is offered by task=uea" in err
