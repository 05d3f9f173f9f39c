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
