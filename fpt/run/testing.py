"""Testing the selected checkpoint: on one device after a distributed fit, each example's value kept for paired
bootstraps, the task's further test sets, the training set and the shuffled-token test under their own names."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from omegaconf import DictConfig

from fpt.run.assemble import make_trainer
from fpt.run.lit import FPTModule


def kept_test(tester: pl.Trainer, lit: FPTModule, task, best: str | None, run_dir: Path) -> dict:
    """The test of the selected checkpoint; each example's value (fpt.run.objectives.per_example) goes to
    test_examples.npz beside results.json, in the test set's order: what paired bootstraps between runs resample."""
    import numpy as np
    import torch

    lit.kept = []
    try:
        test = tester.test(lit, datamodule=task, ckpt_path=best, verbose=False, weights_only=True)[0]  # ours: tensors
        if lit.kept:
            np.savez(run_dir / "test_examples.npz", values=torch.cat(lit.kept).numpy(), metric=lit.objective.metric)
    finally:
        lit.kept = None
    return test


def one_device_tester(cfg: DictConfig, trainer: pl.Trainer) -> pl.Trainer | None:
    """The trainer that tests the selected model: `trainer` itself when it ran on one device. After a DDP or FSDP fit,
    a one-device trainer on global rank 0 (None on the other ranks): a DistributedSampler pads each split to a multiple
    of the world size by repeating examples, so testing on every rank would score some examples twice, and ddp_spawn
    would start its processes again. The process group is closed first on every rank, so torchmetrics on rank 0 does
    not wait for ranks that have left."""
    if trainer.world_size == 1:
        return trainer
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():  # ddp launched as processes (torchrun, SLURM): all ranks are here
        dist.barrier()
        dist.destroy_process_group()
    if not trainer.is_global_zero:
        return None
    return make_trainer({"accelerator": cfg.trainer.get("accelerator", "auto"), "devices": 1, "num_nodes": 1,
                         "precision": trainer.precision}, logger=trainer.loggers or False, enable_checkpointing=False,
                        enable_progress_bar=False, default_root_dir=trainer.default_root_dir)


def named_test(trainer: pl.Trainer, lit: FPTModule, loader, ckpt: str | None, name: str) -> dict:
    """Test on `loader`, its metrics logged and returned as NAME/acc (NAME/mse, ...) and NAME/loss."""
    with lit.evaluating(name):
        r = trainer.test(lit, dataloaders=loader, ckpt_path=ckpt, verbose=False, weights_only=True)[0]
    return {k: float(v) for k, v in r.items() if k.startswith(f"{name}/")}


def extra_tests(trainer: pl.Trainer, lit: FPTModule, task, ckpt: str | None) -> dict:
    """The task's further test sets (e.g. homology's superfamily and family holdouts) as NAME/acc, NAME/loss, ..."""
    out = {}
    for name, loader in task.extra_test_dataloaders().items():
        out.update(named_test(trainer, lit, loader, ckpt, name))
    return out


def shuffled_test(cfg, trainer: pl.Trainer, lit: FPTModule, task, ckpt: str | None) -> dict:
    """eval.shuffle_tokens: test/acc again with each example's token order permuted, as test_shuffled/acc."""
    if not (cfg.get("eval") or {}).get("shuffle_tokens", False):
        return {}
    with lit.shuffled():
        return named_test(trainer, lit, task.test_dataloader(), ckpt, "test_shuffled")
