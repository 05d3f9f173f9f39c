"""Every registry entry checked the same way: each model kind has a yaml its options accept, freeze groups the
toolkit knows, its own default freeze, and builds; each trunk architecture has a preset and maps every tensor of a
tiny model to a known group; each PEFT method has a variant and adds what it says. A new kind and a new PEFT
method are each their own entry (here written in the tests) plus what a yaml would set."""

import pytest
from omegaconf import OmegaConf

from fpt.config import choices, compose, config_dir
from fpt.config.groups import GROUPS
from fpt.config.kinds import ModelKind, freeze_of
from fpt.config.methods import METHODS, PeftMethod
from fpt.config.schema import check
from fpt.config.sections import ModelCommon, validate
from fpt.models.build import build_model
from fpt.models.adapters import recorded
from fpt.models.registry import KINDS
from fpt.trunks import ARCHS
from fpt.models.wrapper import FPTModel, input_options
from fpt.tasks.spec import TaskSpec

SPEC = TaskSpec(seq_len=6, token_dim=3, num_classes=2)


def _yamls(name: str) -> list[str]:
    return [y for y in choices("model") if OmegaConf.load(config_dir() / "model" / f"{y}.yaml").get("model", {}).get(
        "kind", OmegaConf.load(config_dir() / "model" / f"{y}.yaml").get("kind")) == name]


@pytest.mark.parametrize("name", list(KINDS))
def test_model_kind_entry(name):
    e = KINDS[name]
    assert e.name == name and issubclass(e.options, ModelCommon) and callable(e.builder)
    assert set(e.groups) <= set(GROUPS), f"{name}: groups {set(e.groups) - set(GROUPS)} are no freeze group"
    assert _yamls(name), f"model.kind={name} has no yaml in configs/model/"
    for y in _yamls(name):
        cfg = compose([f"model={y}"])
        check(e.options, OmegaConf.to_container(cfg.model, resolve=True), "model")
        validate(cfg)
        assert freeze_of(cfg) == list(e.freeze)  # freeze: null -> the kind's own (FPT attn,ffn; scratch kinds none)
    if not e.trunk:  # the baselines build in a moment; the trunk kind builds on tiny trunks in test_trunks.py
        overrides = {"lstm": ["model.hidden=8", "model.layers=1"], "linformer": ["model.hidden=8", "model.heads=2"]}
        model = build_model(compose([f"model={_yamls(name)[0]}", *overrides.get(name, ["model.hidden=8", "model.heads=2"]
                                                                                  if name != "no_trunk" else [])]), SPEC)
        assert isinstance(model, FPTModel) and set(model.param_groups().values()) <= set(e.groups) | {"input", "output"}


ARCH_MODELS = {"gpt2": ("tiny", "gpt2"), "bert": ("tiny", "bert"), "t5": ("tiny", "t5"), "auto": ("zoo", "llama"),
               "vit": ("zoo", "vit"), "longformer": ("zoo", "longformer")}  # a tiny saved model each arch reads


@pytest.mark.parametrize("name", list(ARCHS))
def test_trunk_architecture_entry(name, tiny, zoo):
    """An arch: its entry names it and a known forward, a trunk preset uses it, and on a tiny model of its kind every
    tensor falls in a freeze group the toolkit knows, with the blocks it names found."""
    from fpt.trunks import build_trunk, get_arch
    from fpt.trunks.forward import FORWARDS

    arch = get_arch(name)
    assert arch.name == name and arch.forward in FORWARDS
    assert set(arch.groups or {}) <= set(GROUPS)
    presets = [y for y in choices("trunk") if OmegaConf.load(config_dir() / "trunk" / f"{y}.yaml").get("arch") == name]
    assert presets, f"trunk.arch={name} has no preset in configs/trunk/"
    for y in presets:
        validate(compose([f"trunk={y}"]))
    source, family = ARCH_MODELS[name]
    cfg = compose([f"trunk={presets[0]}", f"trunk.path={(tiny if source == 'tiny' else zoo)[family]}", "trunk.name=null"])
    built = build_trunk(cfg.trunk, cfg.model)
    names = {n for n, _ in built.model.named_parameters()}
    assert names == set(built.groups) and set(built.groups.values()) <= set(GROUPS)
    assert len(built.model.get_submodule(built.spec.blocks)) == 2


