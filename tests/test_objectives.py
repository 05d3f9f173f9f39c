"""Objectives: loss and torchmetrics per objective, and selection in the metric's direction (accuracy up, MSE down)."""

import pytest
import torch

from fpt.run.objectives import objective
from fpt.study.sweep import select
from fpt.run.train import best_step
from fpt.tasks.spec import TaskSpec


def _metrics(obj, spec):
    return obj.metrics(spec)


def test_regression_metrics_are_in_the_datas_units_and_the_loss_on_the_standardised_scale():
    spec = TaskSpec(seq_len=4, num_classes=1, token_dim=2, objective="regression", target_loc=10.0, target_scale=2.0)
    obj = objective("regression")
    m = _metrics(obj, spec)
    logits = torch.tensor([[[0.5]], [[-1.0]]])  # standardised predictions: 11 and 8 in data units
    y = torch.tensor([[0.0], [0.0]])  # both targets are 10 in data units
    loss = obj.score(logits, {"y": y}, spec, m)
    assert float(loss) == pytest.approx((0.25 + 1.0) / 2)
    assert float(m["mse"].compute()) == pytest.approx((1 + 4) / 2)  # (11-10)^2, (8-10)^2
    assert float(m["mae"].compute()) == pytest.approx(1.5)
    assert obj.metric == "mse" and obj.mode == "min"


def test_forecast_maps_revin_predictions_back_before_loss_and_metrics():
    spec = TaskSpec(seq_len=4, num_classes=1, token_dim=2, targets_per_position=2, objective="forecast")
    obj = objective("forecast")
    m = _metrics(obj, spec)
    logits = torch.tensor([[[1.0], [0.0]]])  # (b=1, n=2, c=1) on the instance's scale
    batch = {"y": torch.tensor([[3.0, 1.0]]), "loc": torch.tensor([[1.0]]), "scale": torch.tensor([[2.0]])}
    loss = obj.score(logits, batch, spec, m)
    assert float(loss) == pytest.approx(0.0) and float(m["mse"].compute()) == pytest.approx(0.0)


def test_multilabel_uses_bce_and_reports_f1_and_map():
    spec = TaskSpec(seq_len=4, num_classes=1, token_dim=2, targets_per_position=3, objective="multilabel")
    obj = objective("multilabel")
    m = _metrics(obj, spec)
    logits = torch.tensor([[[5.0], [-5.0], [5.0]], [[-5.0], [5.0], [-5.0]]])
    y = torch.tensor([[1, 0, 1], [0, 1, 1]])
    loss = obj.score(logits, {"y": y}, spec, m)
    assert 0 < float(loss) < 2
    assert float(m["f1"].compute()) == pytest.approx(2 * 3 / (2 * 3 + 1))  # tp 3, fn 1, fp 0
    assert obj.metric == "map" and obj.mode == "max"


def test_map_leaves_out_a_label_without_a_positive_and_counts_it():
    spec = TaskSpec(seq_len=4, num_classes=1, token_dim=2, targets_per_position=3, objective="multilabel")
    obj = objective("multilabel")
    m = _metrics(obj, spec)
    logits = torch.tensor([[[2.0], [-1.0], [0.5]], [[-2.0], [1.0], [0.0]], [[1.0], [2.0], [-0.5]]])
    y = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 0]])  # label 2 has no positive
    obj.score(logits[:2], {"y": y[:2]}, spec, m)
    obj.score(logits[2:], {"y": y[2:]}, spec, m)  # the positives are counted over every batch, not per batch
    # label 0: its one positive ranks first (AP 1); label 1: it ranks second of three (AP 1/2); torchmetrics alone: 1/2
    assert float(m["map"].compute()) == pytest.approx(0.75)
    assert float(m["map_labels_left_out"].compute()) == 1.0
    m["map"].reset()
    m["map_labels_left_out"].reset()
    obj.score(logits, {"y": torch.tensor([[1, 0, 1], [0, 1, 0], [0, 0, 0]])}, spec, m)
    assert float(m["map_labels_left_out"].compute()) == 0.0 and float(m["map"].compute()) == pytest.approx((1 + 0.5 + 1) / 3)


def test_a_run_still_improving_when_its_budget_ran_out_is_marked_and_no_other():
    from fpt.run.callbacks import still_improving

    rising = [(100, 0.6), (200, 0.7), (300, 0.8)]
    assert still_improving(rising, "max", 300, 300) is True  # best at the last evaluation, budget spent
    assert still_improving([(100, 0.9), (200, 0.95), (300, 0.94)], "max", 300, 300) is True  # one of the last two
    assert still_improving([(100, 0.9), (200, 0.8), (300, 0.8)], "max", 300, 300) is False  # flat since step 100
    assert still_improving(rising, "max", 200, 300) is False  # stopped early (a target, a plateau)
    assert still_improving([(100, 0.5), (200, 0.3)], "min", 200, 200) is True  # an error metric still falling
    assert still_improving([], "max", 300, 300) is None and still_improving(rising, "max", 300, -1) is None


def test_best_step_and_selection_follow_the_metrics_direction():
    assert best_step([(10, 0.5), (20, 0.3), (30, 0.3)], "min") == 20
    assert best_step([(10, 0.5), (20, 0.3)], "max") == 10
    rows = [{"status": "ok", "variant": "v", "task": "t", "lr": lr, "metric": "mse", "val": val, "test": test,
             "run_dir": f"r{i}", "config": ""}
            for i, (lr, val, test) in enumerate([(1e-3, 0.9, 0.5), (1e-4, 0.2, 0.3)])]
    (cell,) = select(rows)
    assert cell["lr"] == 1e-4 and cell["test_mean"] == pytest.approx(0.3) and cell["cell"].startswith("0.3 ")


