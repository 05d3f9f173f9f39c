"""The options of the root config (configs/train.yaml), each section a schema, and the one place they are checked:
`validate(cfg)` (root sections, the model kind's options, the trunk's) and `check_task` (the task's own schema,
next to its class). `fpt.run.preflight` calls both where a config is composed, before anything is built.

The vocabulary the schemas are written in, and how a failure becomes one line, are in fpt/config/schema.py.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable, Literal, Optional, Union

from pydantic import ConfigDict, Field, model_validator

from fpt.errors import FPTError
from fpt.config.schema import (INIT_MODES, READOUTS, Count, CountOrNull, Indices, Dropout, DropoutOrNull, Flag, Fraction, Groups, Invalid,
                        NonNegative, NonNegativeNumber, Options, Positive, Readout, Seed, Text, TextOrNull, check, choice,
                        is_run_path, or_null, path_exists, rule)


# --- the root config (configs/train.yaml) ----------------------------------------------------------------
class Optim(Options):
    lr: Positive = 1e-3
    weight_decay: NonNegativeNumber = 0.0  # > 0: AdamW, 1-D tensors never decay
    betas: Annotated[list[Annotated[float, Field(ge=0, lt=1)]], Field(min_length=2, max_length=2,
                                                                        description="two numbers in [0, 1)")] = [0.9, 0.999]


class Data(Options):
    root: Text = "~/.cache/fpt/data"
    download: Flag = False
    num_workers: NonNegative = 0
    train_size: CountOrNull = None
    max_len: CountOrNull = None
    name: TextOrNull = None  # a named data set of the task (task=uea: JapaneseVowels; task=forecast: ETTh1)
    path: TextOrNull = None  # a file or folder of your own (task=custom: .npz or a datasets save_to_disk folder)


class Features(Options):
    cache: Annotated[Union[bool, Literal["auto", "true", "false"]], Field(description="auto, true or false")] = "auto"
    dir: Text = "~/.cache/fpt/features"


class Eval(Options):
    train_acc: Flag = True
    train_examples: CountOrNull = None
    shuffle_tokens: Flag = False


class EarlyStop(Options):
    """When a fit ends before its budget (fpt/run/stopping.py); neither stop acts before trainer.min_steps."""

    hold: Count = 2  # stop_at_val_acc must hold at this many evaluations in a row
    patience: CountOrNull = None  # evaluations without an improvement of the objective's metric; null: never
    min_delta: NonNegativeNumber = 0.0  # the smallest change that counts as an improvement


class Unfreeze(Options):
    groups: Groups = []
    last: CountOrNull = None


class Peft(Options):
    """Parameter-efficient baselines on the trunk (fpt/models/adapters.py): which method, LoRA's rank, alpha and dropout."""

    method: Text = "none"  # a registered method (fpt/config/methods.py), checked by validate()
    r: Count = 8
    alpha: Positive = 16.0
    dropout: Dropout = 0.0


class Sweep(Options):
    lr_protocol: choice("all", "seed0") = "all"


PRECISIONS = ("auto", "transformer-engine", "transformer-engine-float16", "16-true", "16-mixed", "bf16-true", "bf16-mixed",
              "32-true", "64-true", "64", "32", "16", "bf16")


class Trainer(Options):
    """The keys of `trainer.*` the toolkit itself reads; every other key goes to Lightning's Trainer, which checks it."""

    model_config = ConfigDict(strict=True, extra="allow")
    max_steps: rule(Optional[int], lambda v: v is None or v == -1 or v >= 1,
                    "a positive number of steps (or -1: trainer.max_epochs decides)") = None
    max_epochs: rule(Optional[int], lambda v: v is None or v == -1 or v >= 1, "a positive integer, -1 or null") = None
    val_check_interval: rule(Optional[float], lambda v: v is None or v > 0, "a positive number of steps") = None
    log_every_n_steps: Count = 50
    enable_progress_bar: Flag = True
    precision: Annotated[Union[Literal[PRECISIONS], Literal[16, 32, 64]],
                         Field(description="auto or a Lightning precision: " + ", ".join(PRECISIONS[1:]))] = "auto"


class Logger(Options):
    kind: choice("csv", "tensorboard", "wandb") = "csv"
    project: TextOrNull = None  # wandb
    entity: TextOrNull = None
    offline: Flag = False
    tags: Annotated[list[str], Field(description="a list of strings")] = []


