"""`fpt data TASK out=DIR`: write a task's data (or a small fixture) in its real on-disk format."""

from __future__ import annotations

from pathlib import Path

from fpt.config import check_groups, command_line, find_config
from fpt.errors import FPTError


def run(args: list[str]) -> int:
    """`fpt data TASK out=DIR`."""
    c = command_line("data", args, writes="dir", positional="TASK")
    options = c.values()
    name = c.positional or options.pop("task", None)
    if not name or "task" in options:
        raise FPTError("usage: fpt data TASK out=DIR [option=value ...] (or task=TASK)")
    if not c.out:
        raise FPTError(f"missing out=DIR: the folder to write the {name} files into")
    check_groups([f"task={name}"])
    from omegaconf import OmegaConf

    from fpt.config.sections import check_data_options
    from fpt.tasks.base import task_class

    cls = task_class(OmegaConf.load(find_config("task", name)))
    written = cls.write_data(Path(c.out).expanduser(), **check_data_options(cls, options, name))
    for p in written:
        print(p)
    print(f"wrote {len(written)} file(s) for task {name} under {c.out}; train on them with: fpt train task={name} data.root={c.out}")
    return 0
