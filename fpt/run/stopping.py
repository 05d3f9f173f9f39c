"""When a fit stops before its step budget: a target reached and held (`stop_at_val_acc`, `early_stop.hold`), or a
validation plateau (`early_stop.patience`, Lightning's EarlyStopping on the objective's metric and direction). Neither
acts before `trainer.min_steps` (Lightning ignores a stop request until then)."""

from __future__ import annotations

import lightning.pytorch as pl

MARGIN = 1e-6  # the metric arrives in float32, where 1.0 - 1e-9 rounds to 1.0: "reached" is within this of the target


class TargetHeld(pl.Callback):
    """Stop once `monitor` is at or above `threshold` at `hold` evaluations in a row (a run that touches 1.0 once on
    a small validation set by luck goes on). Its count is saved with the checkpoint, so a resumed run keeps it."""

    state_key = "TargetHeld"

    def __init__(self, threshold: float, monitor: str = "val/acc", hold: int = 2):
        self.threshold, self.monitor, self.hold = float(threshold), monitor, int(hold)
        self.count = 0

    def on_validation_end(self, trainer: pl.Trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit" or self.monitor not in trainer.callback_metrics:
            return
        reached = float(trainer.callback_metrics[self.monitor]) >= self.threshold - MARGIN
        self.count = self.count + 1 if reached else 0
        if self.count >= self.hold:
            trainer.should_stop = True

    def state_dict(self) -> dict:
        return {"count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.count = int(state.get("count", 0))


def stopping(threshold: float | None, early_stop, monitor: str = "val/acc", mode: str = "max") -> list[pl.Callback]:
    """The stops of a fit. `threshold` (stop_at_val_acc, a fraction in (0, 1]) applies to the metrics that rise to 1
    (accuracy, F1, mean average precision); an error metric (mode min: MSE, MAE) has no such level. `early_stop`:
    hold (evaluations in a row at the target), patience (evaluations without an improvement above min_delta; null:
    never on a plateau), min_delta."""
    es = dict(early_stop or {})
    out: list[pl.Callback] = []
    if threshold is not None and mode == "max":
        out.append(TargetHeld(threshold, monitor, int(es.get("hold", 2))))
    if es.get("patience") is not None:
        from lightning.pytorch.callbacks import EarlyStopping

        out.append(EarlyStopping(monitor=monitor, mode=mode, patience=int(es["patience"]), min_delta=float(es.get("min_delta", 0.0)),
                                 check_on_train_epoch_end=False))
    return out
