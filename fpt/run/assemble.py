"""Assemble a run: the task and LightningModule a config (or a checkpoint's config) builds, and Lightning's Trainer."""

from __future__ import annotations

import logging

import lightning.pytorch as pl
from omegaconf import DictConfig, OmegaConf

from fpt.checkpoint import META_KEY
from fpt.config import resolved
from fpt.config.trust import check_trusted
from fpt.errors import FPTError
from fpt.models.build import build_model
from fpt.run.features import maybe_cache
from fpt.run.lit import FPTModule, trunk_fingerprint
from fpt.run.precision import resolve_precision, store_frozen, trunk_dtype
from fpt.tasks.base import build_task, task_class, task_options
from fpt.tasks.spec import TaskSpec


def build(cfg: DictConfig, cached: bool = True, config: dict | None = None):
    """Task and LightningModule for `cfg`, seeded. `cached`: output-only runs may serve cached features
    (features.cache); False gives the task's own examples (analysis reads inputs, not features). `config`: `cfg`
    already resolved (fpt.run.train.prepare resolves it once), the hyperparameters the checkpoints record."""
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    task = build_task(cfg.task, int(cfg.seed), cfg.data)
    cap = cfg.data.get("max_len")
    if cap is not None and task.spec.truncatable and task.spec.seq_len > int(cap):  # identical inputs for every trunk
        task.fit_to(int(cap))
    model = build_model(cfg, task.spec)
    store_frozen(model, trunk_dtype(cfg))
    if model.spec.seq_len != task.spec.seq_len:  # a variable-length task cut to the trunk's positions
        task.fit_to(model.spec.seq_len)
    lit = FPTModule(model, config if config is not None else resolved(cfg))
    lit.task_state = task.state()  # what the checkpoints keep of the data: new inputs are read by it (fpt predict)
    return (maybe_cache(cfg, task, model) if cached else task), lit


class CheckpointChatter(logging.Filter):
    """Lightning's lines about loading the checkpoints fpt itself hands it (best.ckpt to test, last.ckpt to resume),
    twice per test: the result line names the tested checkpoint and a resume prints its own note."""

    LINES = ("Restoring states from the checkpoint path", "Loaded model weights from the checkpoint",
             "Restored all states from the checkpoint")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.LINES)


def make_trainer(trainer_cfg, **kw) -> pl.Trainer:
    """Lightning's Trainer from `trainer.*`; its configuration errors become one line."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    options = dict(OmegaConf.to_container(trainer_cfg, resolve=True) if not isinstance(trainer_cfg, dict) else trainer_cfg)
    options["precision"] = resolve_precision(options, say=kw.pop("say_precision", False))
    if options.get("min_steps") and options.get("min_epochs") is None:
        # Lightning sets min_epochs=1 beside min_steps, and then no stop acts before a whole epoch: never, on a stream
        # task (the bit tasks) whose epoch outlasts the run. The stops wait for min_steps alone.
        options["min_epochs"] = 0
    chatter = logging.getLogger("lightning.pytorch.utilities.rank_zero")  # "GPU available: False", tips; rank_zero_info
    if not any(isinstance(f, CheckpointChatter) for f in chatter.filters):
        chatter.addFilter(CheckpointChatter())
    level = chatter.level
    chatter.setLevel(logging.WARNING)
    try:
        return pl.Trainer(**options, **kw)
    except (MisconfigurationException, ValueError, TypeError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise FPTError(f"trainer options rejected by Lightning: {first}") from None
    finally:
        chatter.setLevel(level)


def restore(ckpt: dict, overrides: list[str] | None = None, cached: bool = True, path="the checkpoint"):
    """Rebuild the task and module a checkpoint came from and load its trained tensors (see build). Its config
    may name code only through the toolkit's registries (check_trusted)."""
    cfg = _checked_config(ckpt, overrides, path)
    task, lit = build(cfg, cached)
    _same_data(ckpt[META_KEY].get("task"), lit.task_state, path)
    _load_trained(lit, ckpt)
    return cfg, task, lit


def restore_saved(ckpt: dict, overrides: list[str] | None = None, path="the checkpoint"):
    """restore() without the run's data: the model is built from the spec the checkpoint's task state records and the task
    is made without reading a file, to read new inputs by that state (Task.encode). A checkpoint written before runs
    recorded it is restored from its data (restore). Returns (cfg, task, module, state)."""
    state = ckpt[META_KEY].get("task")
    if state is None:
        cfg, task, lit = restore(ckpt, overrides, cached=False, path=path)
        return cfg, task, lit, task.state()
    cfg = _checked_config(ckpt, overrides, path)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    task = task_class(cfg.task)(task_options(cfg.task), seed=int(cfg.seed), data=cfg.data)  # reads nothing yet
    model = build_model(cfg, TaskSpec.from_record(state["spec"]))
    store_frozen(model, trunk_dtype(cfg))
    lit = FPTModule(model, resolved(cfg))
    lit.task_state = state
    _load_trained(lit, ckpt)
    return cfg, task, lit, state


def _checked_config(ckpt: dict, overrides: list[str] | None, path) -> DictConfig:
    """The checkpoint's config, trusted (check_trusted: before anything it names is imported), with `overrides`."""
    check_trusted(ckpt[META_KEY]["config"], path)
    cfg = OmegaConf.create(ckpt[META_KEY]["config"])
    if overrides:
        cfg.merge_with(OmegaConf.from_dotlist(overrides))
    return cfg


def _same_data(saved: dict | None, now: dict, path) -> None:
    """One line when the data a config reads now builds another spec than the run trained on (a changed file)."""
    if saved is None:  # written before checkpoints kept the task's state
        return
    was, got = saved["spec"], now["spec"]
    if diff := [k for k in was if k in got and got[k] != was[k]]:
        raise FPTError(f"the data this run reads is not what it trained on: {diff[0]} is {got[diff[0]]} now, "
                       f"{was[diff[0]]} in {path}; point data.* at the run's own data")


def _load_trained(lit: FPTModule, ckpt: dict) -> None:
    """The checkpoint's trained tensors into `lit`; its frozen trunk checked against the one this build loaded."""
    try:
        missing, unexpected = lit.load_state_dict(ckpt["state_dict"], strict=False)
    except RuntimeError as e:  # a tensor of another shape
        why = next((ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln), str(e).splitlines()[0])
        raise FPTError(f"checkpoint does not fit the model its config builds: {why}") from None
    frozen = lit.frozen_trunk_keys()
    bad = sorted(set(missing) - frozen) + sorted(unexpected)
    if bad:
        raise FPTError(f"checkpoint does not fit the model its config builds (e.g. {bad[0]}); was it written by another version?")
    want = ckpt[META_KEY]["fingerprint"]
    if isinstance(want, list):  # written before fingerprints recorded their dtype: float32
        want = {"dtype": "float32", "sum": want[0], "sumsq": want[1]}
    got = trunk_fingerprint(lit, want["dtype"])  # taken in the dtype the checkpoint's was, whatever this build stores
    if any(abs(want[k] - got[k]) > 1e-6 * max(1.0, abs(want[k])) for k in ("sum", "sumsq")):
        raise FPTError("the frozen trunk's weights differ from the ones this checkpoint was trained with; check trunk.path / trunk.init")


def eval_trainer(cfg: DictConfig) -> pl.Trainer:
    """A one-device Trainer that tests or predicts as the run's config says (accelerator, precision); no logs or files."""
    return make_trainer({"accelerator": cfg.trainer.get("accelerator", "auto"), "devices": 1,
                         "precision": cfg.trainer.get("precision", "32-true")}, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False)
