"""Run control as Lightning callbacks: what happens around the training steps, not inside the model."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar
from lightning.pytorch.utilities.exceptions import SIGTERMException

from fpt.errors import FPTError
from fpt.seeds import step_seed


class FinalValidation(pl.Callback):
    """Validate (and so checkpoint) at the last training step, whatever `val_check_interval` says.

    Without it a run shorter than its validation interval (or ending between two evaluations) never
    validates, writes no checkpoint and loses its trained weights. Asking Lightning to stop at the last
    step makes its training loop validate there, as it does for early stopping.
    """

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.should_stop or trainer.sanity_checking:
            return
        last_step = trainer.max_steps is not None and trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps
        last_epoch = (trainer.max_epochs is not None and trainer.max_epochs > 0
                      and trainer.current_epoch >= trainer.max_epochs - 1 and trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)
        if last_step or last_epoch:
            trainer.should_stop = True


class StepSeed(pl.Callback):
    """Seed torch's global generator from (seed, step, rank) before every training step.

    Dropout and any other draw of a training step then depend only on the run seed and the step: not on
    how often validation ran, nor on the draws a DataLoader makes when its iterator is (re)created, so a
    resumed run continues with exactly the numbers of an uninterrupted one.
    """

    def __init__(self, seed: int):
        self.seed = int(seed)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module, batch, batch_idx) -> None:
        torch.manual_seed(step_seed(self.seed, trainer.global_step, trainer.global_rank))



class Preemption(pl.Callback):
    """On SIGTERM (what schedulers send before killing a job) or SIGUSR1 (SLURM's warning signal), write
    `last_path` at the current step; the run then ends as preempted (fpt.run.job: status "preempted", exit 143).

    Lightning notices SIGTERM and stops after the step in flight; its SIGTERMException reaches
    `on_exception` here. SIGUSR1 is turned into the same path, except under SLURM with Lightning's
    auto-requeue, which handles SIGUSR1 itself (saves and requeues the job).
    """

    def __init__(self, last_path: Path):
        self.last_path = Path(last_path)
        self._usr1 = None

    def setup(self, trainer: pl.Trainer, pl_module, stage: str) -> None:
        from lightning.fabric.plugins.environments import SLURMEnvironment

        if stage == "fit" and not SLURMEnvironment.detect() and hasattr(signal, "SIGUSR1"):
            self._usr1 = signal.signal(signal.SIGUSR1, lambda *_: os.kill(os.getpid(), signal.SIGTERM))

    def teardown(self, trainer: pl.Trainer, pl_module, stage: str) -> None:
        if self._usr1 is not None:
            signal.signal(signal.SIGUSR1, self._usr1)
            self._usr1 = None

    def on_exception(self, trainer: pl.Trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and trainer.state.fn == "fit" and trainer.global_step > 0:
            trainer.save_checkpoint(self.last_path, weights_only=False)  # the whole state: a resume continues from it


class ValHistory(pl.Callback):
    """The validation metric (`monitor`: val/acc, val/mse, ...) at every evaluation, and the first step it reached each
    target (results.json steps_to): at or above it for accuracies, at or below it for errors (`mode` min)."""

    state_key = "ValHistory"

    def __init__(self, targets=(), monitor: str = "val/acc", mode: str = "max"):
        self.targets = sorted(float(t) for t in targets or [])
        self.monitor, self.mode = monitor, mode
        self.history: list[tuple[int, float]] = []
        self.losses: dict[int, float] = {}  # step -> val/loss (what breaks ties between learning rates)
        self.steps_to: dict[str, int] = {}

    def on_validation_end(self, trainer: pl.Trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        value, step = float(trainer.callback_metrics[self.monitor]), int(trainer.global_step)  # one host sync per evaluation
        self.history.append((step, value))
        if "val/loss" in trainer.callback_metrics:
            self.losses[step] = float(trainer.callback_metrics["val/loss"])
        for t in self.targets:
            reached = value >= t if self.mode == "max" else value <= t
            if reached and str(t) not in self.steps_to:
                self.steps_to[str(t)] = step

    def state_dict(self) -> dict:
        return {"history": [list(h) for h in self.history], "steps_to": dict(self.steps_to),
                "losses": {str(k): v for k, v in self.losses.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.history = [tuple(h) for h in state.get("history", [])]
        self.steps_to = dict(state.get("steps_to", {}))
        self.losses = {int(k): float(v) for k, v in state.get("losses", {}).items()}


def best_step(history: list[tuple[int, float]], mode: str = "max") -> int | None:
    """The first step with the best validation metric: the one ModelCheckpoint kept (it replaces only on a strictly
    better score)."""
    sign = 1.0 if mode == "max" else -1.0
    return max(history, key=lambda h: (sign * h[1], -h[0]))[0] if history else None


def still_improving(history: list[tuple[int, float]], mode: str, steps: int | None, budget: int | None) -> bool | None:
    """Whether a run ended by its step budget while still improving: its best validation value came at one of its
    last two evaluations. None without evaluations or a step budget (epochs, or a run stopped early)."""
    if not history or budget is None or budget <= 0 or steps is None:
        return None
    if steps < budget:  # stopped before its budget: a target reached or a plateau
        return False
    return best_step(history, mode) in {s for s, _ in history[-2:]}


class Timing(pl.Callback):
    """Host-side seconds spent in training batches, and each whole training epoch's seconds without its validations."""

    state_key = "Timing"

    def __init__(self):
        self.train_seconds, self.train_steps = 0.0, 0  # over every session of the run (restored on resume)
        self.epoch_seconds: list[float] = []
        self._t0, self._epoch_t0, self._val, self._val_t0 = 0.0, None, 0.0, 0.0  # _epoch_t0 None: a resumed epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_t0, self._val = time.perf_counter(), 0.0

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._epoch_t0 is not None:  # an epoch resumed mid-way has no whole duration to report
            self.epoch_seconds.append(round(time.perf_counter() - self._epoch_t0 - self._val, 4))
        self._epoch_t0 = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.train_seconds += time.perf_counter() - self._t0
        self.train_steps += 1

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._val_t0 = time.perf_counter()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self._epoch_t0 is not None:  # validation inside a training epoch is not the epoch's training time
            self._val += time.perf_counter() - self._val_t0

    def state_dict(self) -> dict:
        return {"epoch_seconds": list(self.epoch_seconds), "train_seconds": self.train_seconds, "train_steps": self.train_steps}

    def load_state_dict(self, state: dict) -> None:
        self.epoch_seconds = list(state.get("epoch_seconds", []))
        self.train_seconds, self.train_steps = state.get("train_seconds", 0.0), state.get("train_steps", 0)


class NaNPolicy(pl.Callback):
    """A NaN/inf loss: `stop` (checked at logging steps, no per-step host sync; the weights before every
    validation) keeping the last good checkpoint, or `skip` the batch's update (one host sync per step)."""

    def __init__(self, policy: str = "stop"):
        self.policy = policy

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.policy == "stop" and outputs is not None and trainer.global_step % trainer.log_every_n_steps == 0:
            if not torch.isfinite(outputs["loss"]):
                self._stop(trainer, "the training loss")

    def on_validation_start(self, trainer, pl_module) -> None:
        if self.policy == "stop" and not all(torch.isfinite(p).all() for p in pl_module.parameters() if p.requires_grad):
            self._stop(trainer, "a trained weight")

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.policy != "skip":
            return
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if grads and not torch.stack([torch.isfinite(g).all() for g in grads]).all():
            for g in optimizer.param_groups:  # no gradient, no update: the optimizer leaves these tensors alone
                for p in g["params"]:
                    p.grad = None

    @staticmethod
    def _stop(trainer, what: str):
        raise FPTError(f"{what} became NaN/inf by step {trainer.global_step}; stopped, the last good checkpoint is kept in "
                       f"checkpoints/last.ckpt. Lower optim.lr, or set on_nan=skip to skip such batches")


class ResumeLog(pl.Callback):
    """Every resume of the run: the step it continued from and the config changes it was allowed (fpt.run.resume)."""

    state_key = "ResumeLog"

    def __init__(self, record: dict | None = None):
        self.record, self.resumes = record, ([record] if record else [])

    def state_dict(self) -> dict:
        return {"resumes": list(self.resumes)}

    def load_state_dict(self, state: dict) -> None:
        self.resumes = list(state.get("resumes", [])) + ([self.record] if self.record else [])


class PlainProgress(ProgressBar):
    """Progress for output that is not a terminal (a log file, a cluster job): plain lines on stderr, one every `every`
    training steps (step, train loss, the last val acc, steps/s) and one after each validation; no carriage returns.

    It reads the logged numbers (a device sync) only when it prints, like the bar at its refresh rate."""

    def __init__(self, every: int, stream=None):
        super().__init__()
        self.every, self.stream, self.enabled = max(1, int(every)), stream, True
        self._last = (0.0, 0)  # (time, step) of the last line

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def _say(self, text: str) -> None:
        print(text, file=self.stream or sys.stderr, flush=True)

    def on_train_start(self, trainer, pl_module) -> None:
        self._last = (time.perf_counter(), trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if not self.enabled or not trainer.is_global_zero or step % self.every or step == self._last[1]:
            return
        now = time.perf_counter()
        rate = (step - self._last[1]) / max(now - self._last[0], 1e-9)
        self._last = (now, step)
        m, key = trainer.progress_bar_metrics, _monitor(pl_module)
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else "?"
        self._say(f"step {step}/{total}  train/loss {_num(m.get('train/loss'))}  {key} {_num(m.get(key))}  {rate:.2f} steps/s")

    def on_validation_end(self, trainer, pl_module) -> None:
        if self.enabled and trainer.is_global_zero and not trainer.sanity_checking and trainer.state.fn == "fit":
            m, key = trainer.progress_bar_metrics, _monitor(pl_module)
            self._say(f"step {trainer.global_step}  validation: {key} {_num(m.get(key))}  val/loss {_num(m.get('val/loss'))}")


def _monitor(pl_module) -> str:
    return getattr(pl_module, "monitor", "val/acc")


def _num(v) -> str:
    return "-" if v is None else f"{float(v):.4f}"