def test_report_handles_a_sweep_mixing_accuracy_and_mse_tasks(tmp_path):
    import json

    from fpt.study.report import report

    runs = [("cls", "acc", "max", 1e-3, 0.9, 0.85), ("cls", "acc", "max", 1e-4, 0.7, 0.95),
            ("reg", "mse", "min", 1e-3, 0.40, 0.50), ("reg", "mse", "min", 1e-4, 0.20, 0.30)]
    for i, (task, metric, mode, lr, val, test) in enumerate(runs):
        d = tmp_path / f"run{i}"
        d.mkdir()
        (d / "results.json").write_text(json.dumps({
            "status": "ok", "task": task, "seed": 0, "lr": lr, "metric": metric, "mode": mode, f"val/{metric}": val,
            f"test/{metric}": test, "steps": 10, "overrides": {"task": task, "optim.lr": str(lr)}, "label": "fpt"}))
    md = report(tmp_path).read_text()
    row = next(line for line in md.splitlines() if line.startswith("| fpt |"))
    assert "85.0 ± 0.0 (n=1)" in row  # accuracy: the lr with the higher val/acc (1e-3), in %
    assert "0.3 ± 0 (n=1)" in row  # MSE: the lr with the lower val/mse (1e-4), as it is
    assert "cls (acc % ↑)" in md and "reg (mse ↓)" in md


def test_the_target_stop_fires_on_a_float32_one_held_twice_and_never_on_error_metrics():
    from types import SimpleNamespace

    from lightning.pytorch.callbacks import EarlyStopping

    from fpt.run.stopping import TargetHeld, stopping

    (held,) = stopping(1.0, {"hold": 2})
    trainer = SimpleNamespace(sanity_checking=False, state=SimpleNamespace(fn="fit"), should_stop=False, callback_metrics={})
    for value, stops in [(1.0, False), (0.98, False), (1.0 - 1e-9, False), (1.0, True)]:  # float32 1.0 - 1e-9 is 1.0
        trainer.callback_metrics["val/acc"] = torch.tensor(value)
        held.on_validation_end(trainer, None)
        assert trainer.should_stop is stops
    assert isinstance(held, TargetHeld) and held.state_dict() == {"count": 2}
    assert stopping(1.0, {"hold": 2}, "val/mse", "min") == []
    (plateau,) = stopping(None, {"patience": 3, "min_delta": 0.01}, "val/mse", "min")
    assert isinstance(plateau, EarlyStopping) and plateau.patience == 3 and plateau.mode == "min"


def test_a_task_with_small_training_files_asks_for_a_plateau_stop_that_the_command_line_overrides():
    """task=uea stops after 5 evaluations without a better val/acc unless told otherwise (ArrowHead's 36 series ran
    2,000 steps, ~42 minutes, with val/acc flat from step 100); the other tasks never stop on a plateau by default."""
    from tests.helpers import compose_cfg

    assert compose_cfg("task=uea", "data.name=ArrowHead").early_stop.patience == 5
    assert compose_cfg("task=uea", "data.name=ArrowHead", "early_stop.patience=2").early_stop.patience == 2
    assert compose_cfg("task=uea", "data.name=ArrowHead", "early_stop.patience=null").early_stop.patience is None
    assert compose_cfg("task=bit_xor").early_stop.patience is None
    assert compose_cfg("experiment=cpu_timeseries", "data.name=GunPoint").early_stop.patience == 4


def test_per_example_values_average_to_the_metric_in_the_datas_units():
    from types import SimpleNamespace

    from fpt.run.objectives import objective, per_example

    spec = SimpleNamespace(target_scale=10.0, target_loc=100.0)
    logits, y = torch.tensor([[[0.5]], [[-1.0]]]), torch.tensor([[0.0], [1.0]])  # standardised: errors 0.5 and 2.0
    mse = per_example(objective("regression"), logits, {"y": y}, spec)
    assert mse.tolist() == pytest.approx([25.0, 400.0])  # (10 * 0.5)^2, (10 * 2)^2: squared errors in the data's units
    cls = torch.tensor([[[2.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]])  # argmax [0, 1] and [1, 1]
    assert per_example(objective("classification"), cls, {"y": torch.tensor([[0, 1], [0, 1]])}, spec).tolist() == [1.0, 0.5]
    assert per_example(objective("multilabel"), cls, {"y": torch.tensor([[0, 1], [0, 1]])}, spec) is None


def test_a_stop_acts_after_min_steps_on_a_stream_whose_epoch_outlasts_the_run(tmp_path):
    """Lightning's min_epochs=1 beside trainer.min_steps kept the bit tasks (an endless stream) from ever stopping
    early; with min_steps 5, a stop asked for at every evaluation ends the fit at step 5."""
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, IterableDataset

    from fpt.run.assemble import make_trainer

    class Stream(IterableDataset):
        def __iter__(self):
            while True:
                yield torch.randn(2)

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Linear(2, 1)

        def training_step(self, x, i):
            return self.w(x).pow(2).mean()

        def validation_step(self, x, i):
            return None

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    class StopAlways(pl.Callback):
        def on_validation_end(self, trainer, module):
            if not trainer.sanity_checking:
                trainer.should_stop = True

    trainer = make_trainer({"max_steps": 40, "min_steps": 5, "val_check_interval": 2, "limit_val_batches": 1,
                            "logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
                            "enable_model_summary": False, "accelerator": "cpu", "precision": "32-true"},
                           callbacks=[StopAlways()], default_root_dir=tmp_path)
    trainer.fit(Tiny(), DataLoader(Stream(), batch_size=4), DataLoader(Stream(), batch_size=4))
    assert trainer.global_step == 5  # asked at step 4, the stop waits for min_steps 5, then acts (not at 40)
