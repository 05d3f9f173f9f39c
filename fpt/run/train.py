"""train(cfg, run_dir) and evaluate(ckpt): build (fpt.run.assemble), fit, test, write the run directory.

A run directory holds config.yaml (resolved), metrics.csv, results.json and checkpoints/ with
slim checkpoints (trained tensors only, never the frozen trunk).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from fpt.models.adapters import recorded
from fpt.run.align import HeadPhase, align_before_fit, save_record, saved_record
from fpt.run.assemble import build, eval_trainer, make_trainer, restore  # build and restore are imported from here too
from fpt.run.callbacks import (FinalValidation, NaNPolicy, PlainProgress, Preemption, ResumeLog, StepSeed, Timing,
                                ValHistory, best_step, still_improving)
from fpt.run.stopping import stopping
from fpt.run.testing import extra_tests, kept_test, named_test, one_device_tester, shuffled_test
from fpt.checkpoint import META_KEY, AtomicCheckpointIO, load_checkpoint, write_json
from fpt.config import resolved
from fpt.errors import FPTError, Preempted
from fpt.models.freeze import count_params, count_used, summary_line
from fpt.config.kinds import freeze_of, has_trunk
from fpt.run.lit import FPTModule
from fpt.run.metrics_log import MetricsCSV
from fpt.run.precision import trunk_dtype
from fpt.run.resume import check_resume, resume_path
from fpt.run.results import Results, job_keys
from fpt.tasks.base import first_examples


def loggers(cfg: DictConfig, run_dir: Path, resume_step: int | None = None, config: dict | None = None) -> list:
    """CSV always (metrics.csv in the run dir), plus TensorBoard or W&B when chosen."""
    out = [MetricsCSV(run_dir / "metrics.csv", keep_before=resume_step)]
    kind = cfg.logger.kind
    if kind == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        out.append(TensorBoardLogger(save_dir=str(run_dir), name="", version="tensorboard"))
    elif kind == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        lc = cfg.logger
        out.append(WandbLogger(project=lc.project, entity=lc.entity, save_dir=str(run_dir), offline=bool(lc.offline),
                               tags=list(lc.tags), name=run_dir.name, config=config if config is not None else resolved(cfg)))
    elif kind != "csv":
        raise FPTError(f"unknown logger.kind '{kind}'; choose csv, tensorboard or wandb")
    return out


@dataclass
class Prepared:
    """A run ready to fit: built, its resume checked; nothing written yet."""

    task: Any
    lit: FPTModule
    resume: str | None  # the checkpoint to continue from
    resume_step: int | None
    changes: dict  # honoured config changes since that checkpoint: {key: [old, new]}
    used: int
    cut: dict | None
    config: dict  # the config resolved once, as config.yaml, the loggers and the checkpoints record it
    align: Any = None  # model.align's record (fpt.models.align.AlignRecord); None: no stage (or a resumed run)


def prepare(cfg: DictConfig, run_dir: Path) -> Prepared:
    """Build the task and module and check a resume; a refusal (FPTError) leaves the run directory untouched."""
    config = resolved(cfg)
    task, lit = build(cfg, config=config)
    resume, resume_step, changes = resume_path(cfg, Path(run_dir) / "checkpoints"), None, {}
    if resume:
        ckpt = load_checkpoint(resume)
        changes = check_resume(ckpt[META_KEY]["config"], config, resume)
        resume_step = int(ckpt["global_step"])
    align = None if resume else align_before_fit(cfg, task, lit.model)  # ORCA: align the input layer, then train
    return Prepared(task, lit, resume, resume_step, changes, count_used(lit.model), truncation_report(task), config, align)


def train(cfg: DictConfig, run_dir: Path, extra: dict | None = None, prepared: Prepared | None = None) -> Results | None:
    """Fit, select the best checkpoint by the objective's validation metric (val/acc, val/mse, ...), test it on the full
    test set, write results.json; returns its record (None on a DDP rank other than 0, which writes nothing).
    `extra`: the Hydra job's overrides and label (fpt.run.job).

    SIGTERM or SIGUSR1 ends the fit after the step in flight: last.ckpt is written at that step,
    results.json says status "preempted", and Preempted is raised (exit code 143)."""
    run_dir = Path(run_dir)
    p = prepared or prepare(cfg, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(p.config))
    if p.align is not None:  # finished work: kept before the fit, for a resume after a stop (fpt.run.align)
        save_record(run_dir, p.align)
    print(summary_line(p.lit.model))
    if p.resume:  # Lightning's own lines about it are filtered out (fpt.run.assemble.CheckpointChatter)
        print(f"note: resuming from {p.resume} at step {p.resume_step}", file=sys.stderr)
    fit = _callbacks(cfg, p, run_dir / "checkpoints")
    trainer = make_trainer(cfg.trainer, logger=loggers(cfg, run_dir, p.resume_step, p.config), callbacks=fit.callbacks,
                           default_root_dir=str(run_dir), plugins=[AtomicCheckpointIO()], say_precision=True)
    t0 = time.perf_counter()
    steps = _fit(cfg, trainer, p, fit, run_dir, extra)
    best = fit.best.best_model_path or None
    tester = one_device_tester(cfg, trainer)
    if tester is None:  # under DDP every rank runs this; rank 0 tests and writes the results
        return None
    test = kept_test(tester, p.lit, p.task, best, run_dir)
    more = _further_tests(cfg, tester, p, best)
    results = _results(cfg, trainer, p, fit, {**{k: float(v) for k, v in test.items() if k.startswith("test/")}, **more}, extra)
    results.steps = steps
    _records(results, p, fit, cfg.trainer.get("max_steps"))
    if p.align is not None:  # the stage's distance on its fixed sample, before and after (curve: align.csv)
        results.scores.update({"align/before": p.align.before, "align/after": p.align.after})
    elif p.resume and str(cfg.model.get("align", "none")) != "none":  # aligned by an earlier start of this run
        results.scores.update(saved_record(run_dir) or {})
    results.wall_seconds = round(time.perf_counter() - t0, 2)
    results.write(run_dir)
    return results


@dataclass
class Fit:
    """The callbacks of one fit, and the ones whose records results.json reads."""

    callbacks: list
    best: ModelCheckpoint  # the selected model (weights only: all that testing needs)
    history: ValHistory
    timing: Timing
    resumes: ResumeLog


def _callbacks(cfg: DictConfig, p: Prepared, ckpt_dir: Path) -> Fit:
    """best.ckpt (the selected model), last.ckpt (every evaluation, for resume), the records, the stops, the progress."""
    obj, monitor = p.lit.objective, p.lit.monitor
    ckpt_cb = ModelCheckpoint(dirpath=str(ckpt_dir), filename="best", monitor=monitor, mode=obj.mode,
                              save_weights_only=True, enable_version_counter=False)
    last_cb = ModelCheckpoint(dirpath=str(ckpt_dir), filename="last", monitor=None, save_top_k=1, enable_version_counter=False)
    history, timing = ValHistory(cfg.get("targets"), monitor, obj.mode), Timing()
    resumes = ResumeLog({"step": p.resume_step, "changed": p.changes} if p.resume_step is not None else None)
    callbacks = [ckpt_cb, last_cb, history, timing, resumes, FinalValidation(), StepSeed(int(cfg.seed)),
                 NaNPolicy(str(cfg.get("on_nan", "stop"))), Preemption(ckpt_dir / "last.ckpt"),
                 *stopping(cfg.get("stop_at_val_acc"), cfg.get("early_stop"), monitor, obj.mode)]
    if int(cfg.model.get("head_steps") or 0) > 0:  # ORCA's predictor phase before the full finetuning
        callbacks.append(HeadPhase(int(cfg.model.head_steps)))
    if cfg.trainer.get("enable_progress_bar", True):  # either reads its metrics (a device sync) only when it prints
        from lightning.pytorch.callbacks import TQDMProgressBar

        every = max(1, int(cfg.trainer.get("log_every_n_steps") or 20))  # a log file gets plain lines, a terminal the bar
        callbacks.append(TQDMProgressBar(refresh_rate=every) if sys.stderr.isatty() else PlainProgress(every))
    return Fit(callbacks, ckpt_cb, history, timing, resumes)


def _fit(cfg: DictConfig, trainer: pl.Trainer, p: Prepared, fit: Fit, run_dir: Path, extra: dict | None) -> int:
    """trainer.fit, from the resume checkpoint if any; returns the steps trained. A preemption writes results.json
    (status "preempted") and raises Preempted."""
    ckpt_dir = run_dir / "checkpoints"
    try:
        trainer.fit(p.lit, datamodule=p.task, ckpt_path=p.resume, weights_only=True)  # ours: tensors and plain values
    except SIGTERMException:
        step = int(trainer.global_step)
        if trainer.is_global_zero:
            Results(status="preempted", steps=step, task=cfg.task.name, seed=int(cfg.seed), **job_keys(extra)).write(run_dir)
        raise Preempted(f"preempted at step {step}: checkpoints/last.ckpt holds it; run the same command again to resume") from None
    if fit.timing.train_steps == 0 and (ckpt_dir / "last.ckpt").is_file():  # ddp_spawn trained in child processes
        return from_last_checkpoint(ckpt_dir / "last.ckpt", (fit.history, fit.timing, fit.resumes))
    return int(trainer.global_step)


def _further_tests(cfg: DictConfig, trainer: pl.Trainer, p: Prepared, best: str | None) -> dict:
    """The task's extra test sets, the training set (eval.train_acc) and the shuffled test (eval.shuffle_tokens)."""
    more = extra_tests(trainer, p.lit, p.task, best)
    ev = cfg.get("eval") or {}
    if ev.get("train_acc", True):  # the selected model on its own training set (paper Table 7)
        loader = first_examples(p.task.train_eval_dataloader(), ev.get("train_examples"))
        metric = p.lit.objective.metric
        more[f"train/{metric}"] = named_test(trainer, p.lit, loader, best, "train_set")[f"train_set/{metric}"]
    more.update(shuffled_test(cfg, trainer, p.lit, p.task, best))
    return more


