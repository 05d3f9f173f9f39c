"""The public Python API (docs/api.md): `build` a model, `inspect` what trains, `train` a run as `fpt train` does.

Each function goes through the command line's own steps: a config composed from configs/ (fpt.config.compose), checked
by the option schemas (fpt.config.sections.validate), built by the model kind's builder (fpt.models.build.build_model),
run through Hydra (fpt.run.launch). Bad input is one line, the command line's, raised as InputError (a ValueError and
an FPTError). `fpt/__init__.py` re-exports these names lazily, so `import fpt` imports no torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from fpt.errors import FPTError, InputError, Preempted
from fpt.run.results import Results

if TYPE_CHECKING:
    from torch import nn

    from fpt.models.freeze import ParamRow
    from fpt.models.wrapper import FPTModel
    from fpt.tasks.spec import TaskSpec

NOT_OPTIONS = ("kind", "readout", "arch", "dtype")  # build's own arguments, or what a built model does not use
FREEZE_DEFAULT = ("attn", "ffn")


class TrainResult(NamedTuple):
    """What `fpt.train` returns: the run's results.json as read back, and its run directory."""

    results: Results
    run_dir: Path


@contextmanager
def _one_line() -> Iterator[None]:
    """An FPTError (a preemption aside) leaves as InputError: the same one line, no chain through Hydra or pydantic."""
    try:
        yield
    except (InputError, Preempted):
        raise
    except FPTError as e:
        raise InputError(str(e)) from None


def build(trunk: str | os.PathLike | nn.Module, *, token_dim: int | None = None, vocab_size: int | None = None,
          num_outputs: int, seq_len: int, freeze: Sequence[str] | str | None = FREEZE_DEFAULT, readout: str = "last",
          k: int | None = None, **options: Any) -> FPTModel:
    """An FPT model (a torch.nn.Module) for tokens of `token_dim` features (or ids below `vocab_size`), `seq_len` long.

    `trunk`: a preset (configs/trunk: "minilm", "gpt2", ...), a Hugging Face folder or hub id ("org/name"), or a loaded
    transformers model (used in place). `freeze`: the groups kept frozen, as `freeze=` on the command line (None: the
    model kind's own, attn,ffn; () trains everything). `readout`: last, mean, flatten, or last_k (the last `k`
    positions). `options`: model.* and trunk.* options by their name (depth=3, input_dropout=0.0, init="random", ...).
    forward(x, mask=None) gives logits (batch, num_outputs); with last_k (batch, k, num_outputs)."""
    with _one_line():
        spec = task_spec(token_dim, vocab_size, num_outputs, seq_len, readout, k)
        cfg, given = model_config(trunk, freeze, options)
        from fpt.models.build import build_model
        from fpt.trunks.given import given_trunk

        with given_trunk(given) if given is not None else nullcontext():
            model = build_model(cfg, spec)
    model.per_example = True
    return model


