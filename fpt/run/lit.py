"""The LightningModule: the task objective's loss and metrics, optimizer over trainable tensors, slim checkpoints."""

from __future__ import annotations

from contextlib import contextmanager

import lightning.pytorch as pl
import torch
from omegaconf import OmegaConf

from fpt.checkpoint import META_KEY
from fpt.errors import FPTError
from fpt.models.build import FPTModel
from fpt.run.shuffle import SEED, shuffle_tokens
from fpt.run.objectives import objective, per_example


class FPTModule(pl.LightningModule):
    """Trains an FPTModel: the loss and metrics of the task's objective ({train,val,test}/{loss,acc|mse|...},
    fpt/run/objectives.py), the optimizer over the trainable
    tensors and slim checkpoints. What happens around the steps (stopping, timing, NaN policy, the history of
    validation accuracy) is in fpt/run/callbacks.py."""

    # Slim checkpoints leave the frozen trunk out, so resuming loads the rest non-strictly.
    strict_loading = False

    def __init__(self, model: FPTModel, cfg):
        super().__init__()
        self.model = model
        self.cfg = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else cfg
        self.objective = objective(model.spec.objective)
        # keyed SPLIT_ (a ModuleDict key may not be a Module attribute such as `train`)
        self.metrics = torch.nn.ModuleDict({f"{s}_": self._metrics() for s in ("train", "val", "test")})
        if "map" in self.metrics["train_"]:  # average precision keeps every score until reset: not on training steps
            self.metrics["train_"].pop("map")
        self.shuffle: torch.Generator | None = None  # set while testing with shuffled token order (fpt/run/shuffle.py)
        self.test_name = "test"  # the metric prefix of trainer.test: test, or another set's name (see evaluating)
        self.kept: list[torch.Tensor] | None = None  # a list while keeping: each test example's value (per_example)
        self.task_state: dict | None = None  # Task.state(): saved with every checkpoint, so a run predicts without its data

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model(x, mask)

    @property
    def monitor(self) -> str:
        """The validation metric that selects checkpoints and stops runs (val/acc, val/mse, ...)."""
        return f"val/{self.objective.metric}"

    def _metrics(self) -> torch.nn.ModuleDict:
        return torch.nn.ModuleDict(self.objective.metrics(self.model.spec))

    @contextmanager
    def shuffled(self):
        """Inputs with each example's tokens permuted (seeded: the same permutations for every model)."""
        self.shuffle = torch.Generator().manual_seed(SEED)
        try:
            yield
        finally:
            self.shuffle = None

    @contextmanager
    def evaluating(self, name: str):
        """trainer.test under another name: its metrics become NAME/acc (NAME/mse, ...) and NAME/loss (e.g. train_set)."""
        if f"{name}_" not in self.metrics:
            self.metrics[f"{name}_"] = self._metrics().to(self.device)
        self.test_name, old = name, self.test_name
        try:
            yield
        finally:
            self.test_name = old

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        if "r" in batch:  # cached output-only features (fpt/run/features.py): the trunk does not run
            if self.shuffle is not None:
                raise FPTError("eval.shuffle_tokens permutes tokens, but this run tests on cached features; set features.cache=false")
            logits = self.model.head(batch["r"])
        else:
            x = batch["x"] if self.shuffle is None else shuffle_tokens(batch["x"], batch["mask"], self.shuffle)
            logits = self.model(x, batch["mask"])  # (b, n, c)
        metrics, b = self.metrics[f"{stage}_"], batch["y"].shape[0]
        loss = self.objective.score(logits, batch, self.model.spec, metrics)
        if stage == "test" and self.kept is not None:
            values = per_example(self.objective, logits.detach(), batch, self.model.spec)
            if values is not None:
                self.kept.append(values.cpu())
        on_step = stage == "train"
        # val/test loss is averaged over every rank under DDP (one sync at the epoch's end); the metrics sync themselves
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=not on_step, prog_bar=True, batch_size=b, sync_dist=not on_step)
        for name, metric in metrics.items():
            self.log(f"{stage}/{name}", metric, on_step=on_step, on_epoch=not on_step, prog_bar=True, batch_size=b)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, self.test_name)

    def predict_step(self, batch, batch_idx):
        """The logits (b, n, c) of a batch, with what maps them back (targets, RevIN's loc and scale): fpt.run.predict."""
        logits = self.model.head(batch["r"]) if "r" in batch else self.model(batch["x"], batch["mask"])
        return {"logits": logits.float(), **{k: batch[k] for k in ("y", "loc", "scale") if k in batch}}

    def configure_optimizers(self):
        """Adam(W) over trainable tensors only; no weight decay on 1-D tensors (norms, biases)."""
        o = self.cfg["optim"]
        lr, wd = float(o["lr"]), float(o.get("weight_decay", 0.0))
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
        checkpoint[META_KEY] = {"config": self.cfg, "fingerprint": self.fingerprint(),
                                **({"task": self.task_state} if self.task_state is not None else {})}

    def fingerprint(self) -> dict:
        """trunk_fingerprint, computed once: the frozen tensors never change during a run (a pass over every weight)."""
        if getattr(self, "_fingerprint", None) is None:
            self._fingerprint = trunk_fingerprint(self)
        return self._fingerprint


def trunk_fingerprint(module: FPTModule, dtype: str | None = None) -> dict:
    """{dtype, sum, sumsq} over the frozen trunk tensors, taken in `dtype` (default: the dtype they are stored in,
    e.g. bfloat16 under trunk.dtype=bf16): tells one trunk's weights from another's."""
    keys = module.frozen_trunk_keys()
    s = s2 = 0.0
    seen = None
    with torch.no_grad():
        for k, v in module.state_dict().items():
            if k in keys and v.is_floating_point():
                v = v.detach().to(getattr(torch, dtype) if dtype else v.dtype)
                seen = seen or str(v.dtype).removeprefix("torch.")
                v = v.double()
                s += float(v.sum())
                s2 += float((v * v).sum())
    return {"dtype": dtype or seen or "float32", "sum": s, "sumsq": s2}