def _results(cfg: DictConfig, trainer: pl.Trainer, p: Prepared, fit: Fit, scores: dict, extra: dict | None) -> Results:
    """The record of a finished run: what ran, what the selected checkpoint scored (`scores`: test/*, further tests), what
    it trained."""
    obj, task, kind = p.lit.objective, getattr(p.task, "task", p.task), cfg.model.kind
    trainable, total = count_params(p.lit.model)
    best = float(fit.best.best_model_score) if fit.best.best_model_score is not None else None
    return Results(
        status="ok", task=cfg.task.name, model=kind,
        trunk=cfg.trunk.name if has_trunk(kind) else None,
        init=cfg.trunk.init if has_trunk(kind) else None,
        freeze=freeze_of(cfg),
        **(recorded(cfg.get("peft")) if has_trunk(kind) else {"peft": None, "peft_r": None}),
        seed=int(cfg.seed), lr=float(cfg.optim.lr),
        precision=str(trainer.precision),  # as resolved (auto: bf16-mixed on bf16 hardware)
        trunk_dtype=trunk_dtype(cfg), objective=obj.name, chance=task.spec.chance,
        metric=obj.metric, mode=obj.mode,
        # the task's reference numbers on the same split (e.g. baseline/1nn_acc) come last
        scores={p.lit.monitor: best, **scores, **task.baselines()},
        params_trainable=trainable, params_used=p.used, params_total=total, truncation=p.cut,
        **job_keys(extra),
    )


