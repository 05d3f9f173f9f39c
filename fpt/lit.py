"""The LightningModule: loss and accuracy, optimizer over trainable tensors, slim checkpoints."""

from __future__ import annotations

import time
from contextlib import contextmanager

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torchmetrics.classification import MulticlassAccuracy

from fpt.checkpoint import META_KEY
from fpt.errors import FPTError
from fpt.model import FPTModel

NAN_POLICIES = ("stop", "skip")


class FPTModule(pl.LightningModule):
    """Trains an FPTModel; logs {train,val,test}/{loss,acc}; records steps to target accuracies."""

    # Slim checkpoints leave the frozen trunk out, so resuming loads the rest non-strictly.
    strict_loading = False

    def __init__(self, model: FPTModel, cfg):
        super().__init__()
        self.model = model
        self.cfg = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else cfg
        self.acc = torch.nn.ModuleDict({f"{s}_acc": self._accuracy() for s in ("train", "val", "test")})
        self.test_name = "test"  # the metric prefix of trainer.test: test, or another set's name (see evaluating)
        self.targets = sorted(float(t) for t in self.cfg.get("targets") or [])
        self.steps_to: dict[str, int] = {}
        self.stop_at = self.cfg.get("stop_at_val_acc")
        self.on_nan = self.cfg.get("on_nan", "stop")
        if self.on_nan not in NAN_POLICIES:
            raise FPTError(f"unknown on_nan '{self.on_nan}'; choose one of: {', '.join(NAN_POLICIES)}")
        self.history: list[tuple[int, float]] = []  # (step, val/acc) per evaluation
        self.train_seconds, self.train_steps, self._t0 = 0.0, 0, 0.0  # host-side time in training batches
        self.epoch_seconds: list[float] = []  # wall time of each training epoch (validation excluded)
        self._epoch_t0, self._epoch_val, self._val_t0 = None, 0.0, 0.0  # None: no epoch start seen (a resumed epoch)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model(x, mask)

    def _accuracy(self) -> MulticlassAccuracy:
        return MulticlassAccuracy(num_classes=self.model.spec.num_classes, average="micro", validate_args=False)

    @contextmanager
    def evaluating(self, name: str):
        """trainer.test under another name: its metrics become NAME/acc and NAME/loss (e.g. train_set, test_family)."""
        if f"{name}_acc" not in self.acc:
            self.acc[f"{name}_acc"] = self._accuracy().to(self.device)
        self.test_name, old = name, self.test_name
        try:
            yield
        finally:
            self.test_name = old

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        if "r" in batch:  # cached output-only features (fpt/features.py): the trunk does not run
            logits = self.model.head(batch["r"])
        else:
            logits = self.model(batch["x"], batch["mask"])  # (b, n, c)
        y = batch["y"]  # (b, n)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        self.acc[f"{stage}_acc"](logits.argmax(-1).flatten(), y.flatten())
        on_step = stage == "train"
        # val/test loss is averaged over every rank under DDP (one sync at the epoch's end); accuracy syncs itself
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=not on_step, prog_bar=True, batch_size=y.shape[0],
                 sync_dist=not on_step)
        self.log(f"{stage}/acc", self.acc[f"{stage}_acc"], on_step=on_step, on_epoch=not on_step, prog_bar=True, batch_size=y.shape[0])
        return loss

    def training_step(self, batch, batch_idx):
        loss = self._step(batch, "train")
        if self.on_nan == "skip" and not torch.isfinite(loss):  # one host sync per step, only in this mode
            return None  # Lightning skips the optimizer step for this batch
        return loss

    def on_train_epoch_start(self):
        self._epoch_t0, self._epoch_val = time.perf_counter(), 0.0

    def on_train_epoch_end(self):
        if self._epoch_t0 is not None:  # an epoch resumed mid-way has no whole duration to report
            self.epoch_seconds.append(round(time.perf_counter() - self._epoch_t0 - self._epoch_val, 4))
        self._epoch_t0 = None

    def on_validation_epoch_start(self):
        self._val_t0 = time.perf_counter()

    def on_train_batch_start(self, batch, batch_idx):
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.train_seconds += time.perf_counter() - self._t0
        self.train_steps += 1
        # Checked at logging steps only (no per-step host sync); validation checks the weights too.
        if self.on_nan == "stop" and outputs is not None and (self.global_step % self.trainer.log_every_n_steps == 0):
            if not torch.isfinite(outputs["loss"]):
                self._nan_stop("the training loss")

    def on_validation_start(self):
        if self.on_nan == "stop" and not all(torch.isfinite(p).all() for p in self.model.parameters() if p.requires_grad):
            self._nan_stop("a trained weight")

    def _nan_stop(self, what: str):
        raise FPTError(
            f"{what} became NaN/inf by step {self.global_step}; stopped, the last good checkpoint is kept in "
            f"checkpoints/last.ckpt. Lower optim.lr, or set on_nan=skip to skip such batches"
        )

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, self.test_name)

    def on_validation_epoch_end(self):
        if self._epoch_t0 is not None:  # validation inside a training epoch is not the epoch's training time
            self._epoch_val += time.perf_counter() - self._val_t0
        if self.trainer.sanity_checking:
            return
        acc = float(self.trainer.callback_metrics["val/acc"])  # one host sync per evaluation
        step = int(self.global_step)
        self.history.append((step, acc))
        for t in self.targets:
            if acc >= t and str(t) not in self.steps_to:
                self.steps_to[str(t)] = step
        if self.stop_at is not None and acc >= float(self.stop_at):
            self.trainer.should_stop = True

    def configure_optimizers(self):
        """Adam(W) over trainable tensors only; no weight decay on 1-D tensors (norms, biases)."""
        o = self.cfg["optim"]
        lr, wd = float(o["lr"]), float(o.get("weight_decay", 0.0))
        if lr <= 0:
            raise FPTError(f"optim.lr must be positive, got {lr}")
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise FPTError("every parameter is frozen: nothing to train; freeze fewer groups")
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": wd},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        cls = torch.optim.AdamW if wd > 0 else torch.optim.Adam
        betas = tuple(o.get("betas", (0.9, 0.999)))
        fused = {"fused": True} if self.device.type == "cuda" else {}
        return cls([g for g in groups if g["params"]], lr=lr, betas=betas, **fused)

    # --- slim checkpoints -------------------------------------------------------------------
    def frozen_trunk_keys(self) -> set[str]:
        """State-dict keys of the trunk that never change: left out of checkpoints."""
        trainable = {f"model.{n}" for n, p in self.model.named_parameters() if p.requires_grad}
        return {k for k in self.state_dict() if k.startswith("model.trunk.") and k not in trainable}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        drop = self.frozen_trunk_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k not in drop}
        checkpoint[META_KEY] = {
            "config": self.cfg,
            "fingerprint": self.fingerprint(),
            "steps_to": dict(self.steps_to),
            "history": list(self.history),
            "timing": {"train_seconds": self.train_seconds, "train_steps": self.train_steps, "epoch_seconds": list(self.epoch_seconds)},
            "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        }

    def fingerprint(self) -> list[float]:
        """trunk_fingerprint, computed once: the frozen tensors never change during a run (a pass over every weight)."""
        if getattr(self, "_fingerprint", None) is None:
            self._fingerprint = trunk_fingerprint(self)
        return self._fingerprint

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        meta = checkpoint.get(META_KEY, {})
        self.steps_to = dict(meta.get("steps_to", {}))
        self.history = [tuple(h) for h in meta.get("history", [])]
        rng = meta.get("rng")
        if rng and self.trainer is not None and self.trainer.state.fn == "fit":  # resume: continue the same random stream
            torch.set_rng_state(rng["torch"])
            if rng["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])


def trunk_fingerprint(module: FPTModule) -> list[float]:
    """Sum and sum of squares over the frozen trunk tensors: tells one trunk's weights from another's."""
    keys = module.frozen_trunk_keys()
    s = s2 = 0.0
    with torch.no_grad():
        for k, v in module.state_dict().items():
            if k in keys and v.is_floating_point():
                v = v.detach().double()
                s += float(v.sum())
                s2 += float((v * v).sum())
    return [s, s2]
