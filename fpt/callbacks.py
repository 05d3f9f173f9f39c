"""Run control as Lightning callbacks: what happens around the training steps, not inside the model."""

from __future__ import annotations

import lightning.pytorch as pl
import torch

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

