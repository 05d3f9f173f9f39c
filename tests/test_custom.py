"""task=custom: an .npz or a datasets folder of your own, each objective end to end, and bad files in one line."""

import json

import numpy as np
import pytest

from fpt.errors import FPTError
from fpt.run.train import train
from fpt.tasks.arrays import random_split
from fpt.tasks.base import build_task
from tests.helpers import FAST, compose_cfg

RUN = ("task=custom", "trainer.precision=32-true", "freeze=none", "trunk.dropout=0.0", "optim.lr=3e-3",
       "trainer.max_steps=150", "trainer.val_check_interval=50", "stop_at_val_acc=null")


def _cfg(tiny, path):
    fast = [o for o in FAST if not o.startswith("task.")]
    return compose_cfg("trunk=gpt2", f"trunk.path={tiny['gpt2']}", *fast, *RUN, f"data.path={path}")


def _data(n=240, t=6, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, t, d)).astype(np.float32)
    return x, x[:, :, 0].mean(1)  # a signal the model can read: the mean of feature 0 over time


def _task(path, **task):
    cfg = compose_cfg("task=custom", f"data.path={path}", *(f"task.{k}={v}" for k, v in task.items()))
    return build_task(cfg.task, 0, cfg.data)


@pytest.mark.slow
def test_regression_run_beats_the_variance_of_its_test_targets(tiny, tmp_path):
    x, s = _data()
    y = 5.0 + 3.0 * s  # data units: the metrics must come back in them
    np.savez(tmp_path / "reg.npz", x=x, y=y)
    res = train(_cfg(tiny, tmp_path / "reg.npz"), tmp_path / "run")
    assert res["objective"] == "regression" and res["metric"] == "mse" and res["mode"] == "min"
    test_y = y[random_split(len(y), 0) == "test"]  # the seeded 80/10/10 split the run used
    assert res["test/mse"] < 0.3 * test_y.var()  # well below predicting the mean
    assert res["test/mae"] > 0 and "test/acc" not in res
    assert json.loads((tmp_path / "run" / "results.json").read_text())["val/mse"] == res["val/mse"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["classification", "multilabel"])
def test_classification_and_multilabel_learn(tiny, tmp_path, kind):
    x, s = _data()
    y = (s > 0).astype(np.int64) if kind == "classification" else np.stack([s > 0, x[:, 0, 1] > 0], 1).astype(np.int64)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    res = train(_cfg(tiny, tmp_path / "d.npz"), tmp_path / "run")
    assert res["objective"] == kind
    if kind == "classification":
        assert res["test/acc"] > 0.75
    else:
        assert res["metric"] == "map" and res["test/map"] > 0.75 and 0 <= res["test/f1"] <= 1


def test_datasets_folder_with_its_own_splits_and_token_ids(tmp_path):
    import datasets

    rng = np.random.default_rng(0)
    rows = {"x": [rng.integers(0, 7, size=rng.integers(2, 6)).tolist() for _ in range(30)], "y": [i % 3 for i in range(30)]}
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict({k: v[:20] for k, v in rows.items()}),
                               "validation": datasets.Dataset.from_dict({k: v[20:25] for k, v in rows.items()}),
                               "test": datasets.Dataset.from_dict({k: v[25:] for k, v in rows.items()})})
    dd.save_to_disk(str(tmp_path / "ds"))
    task = _task(tmp_path / "ds")
    a = task.arrays()
    assert [len(a[s]["y"]) for s in ("train", "val", "test")] == [20, 5, 5]
    assert task.spec.vocab_size == 8 and task.spec.pad_id == 7 and task.spec.num_classes == 3
    first = a["train"]
    assert first["mask"][0].sum() == len(rows["x"][0]) and (first["x"][0][~first["mask"][0]] == 7).all()