@pytest.mark.parametrize("name", list(METHODS))
def test_peft_method_entry(name, tiny):
    """A PEFT method: a variant that chooses it, and on a tiny GPT-2 the group it says it adds (LoRA, IA3, LN tuning:
    PEFT's new tensors in `adapter`; BitFit: the biases in `bias`), trainable, all else frozen as the variant says."""
    e = METHODS[name]
    assert e.name == name and callable(e.adapt)
    variants = ["fpt"] if name == "none" else [v for v in choices("variant") if compose([f"variant={v}"]).peft.method == name]
    assert variants, f"peft.method={name} has no variant in configs/variant/"
    cfg = compose([f"variant={variants[0]}", "trunk=gpt2", f"trunk.path={tiny['gpt2']}"])
    validate(cfg)
    model = build_model(cfg, SPEC)
    groups = model.param_groups()
    added = {"none": set(), "bitfit": {"bias"}}.get(name, {"adapter"})
    assert added <= set(groups.values()) and not ({"adapter", "bias"} - added) & set(groups.values())
    trained = {groups[n] for n, p in model.named_parameters() if p.requires_grad}
    assert added <= trained and trained <= {"input", "output", "ln", "pos", *added}
    assert recorded(cfg.peft)["peft_r"] == (int(cfg.peft.r) if e.uses_rank else None)


def test_a_new_peft_method_is_one_entry(monkeypatch, tiny):
    """Adding a PEFT method: its entry (how it changes the trunk's groups) and a variant yaml (here its overrides)."""
    def first_block_biases(trunk, groups, pcfg, skip=()):
        return {n: "bias" if n.startswith("h.0.") and n.endswith(".bias") else g for n, g in groups.items()}

    monkeypatch.setitem(METHODS, "bias0", PeftMethod("bias0", first_block_biases, injects=False))
    cfg = compose(["trunk=gpt2", f"trunk.path={tiny['gpt2']}", "peft.method=bias0", "freeze=[attn,ffn,ln,pos]"])
    validate(cfg)
    model = build_model(cfg, SPEC)
    trained = sorted(n for n, p in model.named_parameters() if p.requires_grad and n.startswith("trunk."))
    assert trained and all(n.startswith("trunk.h.0.") and n.endswith(".bias") for n in trained)
    assert recorded(cfg.peft) == {"peft": "bias0", "peft_r": None}
    with pytest.raises(Exception, match="unknown peft.method 'nope'; choose one of: none, lora"):
        validate(compose(["peft.method=nope"]))


class Mean(ModelCommon):
    hidden: int = 4


def build_mean(cfg, spec):
    import torch

    body = torch.nn.Linear(int(cfg.model.hidden), int(cfg.model.hidden))
    return FPTModel(spec, body, int(cfg.model.hidden), {"weight": "ffn", "bias": "ffn"},
                    lambda b, x, mask: b(x), cfg.model.get("readout"), **input_options(cfg.model))


def test_a_new_model_kind_is_one_entry(monkeypatch):
    """Adding a kind: its entry (builder, options, groups) and a model yaml (here the overrides a yaml would hold)."""
    monkeypatch.setitem(KINDS, "mean", ModelKind("mean", Mean, build_mean, trunk=False, groups=("ffn",)))
    cfg = compose(["model=no_trunk", "model.kind=mean", "model.hidden=4", "freeze=[]"])
    validate(cfg)
    model = build_model(cfg, SPEC)
    assert set(model.param_groups().values()) == {"input", "ffn", "output"}
    with pytest.raises(Exception, match="model.hidden must be"):
        validate(compose(["model=no_trunk", "model.kind=mean", "model.hidden=x"]))



# --- task yamls against their schemas ---------------------------------------------------------------------------
# A task's defaults live in its schema (`Options`, beside its class). Its yaml in configs/task/ still holds every
# key, since Hydra's struct mode takes `task.KEY=VALUE` only for a key the composed yaml has; so the yaml holds exactly
# the schema's fields, each at the schema's default, but for a preset's deliberate settings, named here with why.
# No task class repeats a default in its signature: it reads `self.options`.
import functools  # noqa: E402
import importlib  # noqa: E402
import inspect  # noqa: E402
import pkgutil  # noqa: E402

from pydantic import BaseModel  # noqa: E402

