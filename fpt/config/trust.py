"""Which code a saved config may name: only what the toolkit registers (the packaged task yamls, the model kinds, the
trunk presets' packages). Checked before anything a checkpoint names is imported (fpt.checkpoint loads the file
itself without executing code).
"""

from __future__ import annotations

import importlib.util

from omegaconf import OmegaConf

from fpt.config.composition import choices, config_dir
from fpt.config.kinds import KINDS
from fpt.errors import FPTError


def canonical_impl(impl) -> str:
    """A task `impl` as this version names it. Runs saved while tasks/ installed as a top-level package name
    `tasks.X:Class`; that is the packaged `fpt.tasks.X:Class` when fpt.tasks has a module X (else left as written)."""
    module, sep, name = str(impl).partition(":")
    try:  # finding the module imports only its package, fpt.tasks (no task code runs)
        legacy = module.startswith("tasks.") and importlib.util.find_spec(f"fpt.{module}") is not None
    except ModuleNotFoundError:  # tasks.a.b where fpt.tasks has no a
        legacy = False
    return f"fpt.{module}{sep}{name}" if legacy else str(impl)


def registered_task_impl(name: str) -> str | None:
    """The `impl` the packaged task yaml `name` declares (following its defaults), or None if no such task."""
    path = config_dir() / "task" / f"{name}.yaml"
    if not name.replace("_", "").isalnum() or not path.is_file():
        return None
    y = OmegaConf.load(path)
    if "impl" in y:
        return str(y.impl)
    parents = [d for d in y.get("defaults") or [] if isinstance(d, str) and d != "_self_"]
    return registered_task_impl(parents[0]) if parents else None


def check_trusted(config: dict, path) -> None:
    """A checkpoint's config may name code only through the toolkit's registries: a registered task with its
    registered implementation, a registered model kind, a trunk package that a trunk preset names. Anything else
    is refused in one line before anything is imported (weights_only alone does not stop a config that names code)."""

    task = config.get("task") or {}
    name, impl = str(task.get("name")), task.get("impl")
    registered = registered_task_impl(name)
    if registered is None:
        raise FPTError(f"refusing checkpoint {path}: it names task {name!r}, which is not a registered task "
                       f"({', '.join(choices('task'))}); nothing was imported")
    if canonical_impl(impl) != canonical_impl(registered):
        raise FPTError(f"refusing checkpoint {path}: its task {name!r} names the code {impl!r}, not the registered "
                       f"{registered!r}; nothing was imported")
    kind = (config.get("model") or {}).get("kind")
    if kind not in KINDS:
        raise FPTError(f"refusing checkpoint {path}: unknown model.kind {kind!r} (known: {', '.join(KINDS)})")
    package = (config.get("trunk") or {}).get("package")
    known = {OmegaConf.load(p).get("package") for p in (config_dir() / "trunk").glob("*.yaml")} - {None}
    if package is not None and package not in known:
        raise FPTError(f"refusing checkpoint {path}: its trunk.package {package!r} is none that a trunk preset names "
                       f"({', '.join(sorted(known))}); nothing was imported")
