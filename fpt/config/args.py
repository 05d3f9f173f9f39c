"""One command line for every `fpt` subcommand: `key=value` arguments in Hydra's grammar, `out=DIR` for where it
writes, `--cfg` to print the composed config, `--config-dir DIR` to add a folder of one's own yamls (any command).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fpt.config.extensions import add_config_dir
from fpt.config.composition import LIST_KEYS, MULTIRUN_FLAGS, compose, one_line, parse_overrides, rewrite, sweep_points
from fpt.errors import FPTError


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
CONFIG_DIR_FLAGS = ("--config-dir", "-cd")  # Hydra's own names: a folder of one's own yamls (fpt.config.extensions)


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
    c = CommandLine(cmd)
    kv = _flags(c, args, flags, positional)
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
    _out(c, outs, writes)
    return c


def _flags(c: CommandLine, args: list[str], flags: tuple[str, ...], positional: str | None) -> list[str]:
    """Take the flags and the positional argument into `c`; returns the key=value arguments (~ expanded)."""
    kv, cmd = [], c.cmd
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
        elif a.partition("=")[0] in CONFIG_DIR_FLAGS:
            add_config_dir(_flag_value(a, it), by=a.partition("=")[0])
        elif a.startswith("-"):
            known = [f for f, ok in (("--multirun", "multirun"), ("--cfg job|all", "cfg")) if ok in flags] + ["--config-dir DIR"]
            raise FPTError(f"unknown flag '{a}'; fpt {cmd} takes key=value arguments and {', '.join(known)} "
                           f"(see fpt {cmd} --help)")
        elif "=" not in a and positional and c.positional is None:
            c.positional = os.path.expanduser(a)
        elif "=" not in a:
            raise FPTError(f"expected key=value, got '{a}' (see fpt {cmd} --help)")
        else:
            kv.append(_expand_home(a))
    return kv


def _flag_value(a: str, it) -> str:
    """The value of `--flag=VALUE` or `--flag VALUE`."""
    flag, eq, value = a.partition("=")
    value = value if eq else next(it, "")
    if not value or value.startswith("-") or "=" in value and not eq:
        raise FPTError(f"{flag} needs a folder: {flag} DIR")
    return os.path.expanduser(value)


def add_config_dirs(args: list[str]) -> None:
    """The `--config-dir DIR` flags of an argument list, added before anything else reads it (fpt CMD --help)."""
    it = iter(args)
    for a in it:
        if a.partition("=")[0] in CONFIG_DIR_FLAGS:
            add_config_dir(_flag_value(a, it), by=a.partition("=")[0])


def _out(c: CommandLine, outs: dict, writes: str | None) -> None:
    """The one output place the command line names (out=, hydra.run.dir=, ...: they must agree), checked, into `c`."""
    if len({str(v) for v, _ in outs.values()}) > 1:
        raise FPTError(f"{' and '.join(f'{k}={v}' for k, (v, _) in outs.items())} disagree; give one (out=DIR)")
    if outs:
        key, (value, c.out_arg) = next(iter(outs.items()))
        c.out = str(value)
        if not c.out:
            raise FPTError(f"{key}= needs a {'file' if writes == 'file' else 'directory'}")
        check_out_dir(c.out, key)


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



def show_config(c: CommandLine, overrides: list[str]) -> int:
    """`--cfg job|hydra|all`: print the composed config (the first run's under --multirun) and stop."""
    from omegaconf import OmegaConf

    point = sweep_points(overrides)[0] if c.multirun else overrides
    cfg = compose(point, with_hydra=c.cfg != "job")
    part = cfg.hydra if c.cfg == "hydra" else cfg
    if c.cfg == "job":
        part = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    try:
        print(OmegaConf.to_yaml(part, resolve=c.resolve), end="")
    except Exception as e:  # noqa: BLE001 - an interpolation that resolves only inside a Hydra run
        raise FPTError(f"--resolve: {one_line(e)}") from None
    return 0