import fpt.tasks  # noqa: E402
from fpt.tasks.base import META_KEYS, Task, task_class, task_options  # noqa: E402

TASK_YAMLS = choices("task")
PRESET_SETTINGS = {  # task yaml -> {option: why the yaml sets it apart from the schema's default}
    "bit_memory_small": {"n_bits": "CPU scale: strings of 50 bits, not the paper's 1000",
                         "patch": "10 bits per token, so a string is 5 tokens (36 tokens in all)",
                         "val_size": "a validation set of 500 keeps CPU evaluation short"},
    "digits": {"patch": "16 tokens of 7x7 pixels: scikit-learn's 8x8 digits upscaled to 28x28 hold no more"},
    "listops_small": {"max_len": "the generated expressions are shorter than 60 tokens",
                      "generate": "CPU scale: 5000/500/1000 expressions of 10..60 tokens, depth <= 4, <= 5 arguments"},
}


@functools.cache
def _task_yaml(name: str) -> dict:
    """`task=NAME` as `fpt train` composes it."""
    return OmegaConf.to_container(compose([f"task={name}"]).task, resolve=True)


def _key_drift(schema: type[BaseModel], section: dict, at: str = "task") -> list[str]:
    """The keys the yaml lacks (-) or adds (+) against the schema's fields, nested sections (generate) included."""
    fields = schema.model_fields
    drift = [f"-{at}.{k}" for k in fields if k not in section] + [f"+{at}.{k}" for k in section if k not in fields]
    for k, f in fields.items():
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel) and isinstance(section.get(k), dict):
            drift += _key_drift(f.annotation, section[k], f"{at}.{k}")
    return drift


@pytest.mark.parametrize("name", TASK_YAMLS)
def test_task_yaml_holds_exactly_its_schemas_options(name):
    options = {k: v for k, v in _task_yaml(name).items() if k not in META_KEYS}
    assert _key_drift(task_class(_task_yaml(name)).Options, options) == [], f"configs/task/{name}.yaml"


@pytest.mark.parametrize("name", TASK_YAMLS)
def test_task_yaml_values_are_its_schemas_defaults_but_for_named_preset_settings(name):
    checked = task_options(_task_yaml(name))  # the one check build_task and preflight make
    defaults = type(checked)()
    differ = {k for k in type(checked).model_fields if getattr(checked, k) != getattr(defaults, k)}
    assert differ == set(PRESET_SETTINGS.get(name, {})), f"configs/task/{name}.yaml: {sorted(differ)} not the default"
    assert set(PRESET_SETTINGS) <= set(TASK_YAMLS)


def _task_classes() -> list[type[Task]]:
    """Task and every subclass of it in fpt.tasks (abstract bases included)."""
    for m in pkgutil.iter_modules(fpt.tasks.__path__):
        importlib.import_module(f"fpt.tasks.{m.name}")
    found, todo = [], [Task]
    while todo:
        found.append(todo.pop())
        todo += [c for c in found[-1].__subclasses__() if c.__module__.startswith("fpt.tasks.") and c not in found]
    return sorted(found, key=lambda c: c.__qualname__)


@pytest.mark.parametrize("cls", _task_classes(), ids=lambda c: c.__qualname__)
def test_no_task_signature_repeats_a_schema_default(cls):
    """`__init__(self, options=None, **kw)`, no option one by one: each option's default is in the schema only."""
    params = inspect.signature(cls.__init__).parameters if "__init__" in vars(cls) else {}
    assert not set(params) & set(cls.Options.model_fields), f"{cls.__name__}.__init__ takes its options one by one"
    if not inspect.isabstract(cls):
        assert cls().options == cls.Options()  # built with no options, it has the schema's defaults


def test_a_task_given_keywords_checks_them_through_its_schema():
    from fpt.errors import FPTError
    from fpt.tasks.bits import BitXor

    assert BitXor(n_bits=3).options == BitXor.Options(n_bits=3) and BitXor(BitXor.Options(n_bits=3)).spec.k == 3
    with pytest.raises(FPTError, match=r"^task.n_bits must be a positive integer, got 0$"):
        BitXor(n_bits=0)
    with pytest.raises(TypeError, match="not both"):
        BitXor(BitXor.Options(), n_bits=3)
    with pytest.raises(TypeError, match="takes BitXorOptions"):
        BitXor(Task.Options())
