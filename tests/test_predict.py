"""fpt predict and fpt.load: predictions on new files (custom .npz, UEA .ts, a forecasting CSV's last window) in the data's
own units, from a run whose training data is gone; on the test split, fpt eval's number exactly; misfits in one line."""

import csv
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from fpt.checkpoint import load_checkpoint
from fpt.run.train import train
from tests.helpers import FAST, compose_cfg, run_fpt

FAST_RUN = [o for o in FAST if not o.startswith("task.")]
CUSTOM = ("task=custom", "trainer.precision=32-true", "freeze=none", "trunk.dropout=0.0", "optim.lr=3e-3",
          "trainer.max_steps=300", "trainer.val_check_interval=100", "stop_at_val_acc=null", "eval.train_acc=false")


@pytest.fixture(scope="module", autouse=True)
def one_thread_here():
    """Tiny trunks on a loaded machine: one thread (tests/conftest.py's one_thread, for the module's fixtures too)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _write(path, x, y):
    np.savez(path, x=x, y=y)
    return path


def _features(n, seed, t=6, d=5):
    return np.random.default_rng(seed).normal(size=(n, t, d)).astype(np.float32)


def _rule(x):
    """The class: whether feature 0's mean over time is positive (the other four features are noise)."""
    return (x[:, :, 0].mean(1) > 0).astype(np.int64)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _accuracy(rows):
    return sum(r["pred"] == r["label"] for r in rows) / len(rows)


def _train(tiny, out, *overrides):
    return train(compose_cfg("trunk=gpt2", f"trunk.path={tiny['gpt2']}", *FAST_RUN, *overrides), out)


@pytest.fixture(scope="module")
def clf(tiny, tmp_path_factory):
    """A classifier trained on A.npz (400 rows, 5 features, 6 tokens); B.npz: 200 rows never in A."""
    root = tmp_path_factory.mktemp("clf")
    x = _features(600, 0)
    _write(root / "A.npz", x[:400], _rule(x[:400]))
    _write(root / "B.npz", x[400:], _rule(x[400:]))
    _train(tiny, root / "run", *CUSTOM, f"data.path={root / 'A.npz'}")
    return root


def _train_cli(capsys, tiny, root, *more):
    """`fpt train task=custom data.path=A.npz` on a fresh A.npz / B.npz pair under root: the run directory."""
    x = _features(600, 1)
    _write(root / "A.npz", x[:400], _rule(x[:400]))
    _write(root / "B.npz", x[400:], _rule(x[400:]))
    code, out, err = run_fpt(capsys, "train", "trunk=gpt2", f"trunk.path={tiny['gpt2']}", *FAST_RUN, *CUSTOM,
                             f"data.path={root / 'A.npz'}", f"out={root / 'run'}", *more)
    assert code in (0, None) and "test/acc" in out, err
    return root / "run"


def test_a_trained_run_predicts_rows_it_never_saw(tiny, tmp_path, capsys):
    run = _train_cli(capsys, tiny, tmp_path)
    code, out, err = run_fpt(capsys, "predict", f"run={run}", f"data.path={tmp_path / 'B.npz'}", f"out={tmp_path / 'p.csv'}")
    assert code == 0 and "200 rows (class and probabilities)" in out, err
    rows = _rows(tmp_path / "p.csv")
    assert list(rows[0]) == ["pred", "prob_0", "prob_1", "label"] and len(rows) == 200
    assert all(abs(float(r["prob_0"]) + float(r["prob_1"]) - 1) < 1e-6 for r in rows)
    assert all(r["pred"] == ("1" if float(r["prob_1"]) > float(r["prob_0"]) else "0") for r in rows)
    acc = _accuracy(rows)
    with capsys.disabled():  # the measured number, for the record (pytest -s)
        print(f"custom npz: accuracy on B (200 rows never in A) {acc:.3f}")
    assert acc > 0.75  # chance: about 0.5 (the classes are balanced)


