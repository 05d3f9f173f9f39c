"""One writer per run directory: an OS file lock, released by the kernel when its process dies.

A second `fpt train` on a live run directory fails in one line naming the holder's pid and host; a lock
left by a dead process never blocks (the kernel dropped it with the process). Other DDP ranks of the
same run (LOCAL_RANK or NODE_RANK set and not 0) write nothing and take no lock.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from fpt.errors import FPTError

LOCK_NAME = ".fpt.lock"


def is_secondary_rank() -> bool:
    """True in a DDP process that Lightning started for another rank (it re-runs the command)."""
    return any(os.environ.get(k, "0") not in ("", "0") for k in ("LOCAL_RANK", "NODE_RANK"))


class RunLock:
    """`with RunLock(run_dir):` holds the directory's lock for the block (or until the process dies)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        if is_secondary_rank():
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise FPTError(f"run directory {self.path.parent} is in use by {holder}; wait for that run to end, "
                           f"or give this one another hydra.run.dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
