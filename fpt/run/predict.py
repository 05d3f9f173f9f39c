"""A trained run's predictions on new data: `load(path) -> Run` (fpt.load) and the table `fpt predict` writes.

A run's checkpoints keep what it learned from its training split (the task's `state()`: the spec, feature and target
statistics, class names, the input length; fpt/run/lit.py), so a run directory copied to another machine predicts
without its training data (the trunk's own weights must be there: the checkpoints hold only what trained). New inputs
are read by that state (`Task.encode`, `Task.read_new`); the run's own test split is read as `fpt eval` reads it.

The table has one row per example (forecasting: one per window and step), as columns of equal length:
- classification: `pred` (the class) and `prob_<class>` per class, `label` when the input has labels;
- multi-label: `score_<k>` per label (`label_<k>`);
- regression: `pred` in the data's own units (`target`); several targets: `pred_<j>` (`target_<j>`);
- forecast: `window`, `step` (1..horizon) and one column per channel in the data's units (`target_<channel>`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from fpt.checkpoint import atomic_write_bytes, load_checkpoint
from fpt.errors import FPTError
from fpt.run.assemble import eval_trainer, restore, restore_saved
from fpt.run.lit import FPTModule
from fpt.run.results import Results
from fpt.tasks.arrays import Arrays
from fpt.tasks.base import Task
from fpt.tasks.loading import loader
from fpt.tasks.spec import TaskSpec

Columns = dict[str, np.ndarray]  # one table: column name -> values, one per row
FORMATS = (".csv", ".npz")


@dataclass
class Run:
    """A trained run, restored from its checkpoint for predictions."""

    model: torch.nn.Module  # the trained FPTModel, in eval mode
    config: DictConfig  # the run's config, as its checkpoint records it (with any overrides)
    results: Results | None  # the run directory's results.json, None without one
    checkpoint: Path
    state: dict  # Task.state(): what the run learned from its training split
    task: Task  # reads new inputs by `state` (it holds no data until the test split is asked for)
    module: FPTModule
    overrides: tuple[str, ...] = ()

    @property
    def spec(self) -> TaskSpec:
        """The task spec the model was built from."""
        return TaskSpec.from_record(self.state["spec"])

    def predict(self, x: Any, mask: Any = None) -> np.ndarray:
        """Inputs as the task's files hold them (custom: x (N, T, D) or ids (N, T); uea: series (N, T, channels); forecast:
        input windows (N, task.seq_len, channels)) -> class probabilities (N, classes), label scores (N, labels),
        values (N,) in the data's units, or forecasts (N, horizon, channels) in the data's units; `mask` (N, T): True
        marks real steps (default: all)."""
        arrays = self.task.encode(_numpy(x), None if mask is None else _numpy(mask), self.state, "the input")
        values, _ = self._scored(arrays)
        objective = self.spec.objective
        if objective == "forecast":
            return self.task.to_data_units(values, self.state)
        one = values.shape[1] == 1 and objective in ("classification", "regression")  # one target: (N, classes), (N,)
        return values[:, 0] if one else values

    def predict_file(self, path: str | Path | None = None) -> Columns:
        """The rows `fpt predict` writes for a file the task reads (custom: .npz or a datasets folder; uea: .ts;
        forecast: a CSV, its last input window) or, for None, for the run's test split (read from its data, as fpt eval
        reads it: the same batches, so the accuracy of `pred` is fpt eval's test/acc)."""
        if path is None:
            return on_test_split(self.checkpoint, list(self.overrides))
        arrays, labels = self.task.read_new(Path(path), self.state)
        values, pred = self._scored(arrays)
        return table(self.spec, self.state, self.task, values, pred, labels)

    def _scored(self, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        ds = Arrays({**arrays, "y": np.zeros((len(arrays["x"]), 1))})  # Arrays counts rows by y
        got = collect(self.module, self.config, loader(ds, self.config.get("data"), batch_size=_eval_batch(self.task),
                                                       collate_fn=ds.collate))
        return outputs(self.module, got)


def load(path: str | Path, overrides: list[str] | None = None) -> Run:
    """A run directory (its checkpoints/best.ckpt) or a checkpoint file -> a Run that predicts without the run's data.
    `overrides`: key=value changes to the checkpoint's config (e.g. trunk.path=DIR where the trunk lives here)."""
    p = Path(str(path)).expanduser()
    ckpt_path = p / "checkpoints" / "best.ckpt" if p.is_dir() else p
    if p.is_dir() and not ckpt_path.is_file():
        raise FPTError(f"{p} has no checkpoints/best.ckpt; the run ended before its first validation, or it is not a run directory")
    cfg, task, lit, state = restore_saved(load_checkpoint(ckpt_path), overrides, path=ckpt_path)
    run_dir = ckpt_path.parent.parent
    return Run(lit.model.eval(), cfg, Results.read(run_dir), ckpt_path, state, task, lit, tuple(overrides or ()))


def on_test_split(ckpt_path: str | Path, overrides: list[str] | None = None) -> Columns:
    """The table for the run's test split, restored from its data as fpt eval restores it (the same batches)."""
    try:
        cfg, task, lit = restore(load_checkpoint(ckpt_path), overrides, cached=False, path=ckpt_path)
    except FPTError as e:
        raise FPTError(f"the run's test split is read from its data, as it trained: {e} (or predict on a file: data.path=FILE)") from None
    task.prepare_data()
    task.setup("test")
    got = collect(lit, cfg, task.test_dataloader())
    values, pred = outputs(lit, got)
    labels = lit.objective.targets(got["y"], lit.model.spec).numpy()
    return table(lit.model.spec, lit.task_state, task, values, pred, labels)


def collect(lit: FPTModule, cfg: DictConfig, batches) -> dict[str, torch.Tensor]:
    """trainer.predict over `batches` with the run's accelerator and precision: logits (and y, loc, scale) concatenated."""
    parts = eval_trainer(cfg).predict(lit, dataloaders=batches)
    return {k: torch.cat([p[k].cpu() for p in parts]) for k in parts[0]}


def outputs(lit: FPTModule, got: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray | None]:
    """(the objective's outputs: probabilities (N, n, c), scores or values (N, n); the predicted classes (N, n), taken
    from the logits as the accuracy takes them, or None)."""
    values = lit.objective.outputs(got["logits"], got, lit.model.spec).numpy()
    pred = got["logits"].argmax(-1).numpy() if lit.objective.name == "classification" else None
    return values, pred


def table(spec: TaskSpec, state: dict, task: Task, values: np.ndarray, pred: np.ndarray | None,
          labels: np.ndarray | None) -> Columns:
    """The rows of the predictions (see the module's docstring); `labels` in the units of `values`, or None."""
    if labels is not None and labels.ndim == 1:
        labels = labels[:, None]
    if spec.objective == "forecast":
        target = None if labels is None else task.to_data_units(labels, state)
        return _forecast_table(task.to_data_units(values, state), target, state["columns"])
    classes, multi = state.get("classes"), spec.objective == "multilabel"
    names = np.array(classes or [str(c) for c in range(spec.num_classes)])
    out, known = {}, {}
    for j in range(values.shape[1]):
        at = f"_{j}" if values.shape[1] > 1 or multi else ""
        if spec.objective == "classification":
            out[f"pred{at}"] = names[pred[:, j]] if classes else pred[:, j]
            out.update({f"prob{at}_{c}": values[:, j, i] for i, c in enumerate(names)})
        else:
            out[f"{'score' if multi else 'pred'}{at}"] = values[:, j]
        if labels is not None:
            known[f"{'target' if spec.objective == 'regression' else 'label'}{at}"] = names[labels[:, j]] if classes else labels[:, j]
    return {**out, **known}


def _forecast_table(pred: np.ndarray, target: np.ndarray | None, names: list[str]) -> Columns:
    """Forecasts (windows, horizon, channels) -> one row per window and step."""
    w, h, _ = pred.shape
    out = {"window": np.repeat(np.arange(w), h), "step": np.tile(np.arange(1, h + 1), w)}
    out.update({name: pred[:, :, i].reshape(-1) for i, name in enumerate(names)})
    if target is not None:
        out.update({f"target_{name}": target[:, :, i].reshape(-1) for i, name in enumerate(names)})
    return out


def write(columns: Columns, out: str | Path) -> Path:
    """The table as a .csv (a header, one line per row) or an .npz (one array per column), by `out`'s suffix; atomic."""
    out = Path(out).expanduser()
    if out.suffix.lower() == ".npz":
        buf = io.BytesIO()
        np.savez(buf, **columns)
        atomic_write_bytes(out, buf.getvalue())
        return out
    text = io.StringIO()
    w = csv.writer(text, lineterminator="\n")
    w.writerow(columns)
    w.writerows(zip(*(np.asarray(v).astype(str) for v in columns.values())))  # float32 as its shortest exact digits
    atomic_write_bytes(out, text.getvalue().encode())
    return out


def _numpy(a: Any) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _eval_batch(task: Task) -> int:
    return int(getattr(task.options, "eval_batch_size", None) or task.options.batch_size)
