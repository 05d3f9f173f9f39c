"""Which code a saved config may name: only what this command registered (the task yamls, model kinds and trunk presets'
packages of the toolkit, of the folders given with --config-dir and of installed plugins: fpt.config.extensions).
Checked before anything a checkpoint names is imported (fpt.checkpoint loads the file itself without executing code);
a checkpoint never adds to what is registered.
"""

from __future__ import annotations

import importlib.util

from omegaconf import OmegaConf

from fpt.config.composition import choices, config_dirs, find_config
from fpt.config.extensions import import_modules
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
    """The `impl` the registered task yaml `name` declares (following its defaults), or None if no such task."""
    path = find_config("task", name)
    if path is None:
        return None
    y = OmegaConf.load(path)
    if "impl" in y:
        return str(y.impl)
    parents = [d for d in y.get("defaults") or [] if isinstance(d, str) and d != "_self_"]
    return registered_task_impl(parents[0]) if parents else None


OWN = "; a task or model kind of your own is registered by giving its folder again (--config-dir DIR) or by its plugin"


def check_trusted(config: dict, path) -> None:
    """A checkpoint's config may name code only through this command's registries: a registered task with its
    registered implementation, a registered model kind, a trunk package that a trunk preset names. Anything else
    is refused in one line before anything is imported (weights_only alone does not stop a config that names code)."""

    task = config.get("task") or {}
    name, impl = str(task.get("name")), task.get("impl")
    registered = registered_task_impl(name)
    if registered is None:
        raise FPTError(f"refusing checkpoint {path}: it names task {name!r}, which is not a registered task "
                       f"({', '.join(choices('task'))}); nothing was imported{OWN}")
    if canonical_impl(impl) != canonical_impl(registered):
        raise FPTError(f"refusing checkpoint {path}: its task {name!r} names the code {impl!r}, not the registered "
                       f"{registered!r}; nothing was imported")
    import_modules()  # this command's own registrations (its folders' model yamls name them), never the checkpoint's
    kind = (config.get("model") or {}).get("kind")
    if kind not in KINDS:
        raise FPTError(f"refusing checkpoint {path}: unknown model.kind {kind!r} (known: {', '.join(KINDS)}){OWN}")
    package = (config.get("trunk") or {}).get("package")
    known = {OmegaConf.load(p).get("package") for d in config_dirs() for p in (d / "trunk").glob("*.yaml")} - {None}
    if package is not None and package not in known:
        raise FPTError(f"refusing checkpoint {path}: its trunk.package {package!r} is none that a trunk preset names "
                       f"({', '.join(sorted(known))}); nothing was imported")
