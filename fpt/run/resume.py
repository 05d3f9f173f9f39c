"""Resuming a run: which checkpoint, and whether this command may continue it.

A resume never lies. Keys that only say how long to train or how to watch it (`HONOURED`) may change: the
change is recorded with the step it took effect at. Every other key of the resolved config must be what the
checkpoint was trained with, or the resume is refused in one line naming the key, before any file of the
run directory is touched.
"""

from __future__ import annotations

from pathlib import Path

from fpt.config.trust import canonical_impl
from fpt.errors import FPTError

# Keys a resumed run may change: the training length and what is logged, watched or stored where.
HONOURED = (
    "trainer.max_steps", "trainer.max_epochs", "trainer.val_check_interval", "trainer.check_val_every_n_epoch",
    "trainer.log_every_n_steps", "trainer.enable_progress_bar", "trainer.enable_model_summary",
    "stop_at_val_acc", "early_stop", "targets", "on_nan", "eval", "logger", "data.root", "data.num_workers", "data.download",
    "features.dir", "features.cache", "resume", "label", "sweep", "hydra", "bench",
    "task.files",  # where a task looks for its files (it follows data.root), not what it reads
)
# Named first when several keys differ: what the run is, before how it was trained.
FIRST = ("task.name", "model.kind", "trunk.arch", "trunk.name", "trunk.path", "trunk.init", "freeze", "seed")
RECORDED = ("trainer.max_steps", "trainer.max_epochs", "trainer.val_check_interval", "stop_at_val_acc")


def flatten(c: dict, prefix: str = "") -> dict:
    """{dotted.key: leaf value} of a nested dict (lists are leaves)."""
    out = {}
    for k, v in c.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _honoured(key: str) -> bool:
    return any(key == h or key.startswith(h + ".") for h in HONOURED)


def check_resume(saved: dict, current: dict, path) -> dict:
    """Refuse (FPTError) if `current` changes anything but HONOURED keys; return the recorded changes {key: [old, new]}."""
    a, b = flatten(saved), flatten(current)
    for c in (a, b):  # a run saved as `tasks.X:Class` names the class this version calls fpt.tasks.X:Class
        if "task.impl" in c:
            c["task.impl"] = canonical_impl(c["task.impl"])
    for key in sorted(set(a) | set(b), key=lambda k: (FIRST.index(k) if k in FIRST else len(FIRST), k)):
        if _honoured(key) or a.get(key) == b.get(key):
            continue
        raise FPTError(f"cannot resume {path}: it was trained with {key}={a.get(key)!r}, this command has "
                       f"{key}={b.get(key)!r}; rerun with the original value, or start another hydra.run.dir")
    return {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b))
            if any(k == r or k.startswith(r + ".") for r in RECORDED) and a.get(k) != b.get(k)}


def resume_path(cfg, ckpt_dir: Path) -> str | None:
    """`resume=DIR|FILE`, or the run dir's own last.ckpt when the same run is started again."""
    if cfg.get("resume"):
        p = Path(str(cfg.resume)).expanduser()
        p = p / "checkpoints" / "last.ckpt" if p.is_dir() else p
        if not p.is_file():
            raise FPTError(f"resume={cfg.resume}: no checkpoint at {p}")
        return str(p)
    last = ckpt_dir / "last.ckpt"
    return str(last) if last.is_file() else None
