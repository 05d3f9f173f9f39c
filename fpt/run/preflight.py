"""Every option of a composed config checked before anything is built: the task's data files (fpt.tasks.files), the
schemas (fpt.config.sections), whether the trunk's weights can be reached (fpt.trunks), and the task's own options
against its class (fpt.tasks).

It sits above the layers it asks, and imports them as late as it can: what needs no model (the data files, the root
options) answers before torch is imported; the model kinds (fpt.models) import torch, the task's module Lightning.
"""

from __future__ import annotations

from omegaconf import DictConfig


def preflight(cfg: DictConfig, data: bool = True) -> DictConfig:
    """The task's data files, then every option against its schema (fpt.config.sections: names, types, ranges, the task's
    own options) and whether the trunk's weights can be reached. Each failure is one line; nothing after this re-checks
    what it checked. The task's schema comes last: it lives beside the task's class, and importing that module imports
    Lightning.

    Returns the checked config: resolved once (interpolations filled in, no Hydra node) and `freeze: null` replaced by
    the model kind's own groups, so what travels on, and what the run directory's config.yaml records, is what ran.
    `data=False`: the task's files are not asked for (fpt bench builds the task's shape only, from no data)."""
    from omegaconf import OmegaConf

    from fpt.config.sections import validate_model, validate_root
    from fpt.tasks.files import check_files

    if data:
        check_files(cfg)
    plain = validate_root(cfg)
    import fpt.models  # noqa: F401 - torch; registers the model kinds that validate_model checks model.* against
    from fpt.config.extensions import import_modules
    from fpt.config.kinds import freeze_of, has_trunk

    import_modules()  # and the kinds and methods of the folders this command added (--config-dir, plugins)

    validate_model(plain)
    if has_trunk(plain["model"]["kind"]):
        from fpt.trunks.source import check_source

        check_source(cfg.trunk)
    check_task(cfg.task)
    from fpt.run.crossval import check_cv

    check_cv(cfg)  # task.val=cv: the folds against the training file's classes
    plain["freeze"] = freeze_of(plain)
    out = OmegaConf.create(plain)
    OmegaConf.set_struct(out, True)
    return out


def check_task(task) -> None:
    """A task section against its class's schema (Task.Options, next to the class; importing it imports Lightning),
    through the one check build_task makes too (fpt.tasks.base.task_options)."""
    from fpt.tasks.base import task_options

    task_options(task)
