"""`fpt inspect`: one line per parameter tensor (group, trainable or frozen) and the counts."""

from __future__ import annotations

from fpt.config import check_groups, command_line, show_config
from fpt.run.launch import checked


def run(args: list[str]) -> int:
    """`fpt inspect`."""
    c = command_line("inspect", args, flags=("cfg",), nowhere="prints its table and writes no file (redirect it to keep it)")
    if c.cfg:
        check_groups(c.overrides)
        return show_config(c, c.overrides)
    cfg = checked(c.overrides, multirun=False)
    from fpt.models.freeze import inspect_table
    from fpt.run.train import build

    _, lit = build(cfg, cached=False)
    print(inspect_table(lit.model, lit.model.param_groups()))
    from fpt.run.align import stage_lines

    for line in stage_lines(cfg, lit.model):
        print(line)
    return 0
