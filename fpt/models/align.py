"""ORCA's alignment stage (Shen et al., ICML 2023; sjunhongshen/ORCA src/embedder.py `get_tgt_model`): before
training, the input layer (and the positions, where the variant trains them) learns to embed the task's sequences so
that they are distributed like the trunk's own embedding-layer outputs on reference text.

What is compared, as in ORCA: per example, the embedding layer's output (for a task sequence: the input layer's
vectors through the trunk's embedding module, positions and its norm included; for text: the token ids through the
same module) mean-pooled over the sequence. Where the embedding module's output is read: the input of the trunk's
first block, caught by a pre-hook that stops the forward there, so any family that takes `inputs_embeds` works.

The loop follows get_tgt_model: each step takes up to `SAMPLES` examples of every target class (ORCA's maxsamples),
scores each class's pooled features against the whole source (fpt/models/align_loss.py), weights it by the class's
share of the examples, sums and takes one optimizer step. Target classes are the task's labels where each example
has one class, else k-means clusters of its targets (ORCA's infer_labels). Departures (README, docs/models.md):
Adam without a schedule; the source has no labels of its own (CoNLL's NER tags in ORCA), so OTDD's source classes
are k-means clusters of the source features; dropout is off during the stage (ORCA's embedder has none).

Axes: b examples, t tokens, h hidden size (the trunk's input width).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from fpt.errors import FPTError
from fpt.models.align_loss import LabelledSource, kmeans_labels, mmd, pooled

STEPS, SAMPLES, SOURCE = 60, 64, 256  # ORCA: embedder_epochs 60, maxsamples 64-128; source windows of reference text
STAGE_GROUPS = ("input", "pos")


@dataclass
class AlignRecord:
    """What the stage did: the distance on a fixed sample before and after, and each step's training value."""

    distance: str
    before: float
    after: float
    steps: int
    lr: float
    source_rows: int
    seconds: float = 0.0
    curve: list[float] = field(default_factory=list)


class _Caught(Exception):
    """Raised by the first block's pre-hook: the embedding layer's output, and no further computation."""


def embedded(model: nn.Module, tokens: torch.Tensor, mask: torch.Tensor, ids: bool = False) -> torch.Tensor:
    """(b, t, h): the trunk's embedding-layer output for task tokens (through the input layer) or for token ids."""
    block = model.get_submodule(model.blocks)[0]

    def catch(module, args, kwargs):
        raise _Caught(args[0] if args else kwargs["hidden_states"])

    handle = block.register_forward_pre_hook(catch, with_kwargs=True)
    try:
        with model.compute_context(tokens.device.type):
            if ids:
                model.trunk(input_ids=tokens, attention_mask=mask)
            else:
                model.trunk(inputs_embeds=model.input(tokens), attention_mask=mask)
    except _Caught as c:
        return c.args[0].float()
    finally:
        handle.remove()
    raise FPTError(f"the alignment stage reads the input of {model.blocks}[0], but the trunk's forward never called it")


def stage_params(model: nn.Module) -> dict[str, nn.Parameter]:
    """The tensors the stage trains: the input layer's, and the positions' where the variant trains them."""
    groups = model.param_groups()
    return {n: p for n, p in model.named_parameters() if p.requires_grad and groups[n] in STAGE_GROUPS}


@contextmanager
def only_training(model: nn.Module, names: set[str]):
    """Only `names` require gradients and everything is in eval mode (no dropout); restored after."""
    before = {n: p.requires_grad for n, p in model.named_parameters()}
    mode = model.training
    for n, p in model.named_parameters():
        p.requires_grad_(n in names)
    model.eval()
    try:
        yield
    finally:
        for n, p in model.named_parameters():
            p.requires_grad_(before[n])
            p.grad = None
        model.train(mode)


@torch.no_grad()
def source_features(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """(m, h): the pooled embedding-layer outputs of the reference windows."""
    return torch.cat([pooled(embedded(model, ids[i : i + batch], mask[i : i + batch], ids=True), mask[i : i + batch])
                      for i in range(0, ids.shape[0], batch)])


def class_rows(labels: torch.Tensor) -> list[tuple[torch.Tensor, float]]:
    """[(row indices, share of all rows)] per class with at least two rows (ORCA skips a class of one)."""
    out = []
    for c in labels.unique().tolist():
        rows = (labels == c).nonzero().flatten()
        if len(rows) > 1:
            out.append((rows, len(rows) / len(labels)))
    return out


def target_labels(y: torch.Tensor, seed: int) -> torch.Tensor:
    """(b,) classes: the label where each example has one integer target, else k-means of the targets."""
    flat = y.reshape(y.shape[0], -1)
    if flat.shape[1] == 1 and not y.is_floating_point():
        return flat[:, 0].long()
    return kmeans_labels(flat, seed=seed)


class Stage:
    """One model's alignment: the scored distance of a sample of target rows to the source."""

    def __init__(self, model: nn.Module, how: str, source: torch.Tensor, seed: int):
        self.model, self.how, self.source, self.seed = model, how, source, seed
        self.labelled = LabelledSource(source, kmeans_labels(source, seed=seed)) if how == "otdd" else None

    def distance(self, x, mask, classes, pick, gen: torch.Generator) -> torch.Tensor:
        """Sum over classes of share x distance(class's pooled features, source); `pick` chooses each class's rows."""
        total = torch.zeros(())
        for rows, share in classes:
            r = pick(rows)
            feats = pooled(embedded(self.model, x[r], mask[r]), mask[r])  # (n, h)
            d = self.labelled.otdd(feats) if self.labelled is not None else mmd(self.source, feats, gen)
            total = total + share * d
        return total

    def fixed(self, x, mask, classes) -> float:
        """The distance on a fixed sample (each class's first SAMPLES rows, the same source draws): before vs after."""
        with torch.no_grad():
            return float(self.distance(x, mask, classes, lambda r: r[:SAMPLES], torch.Generator().manual_seed(self.seed)))


def run_stage(model: nn.Module, how: str, source: torch.Tensor, data: tuple, steps: int, lr: float, seed: int) -> AlignRecord:
    """Train the stage's tensors for `steps` steps on `data` = (x, mask, y); returns the record."""
    x, mask, y = data
    names = stage_params(model)
    classes = class_rows(target_labels(y, seed))
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    with only_training(model, set(names)):
        stage = Stage(model, how, source, seed)
        record = AlignRecord(how, stage.fixed(x, mask, classes), float("nan"), steps, lr, source.shape[0])
        opt = torch.optim.Adam(list(names.values()), lr=lr)
        pick = lambda r: r[torch.randperm(len(r), generator=gen)[:SAMPLES]]  # noqa: E731
        for _ in range(steps):
            loss = stage.distance(x, mask, classes, pick, gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            record.curve.append(round(float(loss.detach()), 6))
        record.after = stage.fixed(x, mask, classes)
    record.seconds = round(time.perf_counter() - t0, 2)
    return record
