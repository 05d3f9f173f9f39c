"""Checkpoint files: written atomically, read without executing code.

A kill during saving leaves the previous checkpoint intact: the new one is written to a temporary
file in the same directory, flushed to disk, then renamed over the old one (atomic on POSIX).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins import TorchCheckpointIO

from fpt.errors import FPTError

META_KEY = "fpt"  # what the toolkit adds to a checkpoint: config, trunk fingerprint, history, RNG


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
    except Exception as e:  # truncated, corrupt, or not a checkpoint at all
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise FPTError(f"cannot read checkpoint {path} (truncated or not a checkpoint?): {first}") from None
    if not isinstance(ckpt, dict) or META_KEY not in ckpt or "state_dict" not in ckpt:
        raise FPTError(f"{path} is not an fpt checkpoint (no '{META_KEY}' metadata)")
    return ckpt
