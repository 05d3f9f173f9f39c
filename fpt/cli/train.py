"""`fpt train`: one configuration, or a grid with --multirun (the Hydra run itself: fpt.run.launch, shared with fpt sweep)."""

from __future__ import annotations

from fpt.run.launch import launch


def run(args: list[str]) -> int:
    """`fpt train ARGS`."""
    return launch(args)
