"""The one validation layer: every shipped config passes its schemas, every schema matches what it checks."""

import inspect

import pytest

from fpt.config import choices, compose
from fpt.errors import FPTError
from fpt.models.registry import KINDS
from fpt.config.schema import check
from fpt.config.sections import ModelCommon, Root, validate
from fpt.run.preflight import check_task
from fpt.tasks.base import task_class, task_options

TASKS = choices("task")


def test_every_model_kind_has_a_schema():
    assert all(e.name == name and issubclass(e.options, ModelCommon) for name, e in KINDS.items())


@pytest.mark.parametrize("group", ["model", "trunk", "trainer", "logger", "variant", "experiment"])
def test_every_shipped_config_passes_the_schemas(group):
    """What works today keeps working: each yaml of each group, composed as `fpt train GROUP=NAME` composes it."""
    for name in choices(group):
        cfg = compose([f"{group}={name}"])
        validate(cfg)
        check_task(cfg.task)


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_every_task_yaml_passes_its_class_schema_whose_defaults_are_the_class_defaults(task):
    """The class holds no defaults of its own (no option in a signature: tests/test_registries.py), so what it is
    built with is what the schema checked, and built with none it has the schema's defaults."""
    cfg = compose([f"task={task}"])
    check_task(cfg.task)
    cls = task_class(cfg.task)
    params = {n for c in cls.__mro__ if "__init__" in vars(c) for n in inspect.signature(c.__init__).parameters}
    assert not params & set(cls.Options.model_fields), cls.__name__
    assert cls(task_options(cfg.task)).options == task_options(cfg.task) and cls().options == cls.Options()


@pytest.mark.parametrize("values, message", [
    ({"optim": {"lr": True}}, "optim.lr must be a positive number, got True"),  # bool is not a number
    ({"data": {"train_size": 5.0}}, "data.train_size must be a positive integer or null, got 5.0"),
    ({"eval": {"train_acc": "true"}}, "eval.train_acc must be true or false, got 'true'"),
    ({"trainer": {"max_steps": -1, "max_epochs": 3, "strategy": "ddp"}}, None),  # -1: epochs decide; Lightning's keys pass
    ({"freeze": ["none"]}, None),
    ({"unfreeze": {"groups": ["attn"], "last": 0}}, "unfreeze.last must be a positive integer or null, got 0"),
])
def test_messages_name_the_key_the_value_and_what_is_allowed(values, message):
    base = {"task": {}, "trunk": {}, "model": {}}
    if message is None:
        check(Root, {**base, **values})
        return
    with pytest.raises(FPTError) as e:
        check(Root, {**base, **values})
    assert str(e.value) == message