class Trunk(Options):
    arch: Text
    name: TextOrNull = None
    path: TextOrNull = None
    package: TextOrNull = None
    init: rule(str, lambda v: v in INIT_MODES or is_run_path(v) and path_exists(v),
               ", ".join(INIT_MODES) + " or an existing toolkit run dir / .ckpt") = "pretrained"
    init_seed: NonNegative = 0
    standardize: Annotated[list[str], Field(description="a list of freeze groups")] = ["pos"]
    keep: Groups = []  # with init=random: these groups keep their pretrained tensors (fpt/trunks/init.py keep_pretrained)
    standardize_kept: Flag = False  # with keep: rescale the kept groups named in trunk.standardize to Xavier's range

    @model_validator(mode="after")
    def _keep_needs_random(self):
        if self.keep and self.init != "random":
            raise Invalid(f"trunk.keep={self.keep} keeps pretrained groups in a fresh trunk: it needs trunk.init=random, got {self.init}")
        return self
    dropout: DropoutOrNull = None
    attn_dropout: DropoutOrNull = None
    dtype: choice("auto", "bf16", "fp32") = "auto"
    fused_gelu: Flag = True  # GPT-2's elementwise tanh-GELU as one fused kernel (fpt/trunks/fused.py); false: transformers' own
    groups: Annotated[dict[str, list[str]], Field(description="a map of group name to a list of patterns")] = {}


class ModelCommon(Options):
    """What every model kind takes: the readout and the task's input layer. Each kind's own options subclass it beside
    its builder (fpt/models/), named by its entry in fpt.config.kinds."""

    kind: Text
    readout: Annotated[Optional[Readout], Field(description=or_null(", ".join(READOUTS)))] = None
    input_gain: Positive = 1.41
    input_dropout: Dropout = 0.1
    compile: Flag = False
    # ORCA's "align then refine" (fpt/models/align.py): before training, the input layer (and the positions, where
    # they train) is trained so that the embedded task sequences are distributed like the trunk's own embedding-layer
    # outputs on reference text; head_steps: ORCA's predictor phase (input layer, positions and output layer only)
    align: choice("none", "mmd", "otdd") = "none"
    align_steps: CountOrNull = None  # null: 60 (ORCA's embedder_epochs)
    align_lr: Annotated[Optional[float], Field(gt=0, description=or_null("a positive number"))] = None  # null: ORCA's rule
    align_text: TextOrNull = None  # null: scikit-learn's dataset descriptions (fpt/models/align_text.py)
    head_steps: NonNegative = 0

    @model_validator(mode="after")
    def _align_keys_need_align(self):
        given = [k for k in ("align_steps", "align_lr", "align_text") if getattr(self, k) is not None]
        if given and self.align == "none":
            raise Invalid(f"model.{given[0]} sets the alignment stage, but model.align=none; add model.align=mmd or "
                          f"model.align=otdd, or drop model.{given[0]}")
        return self


def heads_divide_hidden(self):
    """model.heads divides model.hidden (attention splits the width into heads); a model_validator of a kind's options."""
    if self.hidden % self.heads:
        raise Invalid(f"model.heads must be a positive integer dividing model.hidden={self.hidden}, got {self.heads}")
    return self


class Root(Options):
    """configs/train.yaml; the groups task, trunk and model are checked by their own schemas."""

    seed: Seed = 0
    label: TextOrNull = None
    freeze: Optional[Groups] = None  # None: the model kind's own (fpt.config.kinds.freeze_of)
    unfreeze: Unfreeze = Unfreeze()
    peft: Peft = Peft()
    optim: Optim = Optim()
    data: Data = Data()
    features: Features = Features()
    eval: Eval = Eval()
    targets: Annotated[list[Fraction], Field(description="a list of accuracies in (0, 1]")] = [0.9, 0.99, 1.0]
    stop_at_val_acc: Annotated[Optional[float], Field(gt=0, le=1, description=or_null("in (0, 1]"))] = 1.0
    early_stop: EarlyStop = EarlyStop()
    on_nan: choice("stop", "skip") = "stop"
    sweep: Sweep = Sweep()
    resume: rule(Optional[str], path_exists, "an existing run directory or checkpoint") = None
    trainer: Trainer = Trainer()
    logger: Logger = Logger()
    task: dict
    trunk: dict
    model: dict
    bench: Optional[Bench] = None  # fpt bench's options


