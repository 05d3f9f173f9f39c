"""Checkpoint files: written atomically, read without executing code.

A kill during saving leaves the previous checkpoint intact: the new one is written to a temporary
file in the same directory, flushed to disk, then renamed over the old one (atomic on POSIX).
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins import TorchCheckpointIO

from fpt.errors import FPTError

META_KEY = "fpt"  # what the toolkit adds to a checkpoint: config, trunk fingerprint, history, RNG


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never a part.

    A failed write (a full disk) removes its temporary file and leaves the old one whole; a full disk is
    one line saying which file and how much space it needed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            free = shutil.disk_usage(path.parent).free
            raise FPTError(f"no space left on the device to write {path} ({len(data) / 2**20:.1f} MiB needed, "
                           f"{free / 2**20:.1f} MiB free); free some space or set hydra.run.dir on another disk "
                           f"(the previous {path.name} is whole)") from None
        raise


def write_json(path: Path, obj) -> None:
    """Write JSON atomically."""
    atomic_write_bytes(Path(path), (json.dumps(obj, indent=2) + "\n").encode())


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch.save checkpoints, written with a same-directory rename."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        atomic_write_bytes(Path(path), buf.getvalue())


def load_checkpoint(path: str | Path) -> dict:
    """A toolkit checkpoint, loaded without executing code (weights_only)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FPTError(f"no checkpoint at {path}; pass ckpt=RUN_DIR/checkpoints/best.ckpt")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, corrupt, not a checkpoint, or holding code
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            why = ("it holds Python objects besides tensors and plain values, so it was not written by fpt; fpt loads "
                   "checkpoints without running any code they contain and will not open it")
        else:
            why = f"truncated or not a PyTorch checkpoint ({type(e).__name__})"
        raise FPTError(f"cannot read checkpoint {path}: {why}") from None
    if not isinstance(ckpt, dict) or META_KEY not in ckpt or "state_dict" not in ckpt:
        raise FPTError(f"{path} is not an fpt checkpoint (no '{META_KEY}' metadata)")
    return ckpt


def canonical_impl(impl) -> str:
    """A task `impl` as this version names it. Runs saved while tasks/ installed as a top-level package name
    `tasks.X:Class`; that is the packaged `fpt.tasks.X:Class` when fpt.tasks has a module X (else left as written)."""
    import importlib.util

    module, sep, name = str(impl).partition(":")
    try:  # finding the module imports only its package, fpt.tasks (no task code runs)
        legacy = module.startswith("tasks.") and importlib.util.find_spec(f"fpt.{module}") is not None
    except ModuleNotFoundError:  # tasks.a.b where fpt.tasks has no a
        legacy = False
    return f"fpt.{module}{sep}{name}" if legacy else str(impl)


def registered_task_impl(name: str) -> str | None:
    """The `impl` the packaged task yaml `name` declares (following its defaults), or None if no such task."""
    from omegaconf import OmegaConf

    from fpt.config import config_dir

    path = config_dir() / "task" / f"{name}.yaml"
    if not name.replace("_", "").isalnum() or not path.is_file():
        return None
    y = OmegaConf.load(path)
    if "impl" in y:
        return str(y.impl)
    parents = [d for d in y.get("defaults") or [] if isinstance(d, str) and d != "_self_"]
    return registered_task_impl(parents[0]) if parents else None


def check_trusted(config: dict, path) -> None:
    """A checkpoint's config may name code only through the toolkit's registries: a registered task with its
    registered implementation, a registered model kind, a trunk package that a trunk preset names. Anything else
    is refused in one line before anything is imported (weights_only alone does not stop a config that names code)."""
    from omegaconf import OmegaConf

    from fpt.config import choices, config_dir
    from fpt.kinds import KINDS

    task = config.get("task") or {}
    name, impl = str(task.get("name")), task.get("impl")
    registered = registered_task_impl(name)
    if registered is None:
        raise FPTError(f"refusing checkpoint {path}: it names task {name!r}, which is not a registered task "
                       f"({', '.join(choices('task'))}); nothing was imported")
    if canonical_impl(impl) != canonical_impl(registered):
        raise FPTError(f"refusing checkpoint {path}: its task {name!r} names the code {impl!r}, not the registered "
                       f"{registered!r}; nothing was imported")
    kind = (config.get("model") or {}).get("kind")
    if kind not in KINDS:
        raise FPTError(f"refusing checkpoint {path}: unknown model.kind {kind!r} (known: {', '.join(KINDS)})")
    package = (config.get("trunk") or {}).get("package")
    known = {OmegaConf.load(p).get("package") for p in (config_dir() / "trunk").glob("*.yaml")} - {None}
    if package is not None and package not in known:
        raise FPTError(f"refusing checkpoint {path}: its trunk.package {package!r} is none that a trunk preset names "
                       f"({', '.join(sorted(known))}); nothing was imported")
