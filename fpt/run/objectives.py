"""What a task optimises and how it is scored: the loss, the torchmetrics, and the validation metric with its direction.

A task names its objective in its TaskSpec (`objective`); everything that selects or reports (checkpoint and lr
selection, early stopping, steps_to, results.json, sweeps, `fpt report`) reads the metric name and its direction here.

Logits arrive as (b, n, c) from the model's head (n targets per example, c outputs per target):
- classification: c classes; y (b, n) long class ids; cross-entropy; accuracy.
- multilabel: n labels, c = 1; y (b, n) of 0/1; binary cross-entropy; micro-F1 and mean average precision over the
  labels with a positive in the split (`map`; a label without one has no AP: `map_labels_left_out` counts them).
- regression: n targets, c = 1; y (b, n) standardised floats; MSE loss; MSE and MAE in the data's own units
  (predictions and targets mapped back with the task's `target_loc` / `target_scale`).
- forecast: n = horizon values, c = 1; y (b, n) on the training set's standardised scale; MSE loss; MSE and MAE on
  that scale (as the forecasting papers report). A batch may carry per-example `loc` and `scale` (b, 1) of a
  per-instance normalisation (RevIN): predictions are mapped back with them before the loss and the metrics.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchmetrics import MeanAbsoluteError, MeanSquaredError, Metric
from torchmetrics.classification import MulticlassAccuracy, MultilabelAveragePrecision, MultilabelF1Score
from torchmetrics.utilities.data import dim_zero_cat

OBJECTIVES = ("classification", "multilabel", "regression", "forecast")
MODES = {"acc": "max", "f1": "max", "map": "max", "mse": "min", "mae": "min"}  # every metric's better direction
PERCENT = {"acc", "f1", "map"}  # metrics shown as percentages in reports


@dataclass(frozen=True)
class Objective:
    """One objective: its validation metric (`metric`, better in `mode`) and how a batch is scored."""

    name: str
    metric: str

    @property
    def mode(self) -> str:
        return MODES[self.metric]

    def metrics(self, spec) -> dict[str, Metric]:
        """Fresh torchmetrics for one split, by name (logged as SPLIT/NAME)."""
        if self.name == "classification":
            return {"acc": MulticlassAccuracy(num_classes=spec.num_classes, average="micro", validate_args=False)}
        if self.name == "multilabel":
            k = spec.targets_per_position
            return {"f1": MultilabelF1Score(num_labels=k, average="micro", validate_args=False),
                    "map": PositiveLabelsAP(k), "map_labels_left_out": LabelsLeftOut(k)}
        return {"mse": MeanSquaredError(), "mae": MeanAbsoluteError()}

    def score(self, logits: torch.Tensor, batch: dict, spec, metrics: dict[str, Metric]) -> torch.Tensor:
        """The loss of one batch; updates `metrics` on the way."""
        y = batch["y"]
        if self.name == "classification":
            loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
            metrics["acc"].update(logits.argmax(-1).flatten(), y.flatten())
            return loss
        out = logits.squeeze(-1).float()  # (b, n)
        if self.name == "multilabel":
            loss = F.binary_cross_entropy_with_logits(out, y.float())
            for m in metrics.values():
                m.update(out.sigmoid(), y.long())
            return loss
        if "scale" in batch:  # per-instance normalisation (RevIN): back to the scale the targets are on
            out = out * batch["scale"] + batch["loc"]
        loss = F.mse_loss(out, y.float())
        pred, true = out.detach() * spec.target_scale + spec.target_loc, y.float() * spec.target_scale + spec.target_loc
        for m in metrics.values():
            m.update(pred.flatten(), true.flatten())
        return loss

    def outputs(self, logits: torch.Tensor, batch: dict, spec) -> torch.Tensor:
        """What a prediction reports, read from the logits as `score` reads them: class probabilities (b, n, c), label
        scores (b, n), or values (b, n) in the units the metrics compare (regression: the data's own, through the spec's
        target_loc / target_scale; forecast: the training set's standardised scale, RevIN's loc/scale undone)."""
        if self.name == "classification":
            return logits.float().softmax(-1)
        out = logits.squeeze(-1).float()
        if self.name == "multilabel":
            return out.sigmoid()
        if "scale" in batch:
            out = out * batch["scale"] + batch["loc"]
        return out * spec.target_scale + spec.target_loc

    def targets(self, y: torch.Tensor, spec) -> torch.Tensor:
        """A batch's targets `y` in the units of `outputs` (as `score` maps them for the metrics)."""
        return y.float() * spec.target_scale + spec.target_loc if self.name in ("regression", "forecast") else y


def per_example(objective: Objective, logits: torch.Tensor, batch: dict, spec) -> torch.Tensor | None:
    """Each example's share of the test metric, (batch,): the fraction of its targets classified right (accuracy is
    their mean when every example has as many targets), or its squared error in the data's units (MSE is their mean),
    from `outputs` and `targets` as predictions read them. None for multi-label F1 and mAP, which no per-example value
    sums to. Paired bootstraps resample these."""
    y = batch["y"]
    if objective.name == "classification":
        return (logits.argmax(-1) == y).float().flatten(1).mean(1)
    if objective.name == "multilabel":
        return None
    return (objective.outputs(logits, batch, spec) - objective.targets(y, spec)).pow(2).flatten(1).mean(1)


class PositiveLabelsAP(MultilabelAveragePrecision):
    """Mean average precision over the labels with a positive among the targets seen. A label without one has no AP
    (recall is 0/0); torchmetrics scores it 0 and averages it in, which would pull mAP down by the split's luck."""

    def __init__(self, num_labels: int):
        super().__init__(num_labels=num_labels, average=None, validate_args=False)

    def compute(self) -> torch.Tensor:
        with warnings.catch_warnings():  # its warning names what this class handles: no positive for a label
            warnings.filterwarnings("ignore", message="No positive samples found in target")
            per_label = super().compute()
        has_positive = dim_zero_cat(self.target).sum(0) > 0
        return per_label[has_positive].mean()  # nan when no label has a positive


class LabelsLeftOut(Metric):
    """How many labels had no positive among the targets seen: left out of PositiveLabelsAP's mean."""

    full_state_update = False

    def __init__(self, num_labels: int):
        super().__init__()
        self.add_state("positives", torch.zeros(num_labels), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.positives += target.sum(0)

    def compute(self) -> torch.Tensor:
        return (self.positives == 0).sum().float()


DEFAULT_METRIC = {"classification": "acc", "multilabel": "map", "regression": "mse", "forecast": "mse"}


def objective(name: str) -> Objective:
    """The objective called `name` (one of OBJECTIVES)."""
    if name not in DEFAULT_METRIC:
        from fpt.errors import FPTError

        raise FPTError(f"unknown objective '{name}'; choose {', '.join(OBJECTIVES)}")
    return Objective(name, DEFAULT_METRIC[name])


def better(metric: str, a: float, b: float) -> bool:
    """Whether value `a` of `metric` is at least as good as `b` (>= for accuracy, <= for errors)."""
    return a >= b if MODES.get(metric, "max") == "max" else a <= b


def headline(results: dict) -> tuple[str, float | None]:
    """(metric, test value) a results.json reports first: test/acc for classification, test/mse for regression, ..."""
    metric = results.get("metric", "acc")
    return metric, results.get(f"test/{metric}")


def fmt(metric: str, value) -> str:
    """A metric value as reports show it: percentages for accuracies, 4 significant digits for errors."""
    if value is None or value == "":
        return "–"
    return f"{100 * float(value):.1f}" if metric in PERCENT else f"{float(value):.4g}"