# --- fpt bench's options (configs/bench/default.yaml) ------------------------------------------------------
BENCH_VARIANTS = ("fpt", "full", "lstm", "lstm_plain", "bare", "fpt_gc")
BENCH_PRECISIONS = ("32-true", "bf16-mixed")


def _listed(known: tuple[str, ...]) -> Callable[[Any], bool]:
    return lambda v: v == "auto" or (isinstance(v, list) and len(v) > 0 and set(v) <= set(known))


class Bench(Options):
    """`fpt bench`'s own keys (bench.KEY=VALUE)."""

    batch: Count = 16
    seq_len: rule(Union[int, str], lambda v: v == "task" or (isinstance(v, int) and v >= 1), "a positive integer or task") = 64
    rounds: Count = 10
    warmup: NonNegative = 1
    min_run_time: NonNegativeNumber = 0.2
    variants: rule(list[str], lambda v: _listed(BENCH_VARIANTS)(v) and v != "auto",
                   f"a non-empty list of {', '.join(BENCH_VARIANTS)}") = ["fpt", "full", "lstm", "bare"]
    precisions: rule(Union[str, list[str]], _listed(BENCH_PRECISIONS), f"auto or a non-empty list of {', '.join(BENCH_PRECISIONS)}") = "auto"
    device: choice("auto", "cpu", "cuda") = "auto"
    peak_n: rule(Optional[int], lambda v: v is None or v >= 16, "null or an integer >= 16") = None
    targets: TextOrNull = None
    out: rule(str, lambda v: bool(v.strip()), "a file path") = "bench.jsonl"


# --- the commands' own options (fpt eval; fpt analyze's are in fpt/analysis/cli.py) ----------------------------


class EvalCommand(Options):
    """`fpt eval`'s own keys; any other key=value changes the checkpoint's config."""

    ckpt: TextOrNull = None
    run: TextOrNull = None
    ablate_layers: Indices = Field(None, alias="ablate.layers")


def validate(cfg) -> dict:
    """The options of a composed config (a DictConfig or plain dict) that need no import: the root sections, the model
    kind's options (its entry in fpt.config.kinds, registered by importing fpt.models) and the trunk's when the kind has
    one. Returns the config resolved (interpolations filled in, Hydra's node left out) as a plain dict: the one
    resolution a run makes. fpt.run.preflight calls its two halves, then check_task."""
    return validate_model(validate_root(cfg))


def validate_root(cfg) -> dict:
    """The root sections (train.yaml's own keys), which need no model kind registered: the config resolved as a plain
    dict, checked against Root."""
    from omegaconf import DictConfig, OmegaConf

    try:
        c = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    except Exception as e:  # noqa: BLE001 - an interpolation that does not resolve
        from fpt.config import one_line

        raise FPTError(one_line(e)) from None
    c.pop("hydra", None)
    check(Root, c)
    return c


def validate_model(c: dict) -> dict:
    """A resolved config's model kind, its options, its PEFT method and its trunk's options (the kinds are registered by
    importing fpt.models); returns `c`."""
    from fpt.config.kinds import kind
    from fpt.config.methods import peft_method

    name = str(c["model"].get("kind"))
    has_trunk = kind(name).trunk  # an unknown kind: one line naming the known ones
    check(kind(name).options, {k: v for k, v in c["model"].items() if k != "impl"}, "model")  # impl: extensions.py
    method = (c.get("peft") or {}).get("method", "none")
    peft_method(str(method))  # an unknown method: one line naming the known ones
    if method != "none" and not has_trunk:
        raise FPTError(f"peft.method={method} adapts a pretrained trunk; it does not apply to model.kind={name}")
    if has_trunk:
        check(Trunk, c["trunk"], "trunk")
    return c


def check_data_options(cls, options: dict, task: str) -> dict:
    """`fpt data TASK key=value ...` options against the task's fixture schema (`DataOptions`); returns them
    with the defaults filled in."""
    schema = getattr(cls, "DataOptions", None)
    if schema is None:
        raise FPTError(f"{cls.__name__} is generated on the fly and has no files to write")
    try:
        return check(schema, options).model_dump()
    except FPTError as e:
        raise FPTError(f"{task}: {e}") from None
