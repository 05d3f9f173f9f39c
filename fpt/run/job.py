"""One Hydra job: a single `fpt train`, or one run of a sweep.

One process per run directory (fpt.runlock). A finished run is not trained again: a sweep skips it, and a
single run started again with the same command prints its recorded results and changes nothing (a longer
trainer.max_steps continues it). A failed sweep run records its error in results.json and lets the others
go on; a single run fails in one line with exit code 2, leaving the run directory untouched when it fails
before training starts (a refused resume, missing data). A preempted run (SIGTERM, SIGUSR1) exits 143.
"""

from __future__ import annotations

import errno
import sys
import traceback
from pathlib import Path

from omegaconf import DictConfig

from fpt.run.preflight import preflight
from fpt.run.results import BASELINE, NAME, Results
from fpt.errors import FPTError, Preempted
from fpt.run.runlock import RunLock, is_secondary_rank

CONTINUES = ("trainer.max_steps", "trainer.max_epochs", "stop_at_val_acc")  # changes that give a finished run more to do


class RunFailed(SystemExit):
    """A single run's one-line failure: exit code 2 (a SystemExit, which Hydra lets through); `error` keeps the FPTError
    for a caller in the same process (fpt.train raises it)."""

    def __init__(self, error: FPTError):
        super().__init__(2)
        self.error = error


def finished(run_dir: Path) -> Results | None:
    """The run's results if it completed, else None."""
    res = Results.read(run_dir)
    return res if res and res.finished else None


def run_job(cfg: DictConfig) -> float | None:
    """Train one configuration inside Hydra; returns its test metric (accuracy, MSE, ...; None if skipped or failed)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    sweep = hc.mode == RunMode.MULTIRUN
    overrides = dict(o.split("=", 1) for o in hc.overrides.task if "=" in o)
    extra = {"overrides": overrides, "label": cfg.get("label")}
    if is_secondary_rank():  # another DDP rank of a run rank 0 holds and reports
        from fpt.run.train import train

        train(preflight(cfg), run_dir, extra)
        return None
    started = False
    try:
        with RunLock(run_dir):
            if (done := finished(run_dir)) and sweep:
                return _say_finished(done, run_dir, sweep)
            cfg = preflight(cfg)  # the checked config travels on from here
            if done and _nothing_to_do(run_dir, cfg):
                return _say_finished(done, run_dir, sweep)
            from fpt.run.crossval import cross_validate, is_cv
            from fpt.run.train import prepare, train

            prepared = None if is_cv(cfg) else prepare(cfg, run_dir)  # raises before any file of the run dir is written
            started = True
            res = cross_validate(cfg, run_dir, extra) if is_cv(cfg) else train(cfg, run_dir, extra, prepared)
    except Preempted as e:
        print(f"fpt train: {e}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None
    except Exception as e:  # noqa: BLE001 - in a sweep any failure is recorded, the rest go on
        return _failed(e, cfg, run_dir, sweep, started, overrides)
    return _say(res, run_dir) if res else None  # no results: a DDP rank other than 0 (rank 0 reports)


def _say_finished(done: Results, run_dir: Path, sweep: bool) -> float | None:
    """A finished run with nothing more to do: its recorded line; returns its test value."""
    m = done.metric or "acc"
    print(f"{'skip (finished)' if sweep else 'finished already'}: {run_dir}  test/{m} {_fmt(done.score('test', m))}  "
          f"val/{m} {_fmt(done.score('val', m))}  steps {done.steps}")
    return done.score("test", m)


def _failed(e: Exception, cfg: DictConfig, run_dir: Path, sweep: bool, started: bool, overrides: dict) -> None:
    """A failure: recorded in results.json in a sweep (or once training started), one line on stderr; a single run exits 2.
    Anything but an FPTError in a single run is raised as it is."""
    e = _as_user_error(e, cfg)
    if not sweep and not isinstance(e, FPTError):
        raise e  # a bug in a single run: its own traceback
    if sweep or started:
        _record_failure(run_dir, e, overrides)
    print(f"fpt train: error: {_first_line(e)}", file=sys.stderr)
    if not sweep:
        raise RunFailed(e) from None
    return None


def _say(res: Results, run_dir: Path) -> float:
    """The finished run's line: test and validation metric, the task's baselines, steps, seconds; returns the test value."""
    m = res.metric
    base = "".join(f"  {k} {v:.4f}" for k, v in res.scores.items() if k.startswith(BASELINE) and isinstance(v, float))
    if note := res.scores.get(f"{BASELINE}note"):  # a baseline that did not run says why, on the console too
        print(f"note: {note}")
    print(f"test/{m} {res.score('test'):.4f}  val/{m} {_fmt(res.score('val'))}{base}  steps {res.steps} (the tested checkpoint: "
          f"step {res.best_step})  {res.wall_seconds:.0f}s  -> {run_dir}/results.json")
    return res.score("test")


def _fmt(v) -> str:
    return "None" if v is None else f"{v:.4f}"


def _nothing_to_do(run_dir: Path, cfg: DictConfig) -> bool:
    """A finished run needs no training unless this command asks for more (CONTINUES) than it was given;
    a command that changes anything else about the run is refused (fpt.run.resume). `cfg`: the checked config."""
    from omegaconf import OmegaConf

    from fpt.run.resume import check_resume

    saved = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml")) if (run_dir / "config.yaml").is_file() else None
    if saved is None:
        return True
    changes = check_resume(saved, OmegaConf.to_container(cfg), run_dir)
    return not any(k in changes for k in CONTINUES)


def _as_user_error(e: Exception, cfg: DictConfig) -> Exception:
    """Out of memory and file-system failures as one line that says what to do; anything else unchanged."""
    import torch

    text = str(e)
    if isinstance(e, torch.OutOfMemoryError) or (isinstance(e, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)):
        bs = cfg.task.get("batch_size")
        return FPTError(f"out of memory with task.batch_size={bs} ({text.strip().splitlines()[0][:120]}); lower task.batch_size, "
                        f"or set model.grad_checkpointing=true, trunk.attn_dropout=0 or a smaller trunk")
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG, errno.EACCES, errno.EROFS, errno.ENOTDIR):
        return FPTError(f"cannot write {e.filename or 'the run directory'}: {e.strerror}; choose another hydra.run.dir "
                        f"(or free space)")
    return e


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text and not isinstance(e, FPTError) else text or type(e).__name__


def _record_failure(run_dir: Path, e: Exception, overrides: dict) -> None:
    """results.json says the run failed and why; the results of an earlier finished attempt are never replaced
    (the failure goes to failure.json beside them). A write that fails too (a full disk) is left at that."""
    record = Results(status="failed", error=_first_line(e), overrides=overrides)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not isinstance(e, FPTError):
            (run_dir / "error.log").write_text("".join(traceback.format_exception(e)))
        record.write(run_dir, "failure.json" if finished(run_dir) else NAME)
    except (OSError, FPTError):
        pass
