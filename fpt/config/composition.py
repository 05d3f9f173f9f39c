"""Finding, composing and checking configs, before any heavy import.

`fpt train task=cifar10 freeze=attn,ffn` must work as typed, but Hydra reads `a,b` as a sweep
and rejects it outside `--multirun`; so for the list keys below, `key=a,b` becomes `key=[a,b]`
(under --multirun it keeps Hydra's meaning: a sweep; write `'freeze=[attn,ffn],[ln]'` there).
"""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fpt.config.extensions import GROUPS, config_dir, config_dirs  # noqa: F401 - config_dir: the packaged configs
from fpt.errors import FPTError

LIST_KEYS = ("freeze", "targets", "unfreeze.groups", "trunk.standardize", "trunk.keep")
MULTIRUN_FLAGS = ("-m", "--multirun")


def choices(group: str) -> list[str]:
    """The options of a config group: its yaml files in the packaged configs and in every folder this command added
    (fpt.config.extensions); a name starting with `_` is a shared base, e.g. trunk/_common."""
    return sorted({p.stem for d in config_dirs() for p in (d / group).glob("*.yaml") if not p.stem.startswith("_")})


def find_config(group: str, name: str) -> Path | None:
    """The yaml `group/name.yaml` as composing finds it (the packaged configs first, then the added folders), or None."""
    if not name.replace("_", "").replace("-", "").isalnum():
        return None
    return next((d / group / f"{name}.yaml" for d in config_dirs() if (d / group / f"{name}.yaml").is_file()), None)


def search_path() -> list[str]:
    """The override that puts the added folders on Hydra's search path, after the packaged configs ([] if none)."""
    extra = config_dirs()[1:]
    if not extra:
        return []
    quoted = ",".join("'" + f"file://{d}".replace("\\", "\\\\").replace("'", "\\'") + "'" for d in extra)
    return [f"hydra.searchpath=[{quoted}]"]


def pop_arg(args: list[str], key: str) -> tuple[str | None, list[str]]:
    """The value of the last `key=value` in `args` (None if absent) and the other arguments."""
    vals = [a.split("=", 1)[1] for a in args if a.startswith(f"{key}=")]
    return (vals[-1] if vals else None), [a for a in args if not a.startswith(f"{key}=")]


def is_multirun(args: list[str]) -> bool:
    return any(a in MULTIRUN_FLAGS for a in args)


def rewrite(args: list[str], keys: tuple[str, ...] = LIST_KEYS) -> list[str]:
    """Rewrite `freeze=a,b` to `freeze=[a,b]` (and `freeze=none` to `freeze=[]`) outside multirun, for the list `keys`."""
    if is_multirun(args):
        return list(args)
    out = []
    for a in args:
        key, eq, value = a.partition("=")
        if eq and key.lstrip("+~") in keys and not value.startswith("["):
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
        if not eq or key not in GROUPS or key in ("experiment", "variant") and value in ("null", ""):
            continue
        known = choices(key)
        for v in value.split(",") if is_multirun(args) else [value]:
            if v not in known:
                raise FPTError(f"unknown {key} '{v}'; choose one of: {', '.join(known)}")


def compose(overrides: list[str], with_hydra: bool = False) -> DictConfig:
    """The composed config for `overrides` (no run directory; `with_hydra`: with Hydra's own node, e.g. the
    sweeper's grid), with Hydra's errors as one line."""
    from hydra import compose as hcompose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = [a for a in overrides if a not in MULTIRUN_FLAGS]
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return hcompose(config_name="train", overrides=[*overrides, *search_path()], return_hydra_config=with_hydra)
    except (HydraException, OmegaConfBaseException) as e:
        raise FPTError(_no_cv(one_line(e)) or one_line(e)) from None


def _no_cv(message: str) -> str | None:
    """A task yaml without task.val: cross-validation asked of a task that has no training-file carve."""
    if re.search(r"Could not override 'task\.(val|folds)'", message):
        return ("task.val=cv / task.folds: this task does not carve its validation from a training file, so it has no "
                "folds to cross-validate; cross-validation is offered by task=uea")
    return None


def sweep_points(args: list[str]) -> list[list[str]]:
    """Every combination a --multirun command line sweeps over, parsed as Hydra parses it."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    parsed = parse_overrides([a for a in args if a not in MULTIRUN_FLAGS])
    return [point for batch in BasicSweeper.split_arguments(parsed, None) for point in batch]


def parse_overrides(args: list[str]) -> list:
    """`key=value` arguments parsed by Hydra's own grammar (quoting, lists, sweeps); a syntax error is one line."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    try:
        return parser.parse_overrides(list(args))
    except HydraException as e:
        for a in args:  # name the argument that does not parse
            try:
                parser.parse_overrides([a])
            except HydraException:
                raise FPTError(f"cannot parse '{a}': {one_line(e)}") from None
        raise FPTError(one_line(e)) from None


def one_line(e: Exception) -> str:
    """Hydra and OmegaConf errors span lines; keep what says what went wrong."""
    text = str(e).strip() or str(e.__cause__ or "").strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("full_key", "object_type", "reference_type", "Set the environment"))]
    msg = "; ".join(lines) or type(e).__name__
    return re.sub(r"\s+", " ", msg)


def resolved(cfg: DictConfig) -> dict:
    """The config as a plain resolved dict (Hydra's own node left out)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    c.pop("hydra", None)
    return c
