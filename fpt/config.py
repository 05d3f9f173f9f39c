"""Finding, composing and checking configs, before any heavy import.

`fpt train task=cifar10 freeze=attn,ffn` must work as typed, but Hydra reads `a,b` as a sweep
and rejects it outside `--multirun`; so for the list keys below, `key=a,b` becomes `key=[a,b]`
(under --multirun it keeps Hydra's meaning: a sweep; write `'freeze=[attn,ffn],[ln]'` there).
"""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fpt.errors import FPTError
from fpt.freeze import parse_freeze

LIST_KEYS = ("freeze", "targets", "unfreeze.groups", "trunk.standardize")
GROUPS = ("task", "trunk", "model", "trainer", "logger", "experiment")
MULTIRUN_FLAGS = ("-m", "--multirun")


def config_dir() -> Path:
    """configs/ of a source checkout or editable install, or fpt/configs of an installed wheel."""
    here = Path(__file__).resolve().parent
    for cand in (here / "configs", here.parent / "configs"):
        if (cand / "train.yaml").is_file():
            return cand
    raise FPTError(f"no configs found beside {here}; reinstall the fpt package")


def choices(group: str) -> list[str]:
    """The options of a config group: its yaml files."""
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def is_multirun(args: list[str]) -> bool:
    return any(a in MULTIRUN_FLAGS for a in args)


def rewrite(args: list[str]) -> list[str]:
    """Rewrite `freeze=a,b` to `freeze=[a,b]` (and `freeze=none` to `freeze=[]`) outside multirun."""
    if is_multirun(args):
        return list(args)
    out = []
    for a in args:
        key, eq, value = a.partition("=")
        if eq and key.lstrip("+~") in LIST_KEYS and not value.startswith("["):
            items = [v for v in value.split(",") if v.strip()]
            if key.lstrip("+~") == "freeze" and [v.strip().lower() for v in items] in ([], ["none"]):
                items = []
            a = f"{key}=[{','.join(items)}]"
        out.append(a)
    return out


def check_groups(args: list[str]) -> None:
    """Unknown group options (`task=nope`) fail here in one line, naming the valid ones."""
    for a in args:
        key, eq, value = a.partition("=")
        key = key.lstrip("+~")
        if not eq or key not in GROUPS or key == "experiment" and value in ("null", ""):
            continue
        known = choices(key)
        for v in value.split(",") if is_multirun(args) else [value]:
            if v not in known:
                raise FPTError(f"unknown {key} '{v}'; choose one of: {', '.join(known)}")


def compose(overrides: list[str]) -> DictConfig:
    """The composed config for `overrides` (no run directory), with Hydra's errors as one line."""
    from hydra import compose as hcompose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = [a for a in overrides if a not in MULTIRUN_FLAGS]
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return hcompose(config_name="train", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise FPTError(one_line(e)) from None


def sweep_points(args: list[str]) -> list[list[str]]:
    """Every combination a --multirun command line sweeps over, parsed as Hydra parses it."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides([a for a in args if a not in MULTIRUN_FLAGS])
    except HydraException as e:
        raise FPTError(one_line(e)) from None
    return [point for batch in BasicSweeper.split_arguments(parsed, None) for point in batch]


def one_line(e: Exception) -> str:
    """Hydra and OmegaConf errors span lines; keep what says what went wrong."""
    text = str(e).strip() or str(e.__cause__ or "").strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("full_key", "object_type", "reference_type", "Set the environment"))]
    msg = "; ".join(lines) or type(e).__name__
    return re.sub(r"\s+", " ", msg)


def preflight(cfg: DictConfig) -> None:
    """Checks that need no torch: freeze names, trunk source, ranges. Each fails in one line."""
    parse_freeze(cfg.freeze)
    lr = cfg.optim.lr
    if not isinstance(lr, (int, float)) or lr <= 0:
        raise FPTError(f"optim.lr must be a positive number, got {lr!r}")
    for key in ("batch_size",):
        v = cfg.task.get(key)
        if v is not None and (not isinstance(v, int) or v < 1):
            raise FPTError(f"task.{key} must be a positive integer, got {v!r}")
    ms = cfg.trainer.get("max_steps")
    if ms is not None and (not isinstance(ms, int) or ms < -1):
        raise FPTError(f"trainer.max_steps must be an integer >= -1, got {ms!r}")
    if cfg.model.kind == "fpt":
        from fpt.trunks.source import check_source

        check_source(cfg.trunk)


def resolved(cfg: DictConfig) -> dict:
    """The config as a plain resolved dict (Hydra's own node left out)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    c.pop("hydra", None)
    return c
