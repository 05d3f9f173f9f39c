"""task=uea: the .ts reader (unequal lengths, missing values, multivariate), the bundled-copy lookup, bad files."""

import sys

import numpy as np
import pytest

from fpt.errors import FPTError
from tasks.base import build_task
from tests.conftest import compose_cfg

HEADER = "# a comment\n@problemName Toy\n@timeStamps false\n@missing true\n@univariate false\n@dimensions 2\n" \
         "@equalLength false\n@classLabel true a b\n@data\n"


def _write(root, name="Toy", train=None, test=None):
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    rows = train or ["1,2,3:10,20,30:a", "4,5:40,50:b", "1,?,3,4:1,1,1,1:a", "9,9,9:9,9,9:b", "1,2,3:1,2,3:a"]
    (folder / f"{name}_TRAIN.ts").write_text(HEADER + "\n".join(rows) + "\n")
    (folder / f"{name}_TEST.ts").write_text(HEADER + "\n".join(test or ["1,2:3,4:a", "5,6,7:8,9,1:b"]) + "\n")


def _task(root, name="Toy", *more):
    cfg = compose_cfg("task=uea", f"data.root={root}", f"data.name={name}", "task.patch_len=2", "task.stride=1", *more)
    return build_task(cfg.task, 0, cfg.data)


def test_unequal_lengths_and_missing_values_become_masked_patches(tmp_path):
    _write(tmp_path)
    task = _task(tmp_path)
    a = task.arrays()
    assert [len(a[s]["y"]) for s in ("train", "val", "test")] == [4, 1, 2]  # validation carved from train, test whole
    assert task.spec.token_dim == 4 and task.spec.seq_len == 3 and task.spec.num_classes == 2  # t=4: 3 patches of 2 x 2 channels
    test = a["test"]
    assert test["mask"].tolist() == [[True, True, False], [True, True, True]]  # a 2-step series: patches [0,1] and [1,2] hold a real step
    assert np.isfinite(test["x"]).all() and (test["x"][0, 2] == 0).all()
    assert test["y"][:, 0].tolist() == [0, 1]
    assert 0 <= task.baselines()["baseline/1nn_acc"] <= 1


@pytest.mark.parametrize("line, says", [
    ("1,2,x:1,2,3:a", "Toy_TRAIN.ts:12: 'x' is not a number"),
    ("1,2,3:a", "Toy_TRAIN.ts:12: 1 channels, but the lines before have 2"),
    ("1,2,3:1,2,3:c", "label 'c' is not among @classLabel a b"),
])
def test_a_malformed_line_names_the_file_and_line(tmp_path, line, says):
    _write(tmp_path, train=["1,2,3:10,20,30:a", "4,5:40,50:b", line])
    with pytest.raises(FPTError) as e:
        _task(tmp_path).check()
    assert says in str(e.value) and "\n" not in str(e.value)


def test_a_name_neither_under_root_nor_bundled_is_one_line(tmp_path):
    with pytest.raises(FPTError) as e:
        _task(tmp_path, "NoSuchSet").check()
    assert "UEA data set 'NoSuchSet' not found" in str(e.value) and "data.root" in str(e.value)


def test_bundled_copies_are_found_through_the_installed_package(tmp_path, monkeypatch):
    fake = tmp_path / "site" / "aeon"
    (fake / "datasets" / "data").mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('aeon must not be imported to find its data')\n")
    _write(fake / "datasets" / "data", "Bundled")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "aeon", raising=False)
    import importlib

    importlib.invalidate_caches()
    task = _task(tmp_path / "empty_root", "Bundled")
    assert task.data_files()[0] == fake / "datasets" / "data" / "Bundled" / "Bundled_TRAIN.ts"
    assert len(task.arrays()["test"]["y"]) == 2