def _records(results: Results, p: Prepared, fit: Fit, budget: int | None = None) -> None:
    """The fit's records into `results`: speed, the feature cache, the tested checkpoint, the targets reached, the resumes."""
    timing, history = fit.timing, fit.history
    results.sec_per_step = round(timing.train_seconds / max(timing.train_steps, 1), 4)
    results.epoch_seconds = timing.epoch_seconds
    results.feature_cache = getattr(p.task, "info", None)
    results.best_checkpoint = fit.best.best_model_path or None
    results.best_step = best_step(history.history, p.lit.objective.mode)
    if results.best_step in history.losses:  # the tested checkpoint's validation loss: the lr tie-break of sweeps
        results.scores["val/loss"] = history.losses[results.best_step]
    results.improving_at_end = still_improving(history.history, p.lit.objective.mode, results.steps, budget)
    results.steps_to = {str(t): history.steps_to.get(str(t)) for t in history.targets}
    results.resumed = fit.resumes.resumes


def from_last_checkpoint(path: Path, callbacks) -> int:
    """Restore the callbacks' records (history, timing, resumes) from last.ckpt, for fits that ran in other processes
    (ddp_spawn); returns the step it was written at."""
    ckpt = load_checkpoint(path)
    states = ckpt.get("callbacks", {})
    for cb in callbacks:
        if cb.state_key in states:
            cb.load_state_dict(states[cb.state_key])
    return int(ckpt["global_step"])


def truncation_report(task) -> dict | None:
    """What cutting sequences to the task's length cost (None: a fixed-length task); one warning line when most are cut."""
    cut = task.truncation()
    if cut and cut["train"]["examples_cut"] > 0.5:
        t = cut["train"]
        print(f"warning: {100 * t['examples_cut']:.0f}% of the training examples are cut to {cut['max_len']} tokens "
              f"({100 * t['tokens_kept']:.0f}% of their tokens kept); a trunk with more positions (or task.max_len) keeps more",
              file=sys.stderr)
    return cut


def evaluate(ckpt_path: str, overrides: list[str] | None = None) -> dict:
    """Re-evaluate a checkpoint on its task's full test set; writes eval.json beside it."""
    ckpt = load_checkpoint(ckpt_path)
    cfg, task, lit = restore(ckpt, overrides, path=ckpt_path)
    trainer = eval_trainer(cfg)
    test = trainer.test(lit, datamodule=task, verbose=False)[0]
    out = {"checkpoint": str(ckpt_path), "task": cfg.task.name, "metric": lit.objective.metric,
           **{k: float(v) for k, v in test.items() if k.startswith("test/")}, **extra_tests(trainer, lit, task, None),
           **shuffled_test(cfg, trainer, lit, task, None), "steps": int(ckpt.get("global_step", 0))}
    write_json(Path(ckpt_path).with_name(Path(ckpt_path).stem + ".eval.json"), out)
    return out