@pytest.mark.parametrize("arrays, says", [
    ({"x": np.zeros((4, 3, 2), np.float32)}, "no 'y' column"),
    ({"x": np.zeros((4, 3), np.float32), "y": np.zeros(4, int)}, "x must be (N, T, D) floats or (N, T) integer ids"),
    ({"x": np.full((4, 3, 2), np.nan, np.float32), "y": np.zeros(4, int)}, "NaN"),
    ({"x": np.zeros((4, 3, 2), np.float32), "y": np.array([0, 1, -1, 2])}, "class labels must be integers 0..C-1"),
    ({"x": np.zeros((4, 3, 2), np.float32), "y": np.array([[0, 2]] * 4)}, "multi-label y must be (N, K) of 0/1"),
    ({"x": np.zeros((4, 3, 2), np.float32), "y": np.arange(4), "split": np.array(["train", "val", "test", "dev"])},
     "unknown split name(s) 'dev'"),
    ({"x": np.zeros((4, 3, 2), np.float32), "y": np.arange(4), "split": np.array(["train", "train", "test", "test"])},
     "split 'val' is empty"),
    ({"x": np.zeros((4, 3, 2), np.float32), "y": np.arange(3)}, "y has 3 rows but x has 4"),
])
def test_bad_files_are_one_line_errors_naming_the_file(tmp_path, arrays, says):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(FPTError) as e:
        _task(tmp_path / "bad.npz").check()
    assert says in str(e.value) and "bad.npz" in str(e.value) and "\n" not in str(e.value)


def _sorted_by_class(tmp_path, n_per=(150, 100, 100, 60, 60, 30, 30, 20, 20, 10)):
    """A class-sorted file (class 0's rows first, then class 1's, ...): a prefix holds only the first classes."""
    y = np.repeat(np.arange(len(n_per)), n_per)
    x = np.random.default_rng(0).normal(size=(len(y), 4, 2)).astype(np.float32)
    split = np.where(np.arange(len(y)) % 10 == 3, "val", np.where(np.arange(len(y)) % 10 == 7, "test", "train"))
    np.savez(tmp_path / "sorted.npz", x=x, y=y, split=split)
    return y[split == "train"]


def _subset_task(path, size, *more):
    cfg = compose_cfg("task=custom", f"data.path={path}", f"data.train_size={size}", *more)
    return build_task(cfg.task, 0, cfg.data)


def test_train_size_on_a_class_sorted_file_trains_on_every_class_in_proportion(tmp_path):
    y = _sorted_by_class(tmp_path)
    task = _subset_task(tmp_path / "sorted.npz", 100)
    seen = np.concatenate([b["y"][:, 0].numpy() for b in task.train_dataloader()])
    assert len(seen) == 100 and sorted(set(seen.tolist())) == list(range(10))
    expected = 100 * np.bincount(y) / len(y)  # the file's class proportions, scaled to 100
    assert np.abs(np.bincount(seen, minlength=10) - expected).max() <= 1


def test_train_size_subsets_are_nested_and_seeded(tmp_path):
    _sorted_by_class(tmp_path)
    y = _subset_task(tmp_path / "sorted.npz", 50).arrays()["train"]["y"]
    rows = {n: set(_subset_task(tmp_path / "sorted.npz", n).subset(y, n).tolist()) for n in (25, 50, 100, 200)}
    assert rows[25] < rows[50] < rows[100] < rows[200]  # the subset for N lies inside the one for 2N
    other = set(_subset_task(tmp_path / "sorted.npz", 100, "task.split_seed=1").subset(y, 100).tolist())
    assert other != rows[100] and len(other) == 100


def test_train_size_of_regression_targets_is_a_seeded_nested_sample_not_the_first_rows(tmp_path):
    x, s = _data(n=200)
    np.savez(tmp_path / "reg.npz", x=x, y=s, split=np.array(["train"] * 180 + ["val"] * 10 + ["test"] * 10))
    task = _subset_task(tmp_path / "reg.npz", 40)
    y = task.arrays()["train"]["y"]
    small, large = task.subset(y, 40), task.subset(y, 80)
    assert set(small) < set(large) and small.tolist() != list(range(40)) and small.max() > 100
    assert np.allclose(task._set("train").t["y"].numpy(), y[small])


def test_train_size_beyond_the_training_split_is_one_line(tmp_path):
    _sorted_by_class(tmp_path)
    with pytest.raises(FPTError) as e:
        _subset_task(tmp_path / "sorted.npz", 5000).train_dataloader()
    assert "data.train_size=5000 is more than the 464 training examples" in str(e.value) and "\n" not in str(e.value)


def test_datasets_folder_with_both_val_and_validation_is_one_line(tmp_path):
    import datasets

    part = datasets.Dataset.from_dict({"x": [[1, 2], [3, 4]], "y": [0, 1]})
    datasets.DatasetDict({"train": part, "val": part, "validation": part, "test": part}).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(FPTError) as e:
        _task(tmp_path / "ds").check()
    assert "both a 'val' and a 'validation' split" in str(e.value) and "ds" in str(e.value) and "\n" not in str(e.value)