def test_a_copied_run_predicts_without_its_training_data(tiny, tmp_path, capsys):
    run = _train_cli(capsys, tiny, tmp_path, "trainer.max_steps=50", "trainer.val_check_interval=50")
    run_fpt(capsys, "predict", f"run={run}", f"data.path={tmp_path / 'B.npz'}", f"out={tmp_path / 'here.csv'}")
    elsewhere = tmp_path / "elsewhere" / "run"
    shutil.copytree(run, elsewhere)
    shutil.rmtree(run)
    (tmp_path / "A.npz").unlink()  # the training data is gone: the statistics travel in the checkpoint
    code, _, err = run_fpt(capsys, "predict", f"run={elsewhere}", f"data.path={tmp_path / 'B.npz'}",
                           f"out={tmp_path / 'there.csv'}")
    assert code == 0, err
    assert (tmp_path / "there.csv").read_bytes() == (tmp_path / "here.csv").read_bytes()
    code, _, err = run_fpt(capsys, "predict", f"run={elsewhere}", f"out={tmp_path / 'test.csv'}")  # the test split needs it
    assert code == 2 and "the run's test split is read from its data" in err and "A.npz" in err and err.count("\n") == 1


def test_the_checkpoint_keeps_what_the_run_learned_from_its_training_split(clf):
    state = load_checkpoint(clf / "run" / "checkpoints" / "best.ckpt")["fpt"]["task"]
    x = np.load(clf / "A.npz")["x"]
    from fpt.tasks.arrays import random_split

    train_rows = x[random_split(len(x), 0) == "train"].reshape(-1, 5)
    np.testing.assert_allclose(state["x_loc"], train_rows.mean(0), rtol=1e-5, atol=1e-6)  # the training split's, not all of A
    np.testing.assert_allclose(state["x_scale"], train_rows.std(0), rtol=1e-5)
    assert state["spec"]["token_dim"] == 5 and state["spec"]["seq_len"] == 6 and state["spec"]["num_classes"] == 2


def test_on_the_test_split_the_accuracy_is_fpt_evals_exactly(clf, capsys):
    run = clf / "run"
    code, _, err = run_fpt(capsys, "predict", f"run={run}", f"out={clf / 'test.npz'}")
    assert code == 0, err
    z = np.load(clf / "test.npz")
    correct, n = int((z["pred"] == z["label"]).sum()), len(z["pred"])
    code, _, err = run_fpt(capsys, "eval", f"run={run}")
    assert code == 0, err
    acc = json.loads((run / "checkpoints" / "best.eval.json").read_text())["test/acc"]
    assert n == 40 and correct == round(acc * n) and correct / n == pytest.approx(acc, abs=1e-7)
    assert acc == json.loads((run / "results.json").read_text())["test/acc"]


def test_regression_predictions_are_in_the_datas_units(tiny, tmp_path, capsys):
    x = _features(600, 2)
    y = 1000.0 + 150.0 * x[:, :, 0].mean(1)  # around 1000, std about 60: the run standardises it to train
    _write(tmp_path / "A.npz", x[:400], y[:400])
    _write(tmp_path / "B.npz", x[400:], y[400:])
    _train(tiny, tmp_path / "run", *CUSTOM, f"data.path={tmp_path / 'A.npz'}")
    code, _, err = run_fpt(capsys, "predict", f"run={tmp_path / 'run'}", f"data.path={tmp_path / 'B.npz'}",
                           f"out={tmp_path / 'p.csv'}")
    assert code == 0, err
    rows = _rows(tmp_path / "p.csv")
    pred, target = (np.array([float(r[k]) for r in rows]) for k in ("pred", "target"))
    with capsys.disabled():
        print(f"regression: mean prediction on B {pred.mean():.1f}, mean target {y[400:].mean():.1f}, "
              f"MSE {((pred - target) ** 2).mean():.1f} vs the targets' variance {target.var():.1f}")
    np.testing.assert_array_equal(target.astype(np.float32), y[400:])  # the file's own targets, as written
    assert abs(pred.mean() - target.mean()) < 10 and 0.5 < pred.std() / target.std() < 1.5
    assert ((pred - target) ** 2).mean() < 0.3 * target.var()
    code, _, err = run_fpt(capsys, "predict", f"run={tmp_path / 'run'}", f"out={tmp_path / 't.csv'}")
    rows = _rows(tmp_path / "t.csv")
    mse = np.mean([(float(r["pred"]) - float(r["target"])) ** 2 for r in rows])
    assert mse == pytest.approx(json.loads((tmp_path / "run" / "results.json").read_text())["test/mse"], rel=1e-5)


