"""train(cfg, run_dir) and evaluate(ckpt): build, fit, test, write the run directory.

A run directory holds config.yaml (resolved), metrics.csv, results.json and checkpoints/ with
slim checkpoints (trained tensors only, never the frozen trunk).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

from fpt.config import resolved
from fpt.errors import FPTError
from fpt.freeze import count_params, summary_line
from fpt.lit import META_KEY, FPTModule, trunk_fingerprint
from fpt.model import build_model
from tasks.base import build_task


def write_json(path: Path, obj) -> None:
    """Write JSON atomically: a crash mid-write never leaves a half file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def build(cfg: DictConfig):
    """Task and LightningModule for `cfg`, seeded."""
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    task = build_task(cfg.task, int(cfg.seed), cfg.data)
    model = build_model(cfg, task.spec)
    if model.spec.seq_len != task.spec.seq_len:  # a variable-length task cut to the trunk's positions
        task.fit_to(model.spec.seq_len)
    return task, FPTModule(model, resolved(cfg))


def loggers(cfg: DictConfig, run_dir: Path) -> list:
    """CSV always (metrics.csv in the run dir), plus TensorBoard or W&B when chosen."""
    out = [CSVLogger(save_dir=str(run_dir), name="", version="")]
    kind = cfg.logger.kind
    if kind == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        out.append(TensorBoardLogger(save_dir=str(run_dir), name="", version="tensorboard"))
    elif kind == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        lc = cfg.logger
        out.append(WandbLogger(project=lc.project, entity=lc.entity, save_dir=str(run_dir), offline=bool(lc.offline),
                               tags=list(lc.tags), name=run_dir.name, config=resolved(cfg)))
    elif kind != "csv":
        raise FPTError(f"unknown logger.kind '{kind}'; choose csv, tensorboard or wandb")
    return out


def train(cfg: DictConfig, run_dir: Path, extra: dict | None = None) -> dict:
    """Fit, select the best checkpoint by val/acc, test it on the full test set, write results.json."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(resolved(cfg)))
    task, lit = build(cfg)
    print(summary_line(lit.model))
    ckpt_dir = run_dir / "checkpoints"
    ckpt_cb = ModelCheckpoint(dirpath=str(ckpt_dir), filename="best", monitor="val/acc", mode="max", save_last=True)
    trainer = pl.Trainer(**OmegaConf.to_container(cfg.trainer, resolve=True), logger=loggers(cfg, run_dir),
                         callbacks=[ckpt_cb], default_root_dir=str(run_dir))
    resume = _resume_path(cfg, ckpt_dir)
    t0 = time.perf_counter()
    trainer.fit(lit, datamodule=task, ckpt_path=resume)
    best = ckpt_cb.best_model_path or None
    test = trainer.test(lit, datamodule=task, ckpt_path=best, verbose=False)[0]
    trainable, total = count_params(lit.model)
    results = {
        "status": "ok",
        "task": cfg.task.name,
        "model": cfg.model.kind,
        "trunk": cfg.trunk.name if cfg.model.kind == "fpt" else None,
        "init": cfg.trunk.init if cfg.model.kind == "fpt" else None,
        "freeze": list(cfg.freeze),
        "seed": int(cfg.seed),
        "lr": float(cfg.optim.lr),
        "val/acc": float(ckpt_cb.best_model_score) if ckpt_cb.best_model_score is not None else None,
        "test/acc": float(test["test/acc"]),
        "test/loss": float(test["test/loss"]),
        "params_trainable": trainable,
        "params_total": total,
        "steps": int(trainer.global_step),
        "best_checkpoint": best,
        "steps_to": {str(t): lit.steps_to.get(str(t)) for t in lit.targets},  # None: never reached
        "wall_seconds": round(time.perf_counter() - t0, 2),
        **(extra or {}),
    }
    write_json(run_dir / "results.json", results)
    return results


def _resume_path(cfg: DictConfig, ckpt_dir: Path) -> str | None:
    """`resume=DIR|FILE`, or the run dir's own last.ckpt when the same run is started again."""
    if cfg.get("resume"):
        p = Path(str(cfg.resume)).expanduser()
        p = p / "checkpoints" / "last.ckpt" if p.is_dir() else p
        if not p.is_file():
            raise FPTError(f"resume={cfg.resume}: no checkpoint at {p}")
        return str(p)
    last = ckpt_dir / "last.ckpt"
    return str(last) if last.is_file() else None


def load_checkpoint(path: str | Path) -> dict:
    """A toolkit checkpoint, loaded without executing code (weights_only)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FPTError(f"no checkpoint at {path}; pass ckpt=RUN_DIR/checkpoints/best.ckpt")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, corrupt, or not a checkpoint at all
        raise FPTError(f"cannot read checkpoint {path}: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(ckpt, dict) or META_KEY not in ckpt or "state_dict" not in ckpt:
        raise FPTError(f"{path} is not an fpt checkpoint (no '{META_KEY}' metadata)")
    return ckpt


def restore(ckpt: dict, overrides: list[str] | None = None):
    """Rebuild the task and module a checkpoint came from and load its trained tensors."""
    cfg = OmegaConf.create(ckpt[META_KEY]["config"])
    if overrides:
        cfg.merge_with(OmegaConf.from_dotlist(overrides))
    task, lit = build(cfg)
    missing, unexpected = lit.load_state_dict(ckpt["state_dict"], strict=False)
    frozen = lit.frozen_trunk_keys()
    bad = sorted(set(missing) - frozen) + sorted(unexpected)
    if bad:
        raise FPTError(f"checkpoint does not fit the model its config builds (e.g. {bad[0]}); was it written by another version?")
    want, got = ckpt[META_KEY]["fingerprint"], trunk_fingerprint(lit)
    if any(abs(a - b) > 1e-6 * max(1.0, abs(a)) for a, b in zip(want, got)):
        raise FPTError("the frozen trunk's weights differ from the ones this checkpoint was trained with; check trunk.path / trunk.init")
    return cfg, task, lit


def evaluate(ckpt_path: str, overrides: list[str] | None = None) -> dict:
    """Re-evaluate a checkpoint on its task's full test set; writes eval.json beside it."""
    ckpt = load_checkpoint(ckpt_path)
    cfg, task, lit = restore(ckpt, overrides)
    trainer = pl.Trainer(accelerator=cfg.trainer.get("accelerator", "auto"), devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False)
    test = trainer.test(lit, datamodule=task, verbose=False)[0]
    out = {"checkpoint": str(ckpt_path), "task": cfg.task.name, "test/acc": float(test["test/acc"]),
           "test/loss": float(test["test/loss"]), "steps": int(ckpt.get("global_step", 0))}
    write_json(Path(ckpt_path).with_name(Path(ckpt_path).stem + ".eval.json"), out)
    return out
