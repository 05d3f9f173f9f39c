"""What this command adds to the packaged configs and registries: folders of one's own (`--config-dir DIR`, any
command) and installed plugins (entry-point group `fpt.plugins`), searched after the packaged configs/.

A folder's task/, trunk/, model/, variant/, experiment/ (and trainer/, logger/) yamls join the packaged ones through Hydra's search path:
the packaged train.yaml stays the primary config and the folders follow it (`hydra.searchpath`). A yaml whose name the
packaged configs or an earlier folder already use is refused, so `task=bit_xor` always means the packaged task.
The yamls name the code:
- a task yaml's `impl: module:Class`, imported where the task is built (as the packaged tasks' are);
- a model yaml's `model.impl: module`, imported before a config (or a checkpoint's) is checked, whichever model is
  chosen: what it registers on import, model kinds (fpt.config.kinds.register) and PEFT methods
  (fpt.config.methods.register_methods), is known to the command.
`--config-dir DIR` appends DIR and the working directory to sys.path (after the installed packages: a file there never
shadows one), so `impl: mymodule:MyTask` finds DIR/mymodule.py or ./mymodule.py, with `fpt` as with `python -m fpt.cli`.

An installed package registers itself the way pytest plugins do, with an entry point in its pyproject.toml:

    [project.entry-points."fpt.plugins"]
    mypkg = "mypkg.fpt_plugin"

Every fpt command imports that module (keep it light: heavy imports inside the builders). On import it may register
model kinds and PEFT methods; its `config_dir` (a path), if it has one, joins the search path as a --config-dir does.

What a checkpoint may name is what this command registered (fpt.config.trust), never what a config asks for.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from fpt.errors import FPTError

PLUGIN_GROUP = "fpt.plugins"
GROUPS = ("task", "trunk", "model", "trainer", "logger", "variant", "experiment")  # the groups a command line chooses in


@dataclass
class Added:
    """What this command added: folders (-> who added them), the modules their model yamls name, what imports registered."""

    dirs: dict[Path, str] = field(default_factory=dict)  # in search order: plugins' first, then each --config-dir
    modules: dict[str, str] = field(default_factory=dict)  # module -> the yaml that names it
    imported: list[str] = field(default_factory=list)  # modules imported for their registrations (plugins' too)
    registered: set[tuple[str, str]] = field(default_factory=set)  # ("kind" | "method", name) that those added
    plugins_loaded: bool = False


ADDED = Added()


def config_dir() -> Path:
    """configs/ of a source checkout or editable install, or fpt/configs of an installed wheel."""
    here = Path(__file__).resolve().parent.parent  # fpt/
    for cand in (here / "configs", here.parent / "configs"):
        if (cand / "train.yaml").is_file():
            return cand
    raise FPTError(f"no configs found beside {here}; reinstall the fpt package")


def config_dirs() -> list[Path]:
    """Where configs are looked for, in order: the packaged ones, then every folder this command added."""
    load_plugins()
    return [config_dir(), *ADDED.dirs]


def add_config_dir(path, by: str = "--config-dir") -> Path:
    """Add a folder of task/, trunk/, model/, variant/, experiment/ yamls to this command's search path (see above)."""
    folder = Path(str(path)).expanduser().resolve()
    if not folder.is_dir():
        raise FPTError(f"{by} {path}: no such directory")
    load_plugins()
    if folder in ADDED.dirs or folder == config_dir():
        return folder
    if not any((folder / g).is_dir() for g in GROUPS):
        raise FPTError(f"{by} {path} holds none of {', '.join(g + '/' for g in GROUPS)}: nothing to add")
    _check_names(folder, by)
    ADDED.dirs[folder] = by
    from omegaconf import OmegaConf

    for yaml in sorted((folder / "model").glob("*.yaml")):
        y = OmegaConf.load(yaml)
        impl = OmegaConf.select(y, "model.impl") or y.get("impl")  # model yamls are `# @package _global_`
        if impl:
            ADDED.modules.setdefault(str(impl), f"{by} {folder}: model/{yaml.name}")
    if by == "--config-dir":
        for p in (str(folder), os.getcwd()):
            if p not in sys.path:
                sys.path.append(p)
    return folder


def _check_names(folder: Path, by: str) -> None:
    """A yaml named as one already on the search path would be shadowed by it: refused, naming both."""
    for group in GROUPS:
        for y in sorted((folder / group).glob("*.yaml")):
            for other in (config_dir(), *ADDED.dirs):
                if (other / group / y.name).is_file():
                    owner = "the packaged configs" if other == config_dir() else f"{ADDED.dirs[other]} {other}"
                    raise FPTError(f"{by} {folder}: {group}/{y.name} has the name of a {group} in {owner}; "
                                   f"give yours another name")


def load_plugins() -> None:
    """Import every installed `fpt.plugins` entry point, once per command: its registrations and its config_dir."""
    if ADDED.plugins_loaded:
        return
    ADDED.plugins_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=PLUGIN_GROUP):
        plugin = _registering(ep.load, f"plugin {ep.name} ({ep.value}, entry point group {PLUGIN_GROUP})")
        ADDED.imported.append(ep.module)
        if getattr(plugin, "config_dir", None) is not None:
            add_config_dir(plugin.config_dir, by=f"plugin {ep.name}")


def import_modules() -> None:
    """Import the modules the added folders' model yamls name (`model.impl: module`), once: what they register is known."""
    load_plugins()
    for name, where in list(ADDED.modules.items()):
        if name not in ADDED.imported:
            ADDED.imported.append(name)
            _registering(lambda: importlib.import_module(name), f"{where}: model.impl: {name}")


def _registering(load, what: str):
    """Run `load` (an import), recording the model kinds and PEFT methods it registers; a failure is one line."""
    before = _entries()
    try:
        out = load()
    except FPTError:
        raise
    except Exception as e:  # noqa: BLE001 - the user's code: any failure to import it is theirs to see, in one line
        raise FPTError(f"{what} cannot be imported: {type(e).__name__}: {e}") from None
    ADDED.registered |= _entries() - before
    return out


def _entries() -> set[tuple[str, str]]:
    from fpt.config.kinds import KINDS
    from fpt.config.methods import METHODS

    return {("kind", k) for k in KINDS} | {("method", m) for m in METHODS}


def reset() -> None:
    """Forget what this command added (fpt.cli.main calls it first: commands run in one process do not share it): the
    folders, and the kinds and methods its imports registered (their modules are imported afresh next time)."""
    from fpt.config.kinds import KINDS
    from fpt.config.methods import METHODS

    for table, name in ADDED.registered:
        (KINDS if table == "kind" else METHODS).pop(name, None)
    for name in ADDED.imported:
        sys.modules.pop(name, None)
    vars(ADDED).update(vars(Added()))