def test_fpt_load_predicts_what_the_command_writes(clf):
    from fpt.run.predict import load
    from fpt.run.results import Results

    run = load(clf / "run")
    assert not run.model.training and isinstance(run.results, Results) and run.results.metric == "acc"
    assert run.config.task.name == "custom" and run.spec.token_dim == 5
    x = np.load(clf / "B.npz")["x"]
    probs = run.predict(torch.from_numpy(x[:7]))
    assert probs.shape == (7, 2) and np.allclose(probs.sum(1), 1, atol=1e-6)
    rows = run.predict_file(clf / "B.npz")
    np.testing.assert_array_equal(rows["prob_1"][:7], probs[:, 1])
    np.testing.assert_array_equal(rows["pred"], rows["prob_1"] > rows["prob_0"])


# --- UEA/UCR: a .ts file; forecasting: a CSV's last window --------------------------------------------------------
@pytest.fixture(scope="module")
def uea(tiny, tmp_path_factory):
    """A run on the bundled ItalyPowerDemand (24 steps, classes '1' and '2')."""
    root = tmp_path_factory.mktemp("uea")
    _train(tiny, root / "run", "task=uea", "data.name=ItalyPowerDemand", "trainer.precision=32-true", "freeze=none",
           "optim.lr=3e-3", "trainer.max_steps=120", "trainer.val_check_interval=60", "stop_at_val_acc=null",
           "eval.train_acc=false")
    return root


def _ts(path, lines, labelled=True, channels=1, classes="1 2"):
    header = (f"@problemName Toy\n@timeStamps false\n@univariate {str(channels == 1).lower()}\n@dimensions {channels}\n"
              f"@equalLength true\n@classLabel {'true ' + classes if labelled else 'false'}\n@data\n")
    path.write_text(header + "\n".join(lines) + "\n")
    return path


def _test_lines(n):
    """The first n series of ItalyPowerDemand's official test file (aeon's copy), as its lines."""
    from fpt.tasks.uea import bundled_root

    text = (bundled_root() / "ItalyPowerDemand" / "ItalyPowerDemand_TEST.ts").read_text()
    return [ln.strip() for ln in text.split("@data", 1)[1].splitlines() if ln.strip()][:n]


def test_a_uea_run_predicts_a_ts_file_with_its_class_names(uea, tmp_path, capsys):
    new = _ts(tmp_path / "new.ts", _test_lines(300))
    code, _, err = run_fpt(capsys, "predict", f"run={uea / 'run'}", f"data.path={new}", f"out={tmp_path / 'p.csv'}")
    assert code == 0, err
    rows = _rows(tmp_path / "p.csv")
    assert list(rows[0]) == ["pred", "prob_1", "prob_2", "label"] and {r["pred"] for r in rows} <= {"1", "2"}
    acc = _accuracy(rows)
    with capsys.disabled():
        print(f"uea ItalyPowerDemand: accuracy on 300 test series {acc:.3f}")
    assert acc > 0.75
    unlabelled = _ts(tmp_path / "u.ts", [ln.rpartition(":")[0] for ln in _test_lines(5)], labelled=False)
    code, _, err = run_fpt(capsys, "predict", f"run={uea / 'run'}", f"data.path={unlabelled}", f"out={tmp_path / 'u.csv'}")
    assert code == 0, err
    assert [r["pred"] for r in _rows(tmp_path / "u.csv")] == [r["pred"] for r in rows[:5]] and "label" not in _rows(tmp_path / "u.csv")[0]


