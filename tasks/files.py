"""The data files a task yaml says it reads (its `files:` key), checked before torch or Lightning is imported.

A task's class checks its data in full where it is built (Task.check: formats, headers, labels); that needs its module,
which imports Lightning, seconds after the command was typed. So a task yaml may also say, as plain data, which files
it reads, and fpt.run.preflight checks that first, in a fraction of a second:

    files:
      in: ['${data.root}/cifar-10-batches-py']   # folders to look in, in order (default: the working directory)
      need: [data_batch_1, test_batch]           # files (or folders) each folder must hold; the first holding all wins
      unless: data.download                      # a config key: when it is true, nothing is checked
      get: get them with data.download=true ...  # the end of the one-line message: how to get the files

A folder written `pkg://PACKAGE/sub/dir` lies inside an installed package, found without importing it (task=uea reads
the copies aeon ships). Anything interpolated (`${data.name}`) that is null skips the check: the class's own message
then names the missing key. Nothing here runs code that a config names.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from fpt.errors import FPTError

KEY = "files"  # the task yaml key (a meta key: not an option of the task's class)


def check_files(cfg) -> None:
    """FPTError (one line: what is missing, where it looked, how to get it) if the task's declared files are absent."""
    from omegaconf import OmegaConf

    declared = OmegaConf.select(cfg, f"task.{KEY}")
    if declared is None or _skipped(cfg, declared):
        return
    files = OmegaConf.to_container(declared, resolve=True)
    need = [Path(str(f)).expanduser() for f in files.get("need") or []]
    folders = [_folder(str(d)) for d in files.get("in") or ["."]]
    if not need or any(d is not None and all((d / f).exists() for f in need) for d in folders):
        return
    first = folders[0]
    names = ", ".join(str(f) + (" (found .gz: gunzip it)" if first and (first / f"{f}.gz").exists() else "")
                      for f in need if first is None or not (first / f).exists())
    where = f" (looked in {', '.join(_shown(str(e), d) for e, d in zip(files['in'], folders))})" if files.get("in") else ""
    get = f"; {files['get']}" if files.get("get") else ""
    raise FPTError(f"{cfg.task.name} data missing: {names}{where}{get}")


def _skipped(cfg, declared) -> bool:
    """Whether the check does not apply: its `unless` key is true, or a value it interpolates is null."""
    from omegaconf import OmegaConf

    unless = declared.get("unless")
    if unless and OmegaConf.select(cfg, str(unless)):
        return True
    raw = str(OmegaConf.to_container(declared, resolve=False))
    return any(OmegaConf.select(cfg, key) is None for key in re.findall(r"\$\{([\w.]+)\}", raw))


def _folder(entry: str) -> Path | None:
    """A folder of `in`: a path (~ expanded), or pkg://PACKAGE/sub inside an installed package (None if absent)."""
    if not entry.startswith("pkg://"):
        return Path(entry).expanduser()
    package, _, sub = entry[len("pkg://"):].partition("/")
    try:
        spec = importlib.util.find_spec(package)  # the package's folder, without running its __init__
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / sub


def _shown(entry: str, folder: Path | None) -> str:
    """A folder of `in` as the message names it: its path, or the package it would be in when that is not installed."""
    if folder is not None:
        return str(folder)
    return f"{entry} ({entry[len('pkg://'):].partition('/')[0]} is not installed)"