def task_spec(token_dim: int | None, vocab_size: int | None, num_outputs: int, seq_len: int, readout: str,
              k: int | None) -> TaskSpec:
    """The TaskSpec a model is built for, each argument checked in one line."""
    from fpt.config.schema import READOUTS
    from fpt.tasks.spec import TaskSpec

    if (token_dim is None) == (vocab_size is None):
        raise FPTError(f"give one of token_dim (features per token: a Linear input layer) and vocab_size (token ids: an "
                       f"Embedding), got {'both' if token_dim is not None else 'neither'}")
    for name, value in (("token_dim", token_dim), ("vocab_size", vocab_size), ("num_outputs", num_outputs),
                        ("seq_len", seq_len), ("k", k)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise FPTError(f"{name} must be a positive integer, got {value!r}")
    if readout not in READOUTS:
        raise FPTError(f"readout must be one of {', '.join(READOUTS)}, got {readout!r}")
    if (k is None) == (readout == "last_k"):
        raise FPTError("readout=last_k reads the last k positions: give k" if k is None else
                       f"k={k} is the number of positions readout=last_k reads; readout={readout} reads no k")
    if k is not None and k > seq_len:
        raise FPTError(f"k={k} positions are more than seq_len={seq_len}")
    return TaskSpec(seq_len=seq_len, num_classes=num_outputs, readout=readout, token_dim=token_dim,
                    vocab_size=vocab_size, k=k or 1)


def model_config(trunk: Any, freeze: Any, options: Mapping[str, Any]):
    """The checked config `fpt train trunk=... freeze=... model.*=... trunk.*=...` would build the model from, and the
    given transformers model (None: the config names the trunk)."""
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    import fpt.models  # noqa: F401 - registers the model kinds validate() checks model.* against
    from fpt.config import compose, one_line
    from fpt.config.kinds import freeze_of
    from fpt.config.sections import validate
    from fpt.trunks.source import check_source

    group, keys, given = _trunk_keys(trunk)
    cfg = compose([f"trunk={group}"])
    keys = {**keys, "freeze": _freeze_list(freeze), **option_keys(options, str(cfg.model.kind))}
    with open_dict(cfg):
        for key, value in keys.items():
            try:
                OmegaConf.update(cfg, key, str(value) if isinstance(value, os.PathLike) else value, merge=False)
            except OmegaConfBaseException as e:
                raise FPTError(f"{key.split('.')[-1]}={value!r}: {one_line(e)}") from None
    plain = validate(cfg)
    plain["freeze"] = freeze_of(plain)
    cfg = OmegaConf.create(plain)
    if given is None:
        check_source(cfg.trunk)  # weights that cannot be reached: one line before anything loads
    return cfg, given


def _trunk_keys(trunk: Any) -> tuple[str, dict[str, Any], Any]:
    """(the trunk preset, trunk.* keys, a given model or None) for build's `trunk` argument."""
    from fpt.config import choices

    if isinstance(trunk, (str, os.PathLike)):
        text = os.fspath(trunk)
        if isinstance(trunk, str) and text in choices("trunk"):
            return text, {}, None
        if isinstance(trunk, os.PathLike) or text.startswith((".", "/", "~")) or Path(text).expanduser().is_dir():
            return "auto", {"trunk.path": str(Path(text).expanduser())}, None
        if "/" in text:  # a hub id, org/name
            return "auto", {"trunk.name": text}, None
        raise FPTError(f"unknown trunk '{text}'; choose one of: {', '.join(choices('trunk'))}; or give a Hugging Face "
                       f"folder, a hub id (org/name) or a loaded transformers model")
    from fpt.trunks.given import arch_of

    arch = arch_of(trunk)  # a transformers model, or a one-line error
    return "auto", {"trunk.arch": arch, "trunk.name": getattr(trunk.config, "_name_or_path", None) or None}, trunk


def _freeze_list(freeze: Any) -> list[str] | None:
    """build's `freeze` as the config's list: "attn,ffn" or ("attn", "ffn"); "none" or () freezes nothing; None: the
    kind's own. The names are checked with the config (validate)."""
    if freeze is None:
        return None
    items = freeze.split(",") if isinstance(freeze, str) else list(freeze)
    if not all(isinstance(g, str) for g in items):
        raise FPTError(f"freeze must be group names (e.g. ('attn', 'ffn') or 'attn,ffn'), got {freeze!r}")
    items = [g.strip() for g in items if g.strip()]
    return [] if [g.lower() for g in items] == ["none"] else items


def option_keys(options: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """build's keyword options as config keys: a field of the model kind's schema goes to model.*, of the Trunk
    schema (fpt.config.sections.Trunk) to trunk.*; an unknown name is one line naming the known ones."""
    from fpt.config.kinds import kind as model_kind
    from fpt.config.sections import Trunk

    model_fields = [f for f in model_kind(kind).options.model_fields if f not in NOT_OPTIONS]
    trunk_fields = [f for f in Trunk.model_fields if f not in NOT_OPTIONS]
    out = {}
    for name, value in options.items():
        if name not in model_fields + trunk_fields:
            raise FPTError(f"unknown option '{name}'; known: {', '.join(model_fields)} (model.*), "
                           f"{', '.join(trunk_fields)} (trunk.*)")
        out[f"{'model' if name in model_fields else 'trunk'}.{name}"] = value
    return out


def inspect(model: nn.Module) -> list[ParamRow]:
    """The rows `fpt inspect` prints for `model` (built by fpt.build, or fpt.load(...).model): one per parameter tensor,
    with its name, shape, freeze group and whether it trains."""
    from fpt.models.freeze import inspect_rows

    if not hasattr(model, "param_groups") and hasattr(model, "model"):  # a loaded Run: its model
        model = model.model
    if not callable(getattr(model, "param_groups", None)):
        raise InputError(f"fpt.inspect reads a model built by fpt.build (or fpt.load(...).model), which knows its freeze "
                         f"groups; got {type(model).__name__}")
    return inspect_rows(model)


def train(overrides: Sequence[str] = ()) -> TrainResult:
    """`fpt train OVERRIDES` in this process: the same composition, checks, run directory and results.json. Returns
    the results and the run directory; a failure is its one line, raised as InputError. One run (no --multirun);
    sys.argv and Hydra's state are as they were afterwards, so it can be called again."""
    from fpt.run.launch import launch

    if isinstance(overrides, str) or not all(isinstance(a, str) for a in overrides):
        raise InputError(f"fpt.train takes a list of key=value strings, e.g. ['task=bit_xor', 'out=runs/xor'], got {overrides!r}")
    if flags := [a for a in overrides if a.startswith("-")]:
        raise InputError(f"fpt.train runs one configuration and takes key=value only, got {flags[0]}; sweep with "
                         f"`fpt train --multirun` or `fpt sweep`, print the config with fpt.config.compose")
    seen: dict[str, Any] = {}
    with _one_line():
        launch(list(overrides), job=partial(_job, seen))
        if "error" in seen:
            raise seen["error"]
    run_dir = seen.get("run_dir")
    res = Results.read(run_dir) if run_dir is not None else None
    if res is None:
        raise InputError(f"the run wrote no results.json{f' in {run_dir}' if run_dir else ''}")
    return TrainResult(res, run_dir)


def _job(seen: dict[str, Any], cfg) -> float | None:
    """fpt.run.job.run_job, its run directory and failure kept in `seen`: Hydra would print an exception and exit."""
    from hydra.core.hydra_config import HydraConfig

    from fpt.run.job import RunFailed, run_job

    seen["run_dir"] = Path(HydraConfig.get().runtime.output_dir)
    try:
        return run_job(cfg)
    except RunFailed as e:
        seen["error"] = e.error  # its line is on stderr already
    except BaseException as e:  # noqa: BLE001 - raised again after Hydra returns, with its own traceback
        seen["error"] = e
    return None
