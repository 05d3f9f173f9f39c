"""Looking inside: attention maps, layer similarity and probes, weight statistics, layer ablation.

This module opens a run for those tools: its checkpoint restored with its trained tensors, a fixed
slice of its task's examples gathered, its trunk's per-layer hidden states and attention maps read
through the Hugging Face `output_*` flags. Heavy imports stay inside the functions, so that
`fpt analyze` rejects a mistyped path in milliseconds.

Axes: b examples, t tokens, h hidden size, n heads, l layers.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fpt.errors import FPTError


@dataclass
class OpenRun:
    """A restored run: its config, task (data) and FPTModel in eval mode."""

    path: Path  # the run directory (the checkpoint's grandparent)
    cfg: Any
    task: Any
    model: Any


def checkpoint_of(run: str | Path) -> Path:
    """The best checkpoint of a run directory (or the checkpoint file itself)."""
    p = Path(str(run)).expanduser()
    if p.is_file():
        return p
    if not p.is_dir():
        raise FPTError(f"no run directory at {p}; pass the hydra.run.dir of a finished `fpt train`")
    ckpt = p / "checkpoints" / "best.ckpt"
    if not ckpt.is_file():
        raise FPTError(f"{p} has no checkpoints/best.ckpt; the run ended before its first validation, or it is not a run directory")
    return ckpt


def open_run(run: str | Path, overrides: list[str] | None = None) -> OpenRun:
    """Restore a run from its best checkpoint; the model comes back in eval mode (no dropout)."""
    from fpt.checkpoint import load_checkpoint
    from fpt.run.train import restore

    ckpt = checkpoint_of(run)
    # analysis reads hidden states and attention maps in fp32, whatever precision the run trained in
    fp32 = ["trunk.dtype=fp32", "trainer.precision=32-true", "model.last_block_reads_only=false"]
    cfg, task, lit = restore(load_checkpoint(ckpt), [*fp32, *(overrides or [])], cached=False, path=ckpt)
    return OpenRun(ckpt.parent.parent, cfg, task, lit.model.eval())


def require_transformer(model, what: str) -> None:
    """`what` reads a Hugging Face trunk's blocks; the baselines (LSTM, Linformer) have none."""
    if not hasattr(model, "blocks"):
        raise FPTError(f"{what} needs a transformer trunk (model.kind=fpt); this run trained a baseline without one")


def blocks_of(model):
    """The trunk's ModuleList of transformer blocks."""
    require_transformer(model, "this analysis")
    return model.get_submodule(model.blocks)


def examples(task, split: str = "test", n: int | None = None) -> dict:
    """The first `n` examples of a split as one batch {x, mask, y}, right-padded to a common length."""
    import torch

    task.prepare_data()
    task.setup("test" if split == "test" else "validate")
    loader = task.test_dataloader() if split == "test" else task.val_dataloader()
    parts, have = [], 0
    for batch in loader:
        parts.append(batch)
        have += batch["y"].shape[0]
        if n is not None and have >= n:
            break
    if not parts:
        raise FPTError(f"the task's {split} set is empty")
    t = max(b["mask"].shape[1] for b in parts)  # variable-length tasks pad each batch to its own longest
    pad_id = task.spec.pad_id or 0
    out = {
        "x": torch.cat([_pad_tokens(b["x"], t, pad_id) for b in parts]),
        "mask": torch.cat([_pad_tokens(b["mask"], t, False) for b in parts]),
        "y": torch.cat([b["y"] for b in parts]),
    }
    return {k: v[:n] for k, v in out.items()}


def _pad_tokens(v, t: int, fill):
    """Right-pad the token axis (dim 1) of (b, t, ...) to length t."""
    import torch

    return torch.nn.functional.pad(v, (0, 0) * (v.dim() - 2) + (0, t - v.shape[1]), value=fill)


def trunk_outputs(trunk, embeds, mask, attentions: bool = False, forward: str = "embeds"):
    """A trunk's outputs with every layer's hidden state (and attention maps), aligned with the task's positions;
    `forward`: the trunk's TrunkSpec.forward (ViT drops its CLS position, Longformer its window padding)."""
    from fpt.trunks.forward import outputs

    return outputs(trunk, forward, embeds, mask, attentions=attentions)


def parse_indices(value, size: int, what: str) -> list[int]:
    """`[0,5]`, `0,5`, `3` or `all` -> indices checked against 0..size-1 (negative ones count from the end)."""
    if value is None or str(value).strip().lower() == "all":
        return list(range(size))
    items = value if isinstance(value, (list, tuple)) else str(value).strip("[] ").split(",")
    out = []
    for item in items:
        try:
            i = int(str(item).strip())
        except ValueError:
            raise FPTError(f"{what}: '{item}' is not an integer; write e.g. {what}=[0,1]") from None
        if not -size <= i < size:
            raise FPTError(f"{what}: index {i} is out of range; this trunk has {size} (0..{size - 1})")
        out.append(i % size)
    return list(dict.fromkeys(out))


def trunk_name(tcfg) -> str:
    """What a trunk config loads: the folder name of `trunk.path`, else `trunk.name`."""
    return Path(str(tcfg.path)).name if tcfg.get("path") else str(tcfg.name)


def slug(text: str) -> str:
    """`text` as a file-name fragment."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def write_csv(path: Path, rows: list[dict]) -> Path:
    """Rows of dicts as a CSV with a header from the first row's keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path
