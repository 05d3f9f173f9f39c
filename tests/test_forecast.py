"""task=forecast: the standard splits on a synthetic ETTh1 in the real layout, a run reporting MSE and MAE, bad CSVs."""

import pytest

from fpt.errors import FPTError
from fpt.train import train
from tasks.base import build_task
from tasks.forecast import Forecast, borders
from tests.conftest import FAST, compose_cfg


@pytest.fixture(scope="module")
def ett(tmp_path_factory):
    root = tmp_path_factory.mktemp("ett")
    Forecast.write_data(root, name="ETTh1")
    return root


def test_the_synthetic_file_has_the_real_layout_and_the_ett_split(ett):
    header = (ett / "ETTh1.csv").read_text().splitlines()[:2]
    assert header[0] == "date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT" and header[1].startswith("2016-07-01 00:00:00,")
    assert len((ett / "ETTh1.csv").read_text().splitlines()) == 17420 + 1
    assert borders("ETTh1", 17420, 96) == [(0, 8640), (8544, 11520), (11424, 14400)]  # 12/4/4 months of 720 hours
    assert borders("weather", 1000, 96) == [(0, 700), (604, 800), (704, 1000)]  # 7:1:2
    cfg = compose_cfg("task=forecast", "data.name=ETTh1", f"data.root={ett}", "task.seq_len=96")
    task = build_task(cfg.task, 0, cfg.data)
    train_rows = task.arrays()["train"]
    assert train_rows.shape == (8640, 7) and abs(train_rows.mean()) < 1e-4  # standardised by the training rows
    assert len(task.val_dataloader().dataset) == (2880 + 96 - 96 - 96 + 1) * 7  # every window x channel


@pytest.mark.slow
def test_a_forecast_run_reports_test_mse_and_mae(tiny, ett, tmp_path):
    fast = [o for o in FAST if not o.startswith("task.")]
    cfg = compose_cfg("trunk=gpt2", f"trunk.path={tiny['gpt2']}", *fast, "task=forecast", "data.name=ETTh1", f"data.root={ett}",
                      "task.seq_len=96", "task.horizon=96", "trainer.precision=32-true", "trainer.max_steps=40",
                      "trainer.val_check_interval=20", "freeze=none", "eval.train_acc=false")
    res = train(cfg, tmp_path / "run")
    assert res["objective"] == "forecast" and res["metric"] == "mse" and res["mode"] == "min"
    assert 0 < res["test/mse"] < 1.0 and 0 < res["test/mae"] < 1.0  # better than predicting the mean (1.0 standardised)


def test_a_csv_without_its_date_column_or_too_short_is_one_line(tmp_path):
    (tmp_path / "nodate.csv").write_text("a,b\n" + "\n".join(f"{i},{i}" for i in range(300)) + "\n")
    (tmp_path / "short.csv").write_text("date,a\n" + "\n".join(f"2020-01-01 {i % 24:02d}:00:00,{i}" for i in range(100)) + "\n")
    for name, says in (("nodate", "no date column (the first column 'a' holds no dates)"),
                       ("short", "fewer than task.seq_len + task.horizon = 192")):
        cfg = compose_cfg("task=forecast", f"data.name={name}", f"data.root={tmp_path}", "task.seq_len=96")
        with pytest.raises(FPTError) as e:
            build_task(cfg.task, 0, cfg.data)
        assert says in str(e.value) and f"{name}.csv" in str(e.value) and "\n" not in str(e.value)