@pytest.fixture(scope="module")
def toy(tiny, tmp_path_factory):
    """Two hourly cycles around 100 and -20 (data units): toy.csv's 600 rows train a run; rows 600..700 are new."""
    root, t = tmp_path_factory.mktemp("fc"), np.arange(700)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=700, freq="h").strftime("%Y-%m-%d %H:%M:%S"),
                          "a": 100 + 10 * np.sin(2 * np.pi * t / 24) + rng.normal(size=700),
                          "b": -20 + 5 * np.cos(2 * np.pi * t / 12) + 0.5 * rng.normal(size=700)})
    frame[:600].to_csv(root / "toy.csv", index=False)
    frame[600 - 48 : 652].to_csv(root / "new.csv", index=False)  # its last 48 rows: the window to forecast from
    _train(tiny, root / "run", "task=forecast", "data.name=toy", f"data.root={root}", "task.seq_len=48", "task.horizon=12",
           "task.patch_len=8", "task.stride=4", "trainer.precision=32-true", "optim.lr=1e-2", "trainer.max_steps=30",
           "trainer.val_check_interval=30", "eval.train_acc=false")
    return root, frame


def test_a_forecast_run_forecasts_a_csvs_last_window_in_the_datas_units(toy, tmp_path, capsys):
    root, frame = toy
    code, out, err = run_fpt(capsys, "predict", f"run={root / 'run'}", f"data.path={root / 'new.csv'}", f"out={tmp_path / 'f.csv'}")
    assert code == 0 and "12 rows (forecast steps)" in out, err
    rows = _rows(tmp_path / "f.csv")
    assert list(rows[0]) == ["window", "step", "a", "b"] and [int(r["step"]) for r in rows] == list(range(1, 13))
    got = np.array([[float(r["a"]), float(r["b"])] for r in rows])
    truth = frame[["a", "b"]].to_numpy()[652:664]  # the 12 hours after new.csv's last row
    err_ = ((got - truth) ** 2).mean(0)
    with capsys.disabled():
        print(f"forecast: mean forecast {got.mean(0).round(1)} vs the truth's {truth.mean(0).round(1)}; MSE {err_.round(2)}")
    assert np.abs(got.mean(0) - truth.mean(0)).max() < 5 and (err_ < truth.var(0)).all()


def test_on_a_forecast_runs_test_split_the_standardised_mse_is_the_runs(toy, tmp_path, capsys):
    root, _ = toy
    code, _, err = run_fpt(capsys, "predict", f"run={root / 'run'}", f"out={tmp_path / 't.npz'}")
    assert code == 0, err
    z = np.load(tmp_path / "t.npz")
    state = load_checkpoint(root / "run" / "checkpoints" / "best.ckpt")["fpt"]["task"]
    std = np.array(state["std"])
    mse = np.mean([((z[c] - z[f"target_{c}"]) / s) ** 2 for c, s in zip(("a", "b"), std)])
    assert mse == pytest.approx(json.loads((root / "run" / "results.json").read_text())["test/mse"], rel=1e-4)


