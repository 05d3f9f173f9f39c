"""Finding, composing and checking configs, before any heavy import.

`fpt train task=cifar10 freeze=attn,ffn` must work as typed, but Hydra reads `a,b` as a sweep
and rejects it outside `--multirun`; so for the list keys below, `key=a,b` becomes `key=[a,b]`
(under --multirun it keeps Hydra's meaning: a sweep; write `'freeze=[attn,ffn],[ln]'` there).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fpt.errors import FPTError
from fpt.kinds import has_trunk

LIST_KEYS = ("freeze", "targets", "unfreeze.groups", "trunk.standardize", "trunk.keep")
GROUPS = ("task", "trunk", "model", "trainer", "logger", "variant", "experiment")
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
            return hcompose(config_name="train", overrides=overrides, return_hydra_config=with_hydra)
    except (HydraException, OmegaConfBaseException) as e:
        raise FPTError(one_line(e)) from None


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


def preflight(cfg: DictConfig) -> None:
    """Every option against its schema (fpt.sections: names, types, ranges, the task's own options) and whether the
    trunk's weights can be reached. Each failure is one line; nothing after this re-checks what it checked. The
    task's schema comes last: it lives beside the task's class, and importing that module imports Lightning."""
    from fpt.sections import check_task, validate

    validate(cfg)
    if has_trunk(cfg.model.kind):
        from fpt.trunks.source import check_source

        check_source(cfg.trunk)
    check_task(cfg.task)


def check_out_dir(value: str, key: str) -> Path:
    """A directory the command may write into: not an existing file, every path component a legal length."""
    path = Path(str(value)).expanduser()
    long = [part for part in path.parts if len(part.encode()) > 255]
    if long:
        raise FPTError(f"{key}: the path component '{long[0][:40]}...' is {len(long[0].encode())} bytes long, over the "
                       f"file system's 255; choose a shorter {key}")
    if len(str(path.resolve()).encode()) > 4000:
        raise FPTError(f"{key}: the path is over 4000 bytes long; choose a shorter {key}")
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                raise FPTError(f"{key}={value}: {p} is a file, not a directory; choose a directory for {key}")
            break
    return path


# --- one command line for every subcommand ---------------------------------------------------------------
# Every `fpt` subcommand takes `key=value` arguments parsed by Hydra's grammar (parse_overrides) and writes
# where one key says: `out=DIR`. `fpt train` reads it as hydra.run.dir (hydra.sweep.dir under --multirun),
# `fpt sweep` as hydra.sweep.dir; those Hydra keys keep working where they apply, and elsewhere hydra.run.dir
# is out='s other name. Any other `hydra.*` key that a command would not honour is a one-line error.
RUN_ONLY = ("hydra.run.",)  # ignored by Hydra under --multirun
SWEEP_ONLY = ("hydra.sweep.", "hydra.sweeper", "hydra/sweeper", "hydra.launcher", "hydra/launcher")  # ignored by one run
OUT_KEYS = {"sweep": ("out", "hydra.sweep.dir", "sweep.dir"), "dir": ("out", "hydra.run.dir"), "file": ("out",)}
CFG_PARTS = ("job", "hydra", "all")


@dataclass
class CommandLine:
    """One subcommand's arguments, parsed the one way every command parses them."""

    cmd: str
    overrides: list[str] = field(default_factory=list)  # key=value: list keys rewritten, output keys taken out
    positional: str | None = None  # fpt data TASK, fpt report DIR, fpt analyze TOOL
    out: str | None = None  # where the command writes (out=, or the Hydra key it honours)
    out_arg: str | None = None  # the same as typed, to hand on to Hydra
    multirun: bool = False
    cfg: str | None = None  # --cfg job|hydra|all: print the composed config and stop
    resolve: bool = False

    def values(self) -> dict[str, Any]:
        """The overrides' values as Hydra's grammar types them (int, float, bool, None, str, list), by key."""
        out = {}
        for o in parse_overrides(self.overrides):
            if o.is_sweep_override():
                raise FPTError(f"{o.input_line} is a sweep (fpt train --multirun and fpt sweep sweep); "
                               f"for a list write {o.key_or_group}=[...]")
            out[o.key_or_group] = o.value()
        return out

    def without(self, *keys: str) -> list[str]:
        """The overrides other than `keys` (as typed): what a command hands on."""
        return [a for a in self.overrides if a.partition("=")[0].lstrip("+~") not in keys]


def command_line(cmd: str, args: list[str], writes: str | None = None, flags: tuple[str, ...] = (),
                 positional: str | None = None, list_keys: tuple[str, ...] = LIST_KEYS, nowhere: str = "") -> CommandLine:
    """Parse `fpt CMD ARGS`. `writes`: what out= means (run: a run dir, sweep: a sweep dir, dir: an output dir,
    file: an output file; None: the command writes no chosen place, `nowhere` says what it does instead);
    `flags`: multirun and/or cfg; `positional`: the name of the one bare argument it takes."""
    c, kv = CommandLine(cmd), []
    it = iter(args)
    for a in it:
        if a in MULTIRUN_FLAGS and "multirun" in flags:
            c.multirun = True
        elif a.partition("=")[0] in ("--cfg", "-c") and "cfg" in flags:
            c.cfg = a.partition("=")[2] or next(it, "")
            if c.cfg not in CFG_PARTS:
                raise FPTError(f"--cfg takes {', '.join(CFG_PARTS)}, got '{c.cfg}'")
        elif a == "--resolve" and "cfg" in flags:
            c.resolve = True
        elif a.startswith("-"):
            known = [f for f, ok in (("--multirun", "multirun"), ("--cfg job|all", "cfg")) if ok in flags]
            raise FPTError(f"unknown flag '{a}'; fpt {cmd} takes key=value arguments{' and ' + ', '.join(known) if known else ''} "
                           f"(see fpt {cmd} --help)")
        elif "=" not in a and positional and c.positional is None:
            c.positional = os.path.expanduser(a)
        elif "=" not in a:
            raise FPTError(f"expected key=value, got '{a}' (see fpt {cmd} --help)")
        else:
            kv.append(_expand_home(a))
    kv = kv if c.multirun else rewrite(kv, list_keys)
    outs, out_keys = {}, _out_keys(writes, c.multirun)
    for a, o in zip(kv, parse_overrides(kv)):
        key = o.key_or_group
        hydra_key = key.startswith(("hydra.", "hydra/"))
        if key in out_keys:
            outs[key] = (o.value(), a.partition("=")[2])
        elif hydra_key and _honoured(key, writes, c.multirun):
            c.overrides.append(a)  # Hydra runs the job and honours it (hydra.job.*, hydra/launcher=... in a sweep)
        elif hydra_key or key == "out":
            _refuse(c, key, writes, nowhere)
        else:
            c.overrides.append(a)
    if len({str(v) for v, _ in outs.values()}) > 1:
        raise FPTError(f"{' and '.join(f'{k}={v}' for k, (v, _) in outs.items())} disagree; give one (out=DIR)")
    if outs:
        key, (value, c.out_arg) = next(iter(outs.items()))
        c.out = str(value)
        if not c.out:
            raise FPTError(f"{key}= needs a {'file' if writes == 'file' else 'directory'}")
        check_out_dir(c.out, key)
    return c


def _out_keys(writes: str | None, multirun: bool) -> tuple[str, ...]:
    if writes == "run":
        return ("out", "hydra.sweep.dir") if multirun else ("out", "hydra.run.dir")
    return OUT_KEYS.get(writes, ())


def _honoured(key: str, writes: str | None, multirun: bool) -> bool:
    """Whether Hydra honours `key` in the job `fpt CMD` runs (one run: not the sweep's keys; a sweep: not one run's)."""
    if writes == "run" and not multirun:
        return not key.startswith(SWEEP_ONLY)
    return writes in ("run", "sweep") and not key.startswith(RUN_ONLY)


def _refuse(c: CommandLine, key: str, writes: str | None, nowhere: str) -> None:
    """A key `fpt CMD` would not honour: one line saying what it does instead."""
    if key == "out" or writes is None and key == "hydra.run.dir":
        raise FPTError(f"fpt {c.cmd} {nowhere}; {key}= does not apply")
    if writes == "run" and c.multirun:
        raise FPTError(f"{key} is not used under --multirun (each run goes to hydra.sweep.dir/its overrides); "
                       f"choose the sweep's folder with out=DIR (or hydra.sweep.dir=DIR)")
    if writes == "run":
        raise FPTError(f"{key} applies to sweeps only (fpt train --multirun, fpt sweep); one run writes to out=DIR "
                       f"(or hydra.run.dir=DIR)")
    if writes == "sweep":
        raise FPTError(f"{key} is not used by a sweep (each run goes to the sweep's folder/its overrides); choose the "
                       f"sweep's folder with out=DIR (or hydra.sweep.dir=DIR)")
    where = {"dir": "its output goes to out=DIR", "file": "it writes to out=FILE"}.get(writes, f"it {nowhere}")
    raise FPTError(f"fpt {c.cmd} runs no Hydra job, so {key} has no effect; {where}")


def _expand_home(arg: str) -> str:
    """`key=~/x` as a shell would expand it (Hydra's grammar has no `~` in values)."""
    key, eq, value = arg.partition("=")
    return f"{key}={os.path.expanduser(value)}" if eq and (value == "~" or value.startswith("~/")) else arg


def resolved(cfg: DictConfig) -> dict:
    """The config as a plain resolved dict (Hydra's own node left out)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    c.pop("hydra", None)
    return c
