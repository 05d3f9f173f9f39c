"""Running ORCA's alignment stage (fpt/models/align.py) before `trainer.fit`: the checks, the task's examples, the
reference text, one line of what it did; and ORCA's predictor phase (`model.head_steps`) as a callback.

A resumed run does not align again: its input layer comes from the checkpoint, and the distances from the
`align.json` the first start wrote as soon as the stage ended (`save_record`, `saved_record`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from fpt.config.kinds import has_trunk
from fpt.errors import FPTError
from fpt.models.align import SOURCE, STAGE_GROUPS, STEPS, AlignRecord, run_stage, source_features
from fpt.models.align_text import read_text, windows

POOL = 1024  # target examples the stage draws its per-class samples from (the first of the training set)


def save_record(run_dir: Path, record: AlignRecord) -> None:
    """The stage's record, written before the fit starts (a crash or a stop after it keeps it): align.json (distances,
    steps, lr, seconds) and align.csv (each step's training value: the learning-curve plot's)."""
    (run_dir / "align.json").write_text(json.dumps({k: v for k, v in asdict(record).items() if k != "curve"}, indent=1) + "\n")
    (run_dir / "align.csv").write_text("step,distance\n" + "".join(f"{i},{v}\n" for i, v in enumerate(record.curve)))


def saved_record(run_dir: Path) -> dict | None:
    """align/before and align/after from the align.json of an earlier start of this run (a resumed run), or None."""
    try:
        saved = json.loads((run_dir / "align.json").read_text())
        return {"align/before": float(saved["before"]), "align/after": float(saved["after"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_align(cfg, model) -> None:
    """One line when model.align cannot run: no trunk, no token embedding layer or forward to match, a frozen input."""
    how, kind = str(cfg.model.get("align", "none")), str(cfg.model.kind)
    if how == "none":
        return
    if not has_trunk(kind):
        raise FPTError(f"model.align={how} matches the input layer to a pretrained trunk's embedding layer, but "
                       f"model.kind={kind} has no trunk; use model.align=none")
    ts = model.trunk_spec
    table = model.trunk.get_input_embeddings() if hasattr(model.trunk, "get_input_embeddings") else None
    if ts.forward != "embeds" or not isinstance(table, torch.nn.Embedding):
        raise FPTError(f"model.align={how} needs a trunk with a token embedding layer to match (text in, embeddings out); "
                       f"this {ts.model_class} has none; use model.align=none")
    if "input" not in model.trained_groups():
        raise FPTError(f"model.align={how} trains the input layer, but this variant freezes it (freeze={list(cfg.freeze or [])}); "
                       f"use model.align=none or a variant that trains `input`")


def align_before_fit(cfg, task, model) -> AlignRecord | None:
    """Run the stage if model.align asks for it; prints one line with the distance before and after."""
    how = str(cfg.model.get("align", "none"))
    if how == "none":
        return None
    check_align(cfg, model)
    from fpt.models.input_init import tokenizer

    text = read_text(cfg.model.get("align_text"))
    tok = tokenizer(cfg.trunk, why=f"model.align={how}")
    ids, mask = windows(tok, text, model.spec.seq_len, SOURCE)
    source = source_features(model, ids, mask)
    steps = int(cfg.model.get("align_steps") or STEPS)
    record = run_stage(model, how, source, examples(task), steps, align_lr(cfg), int(cfg.seed))
    groups = "+".join(g for g in STAGE_GROUPS if g in model.trained_groups())
    print(f"align: {how} distance {record.before:.4g} -> {record.after:.4g} in {steps} steps of {groups} "
          f"({record.source_rows} reference windows of {ids.shape[1]} tokens, {record.seconds:.1f} s)", file=sys.stderr)
    return record


def stage_lines(cfg, model) -> list[str]:
    """`fpt inspect`'s lines on the phases before the usual training: the alignment stage and ORCA's head phase."""
    out, trained = [], model.trained_groups()
    how, head = str(cfg.model.get("align", "none")), int(cfg.model.get("head_steps") or 0)
    if how != "none":
        check_align(cfg, model)
        groups = ", ".join(g for g in STAGE_GROUPS if g in trained)
        out.append(f"# phase 1, align: {how} for {int(cfg.model.get('align_steps') or STEPS)} steps at lr {align_lr(cfg):g}, "
                   f"training {groups} only (fpt/models/align.py)")
    if head:
        groups = ", ".join(g for g in HeadPhase.GROUPS if g in trained)
        out.append(f"# phase 2, head: the first {head} training steps change {groups} only")
    if out:
        out.append(f"# phase {len(out) + 1}, train: every tensor marked trainable above")
    return out


def align_lr(cfg) -> float:
    """model.align_lr, else ORCA's rule (task_configs.py get_optimizer_scheduler): the run's lr x 10 when it is <= 1e-3."""
    if cfg.model.get("align_lr") is not None:
        return float(cfg.model.align_lr)
    lr = float(cfg.optim.lr)
    return lr * 10 if lr <= 1e-3 else lr


def examples(task, n: int = POOL) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, mask, y) of the training set's first `n` examples, right-padded to one length."""
    xs, masks, ys, got = [], [], [], 0
    task.prepare_data()  # before Lightning's fit has set the task up: an image task carves its splits here
    task.setup("fit")
    for batch in task.train_dataloader():
        xs.append(batch["x"])
        masks.append(batch["mask"].bool())
        ys.append(batch["y"])
        got += batch["x"].shape[0]
        if got >= n:
            break
    if not xs:
        raise FPTError("model.align: the task's training set is empty")
    t = max(x.shape[1] for x in xs)
    pad = [(0, 0) * (x.dim() - 2) + (0, t - x.shape[1]) for x in xs]
    x = torch.cat([F.pad(x, p) for x, p in zip(xs, pad)])[:n]
    mask = torch.cat([F.pad(m, (0, t - m.shape[1])) for m in masks])[:n]
    return x, mask, torch.cat(ys)[:n]


class HeadPhase(pl.Callback):
    """ORCA's predictor phase (main.py: predictor_epochs before full training): for the first `steps` steps only the
    input layer, the positions and the output layer change; the other trainable tensors get no gradient (Adam leaves a
    tensor without one untouched), so the optimizer, checkpoints and resume stay those of the whole run."""

    GROUPS = ("input", "pos", "output")  # ORCA's embedder (projection, positions) and predictor

    def __init__(self, steps: int):
        self.steps = int(steps)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step >= self.steps:
            return
        groups = pl_module.model.param_groups()
        for name, p in pl_module.model.named_parameters():
            if groups[name] not in self.GROUPS:
                p.grad = None
