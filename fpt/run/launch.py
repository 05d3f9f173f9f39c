"""Running `fpt train`'s command line through Hydra: check every point first, then hand each run to fpt.run.job.

`fpt sweep` runs its grids through the same function. The subcommand is taken off the argument list before Hydra
parses it, and `sys.argv` is put back before training, because Lightning's ddp strategy re-runs it for other ranks.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from omegaconf import DictConfig

from fpt.config import add_config_dir, check_groups, command_line, compose, config_dir, search_path, show_config, sweep_points
from fpt.config.extensions import ADDED
from fpt.run.preflight import preflight


def checked(overrides: list[str], multirun: bool):
    """Check the overrides before any heavy import; under --multirun, every point."""
    check_groups(["--multirun"] * multirun + overrides)
    if multirun:
        for point in sweep_points(overrides):
            preflight(compose(point))
        return None
    return preflight(compose(overrides))


def launch(args: list[str], job: Callable[[DictConfig], Any] | None = None) -> int:
    """`fpt train ARGS` (and each grid of `fpt sweep`): check, then run through Hydra (--multirun: its grid).
    `job`: what runs inside each Hydra job (default fpt.run.job.run_job; fpt.train wraps it to keep its outcome)."""
    c = command_line("train", args, writes="run", flags=("multirun", "cfg"))
    overrides = c.overrides + ([f"hydra.{'sweep' if c.multirun else 'run'}.dir={c.out_arg}"] if c.out else [])
    if c.cfg:
        check_groups(["--multirun"] * c.multirun + overrides)
        return show_config(c, overrides)
    checked(overrides, c.multirun)
    import hydra

    original, own = list(sys.argv), [d for d, by in ADDED.dirs.items() if by == "--config-dir"]

    @hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
    def run(cfg):
        from fpt.run.job import run_job

        sys.argv = original  # ddp re-runs sys.argv for the other ranks
        for d in own:  # a launcher's worker process (joblib, submitit) runs for this command too
            add_config_dir(d)
        return (job or run_job)(cfg)

    sys.argv = [original[0], *(["--multirun"] * c.multirun), *overrides, *search_path()]  # + the added folders
    try:
        run()
    finally:
        sys.argv = original
    return 0