# --- what does not fit the run: one line, exit 2 ---------------------------------------------------------------
def _misfits(root, clf, uea, toy):
    x = _features(4, 5)
    return [  # (the run's folder, the file, what the one line says)
        (clf, _write(root / "wide.npz", _features(4, 5, d=7), np.zeros(4, int)), "wide.npz: x has 7 features per token, the run was trained on 5"),
        (clf, _write(root / "long.npz", _features(4, 5, t=9), np.zeros(4, int)), "long.npz: x has 9 tokens per example, the run was trained on 6"),
        (clf, _write(root / "ids.npz", np.ones((4, 6), int), np.zeros(4, int)), "ids.npz: x has integer token ids, the run was trained on 5 features per token"),
        (clf, _write(root / "y.npz", x, np.zeros(3, int)), "y.npz: y is (3,), for 4 examples"),
        (clf, _ts(root / "s.ts", ["1,2,3:1"]), "s.ts: a custom run predicts from an .npz file or a datasets save_to_disk folder"),
        (uea, _ts(root / "two.ts", ["1,2,3:4,5,6:1"], channels=2), "two.ts: series have 2 channels, the run was trained on 1 channel(s)"),
        (uea, _ts(root / "longer.ts", [",".join(["1"] * 30) + ":1"]), "longer.ts: series of 30 steps, the run was trained on at most 24"),
        (uea, _ts(root / "label.ts", ["1,2,3:3"], classes="1 2 3"), "label.ts: label '3' is not among the run's classes 1 2"),
        (uea, root / "wide.npz", "wide.npz: a uea run predicts from a UEA/UCR .ts file, not a .npz file"),
        (toy, _csv(root / "three.csv", 3, 60), "three.csv: 3 channels, the run was trained on 2 (a, b)"),
        (toy, _csv(root / "short.csv", 2, 20), "short.csv: 20 rows, fewer than the run's input window of 48 steps"),
    ]


def _csv(path, channels, rows):
    dates = pd.date_range("2021-01-01", periods=rows, freq="h").strftime("%Y-%m-%d %H:%M:%S")
    pd.DataFrame({"date": dates, **{f"c{i}": np.arange(rows, dtype=float) for i in range(channels)}}).to_csv(path, index=False)
    return path


def test_a_file_that_does_not_fit_the_run_is_one_line(clf, uea, toy, tmp_path, capsys):
    for root, new, says in _misfits(tmp_path, clf, uea, toy[0]):
        code, _, err = run_fpt(capsys, "predict", f"run={root / 'run'}", f"data.path={new}", f"out={tmp_path / 'p.csv'}")
        assert code == 2 and says in err and err.startswith("fpt predict: error: ") and err.count("\n") == 1, (says, err)
    for args, says in ((["out=p.txt"], "write a .csv or an .npz file"), ([], "missing out=FILE"),
                       ([f"out={tmp_path / 'p.csv'}", f"run={tmp_path / 'nope'}"], "no run directory or checkpoint at"),
                       ([f"run={clf / 'run'}", f"data.path={tmp_path / 'gone.npz'}", "out=p.csv"], "gone.npz does not exist")):
        code, _, err = run_fpt(capsys, "predict", *args)
        assert code == 2 and says in err and err.count("\n") == 1, (says, err)


def test_the_runs_results_carry_their_fields_strong_references(uea, toy):
    """results.json of a tiny run carries the field's non-transformer reference after its own scores (issue 25)."""
    res = json.loads((uea / "run" / "results.json").read_text())
    assert res["baseline/minirocket_acc"] == 0.9631 and res["baseline/1nn_acc"] == 0.9553  # ItalyPowerDemand, official split
    keys = list(res)
    assert keys.index("test/acc") < keys.index("baseline/1nn_acc") < keys.index("baseline/minirocket_acc")
    res = json.loads((toy[0] / "run" / "results.json").read_text())
    # the toy's noise (std 1 on a cycle of amplitude 10, 0.5 on 5) is 0.0196 on the standardised scale: DLinear's floor
    assert 0.015 < res["baseline/dlinear_mse"] < 0.03 and 0.1 < res["baseline/dlinear_mae"] < 0.13
    assert res["baseline/note"].startswith("dlinear: closed-form ridge, penalty ") and res["baseline/note"].endswith(
        "361 training windows x 2 channels")  # 600 rows * 0.7 = 420 training rows, less 48 in and 12 out, plus one
