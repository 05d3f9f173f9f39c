"""Finding, composing and checking configs, before any heavy import.

`fpt train task=cifar10 freeze=attn,ffn` must work as typed, but Hydra reads `a,b` as a sweep
and rejects it outside `--multirun`; so for the list keys below, `key=a,b` becomes `key=[a,b]`
(under --multirun it keeps Hydra's meaning: a sweep; write `'freeze=[attn,ffn],[ln]'` there).
"""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fpt.errors import FPTError
from fpt.freeze import parse_freeze
from fpt.kinds import has_trunk

LIST_KEYS = ("freeze", "targets", "unfreeze.groups", "trunk.standardize")
GROUPS = ("task", "trunk", "model", "trainer", "logger", "variant", "experiment")
MULTIRUN_FLAGS = ("-m", "--multirun")


def config_dir() -> Path:
    """configs/ of a source checkout or editable install, or fpt/configs of an installed wheel."""
    here = Path(__file__).resolve().parent
    for cand in (here / "configs", here.parent / "configs"):
        if (cand / "train.yaml").is_file():
            return cand
    raise FPTError(f"no configs found beside {here}; reinstall the fpt package")


def choices(group: str) -> list[str]:
    """The options of a config group: its yaml files."""
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def pop_arg(args: list[str], key: str) -> tuple[str | None, list[str]]:
    """The value of the last `key=value` in `args` (None if absent) and the other arguments."""
    vals = [a.split("=", 1)[1] for a in args if a.startswith(f"{key}=")]
    return (vals[-1] if vals else None), [a for a in args if not a.startswith(f"{key}=")]


def is_multirun(args: list[str]) -> bool:
    return any(a in MULTIRUN_FLAGS for a in args)


def rewrite(args: list[str]) -> list[str]:
    """Rewrite `freeze=a,b` to `freeze=[a,b]` (and `freeze=none` to `freeze=[]`) outside multirun."""
    if is_multirun(args):
        return list(args)
    out = []
    for a in args:
        key, eq, value = a.partition("=")
        if eq and key.lstrip("+~") in LIST_KEYS and not value.startswith("["):
            items = [v for v in value.split(",") if v.strip()]
            if key.lstrip("+~") == "freeze" and [v.strip().lower() for v in items] in ([], ["none"]):
                items = []
            a = f"{key}=[{','.join(items)}]"
        out.append(a)
    return out


def check_groups(args: list[str]) -> None:
    """Unknown group options (`task=nope`) fail here in one line, naming the valid ones."""
    for a in args:
        key, eq, value = a.partition("=")
        key = key.lstrip("+~")
        if not eq or key not in GROUPS or key in ("experiment", "variant") and value in ("null", ""):
            continue
        known = choices(key)
        for v in value.split(",") if is_multirun(args) else [value]:
            if v not in known:
                raise FPTError(f"unknown {key} '{v}'; choose one of: {', '.join(known)}")


def compose(overrides: list[str], with_hydra: bool = False) -> DictConfig:
    """The composed config for `overrides` (no run directory; `with_hydra`: with Hydra's own node, e.g. the
    sweeper's grid), with Hydra's errors as one line."""
    from hydra import compose as hcompose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = [a for a in overrides if a not in MULTIRUN_FLAGS]
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return hcompose(config_name="train", overrides=overrides, return_hydra_config=with_hydra)
    except (HydraException, OmegaConfBaseException) as e:
        raise FPTError(one_line(e)) from None


def sweep_points(args: list[str]) -> list[list[str]]:
    """Every combination a --multirun command line sweeps over, parsed as Hydra parses it."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides([a for a in args if a not in MULTIRUN_FLAGS])
    except HydraException as e:
        raise FPTError(one_line(e)) from None
    return [point for batch in BasicSweeper.split_arguments(parsed, None) for point in batch]


def one_line(e: Exception) -> str:
    """Hydra and OmegaConf errors span lines; keep what says what went wrong."""
    text = str(e).strip() or str(e.__cause__ or "").strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("full_key", "object_type", "reference_type", "Set the environment"))]
    msg = "; ".join(lines) or type(e).__name__
    return re.sub(r"\s+", " ", msg)


def _need(ok: bool, key: str, what: str, value) -> None:
    if not ok:
        raise FPTError(f"{key} must be {what}, got {value!r}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def preflight(cfg: DictConfig) -> None:
    """Checks that need no torch: names, types and ranges, the trunk's source. Each fails in one line."""
    parse_freeze(cfg.freeze)
    parse_freeze(cfg.get("unfreeze", {}).get("groups") or [])
    lr = cfg.optim.lr
    _need(isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0, "optim.lr", "a positive number", lr)
    wd = cfg.optim.get("weight_decay", 0.0)
    _need(isinstance(wd, (int, float)) and wd >= 0, "optim.weight_decay", "a number >= 0", wd)
    _need(_is_int(cfg.seed) and 0 <= cfg.seed < 2**23, "seed", f"an integer in 0..{2**23 - 1}", cfg.seed)
    bs = cfg.task.get("batch_size")
    _need(bs is None or (_is_int(bs) and bs >= 1), "task.batch_size", "a positive integer", bs)
    ms = cfg.trainer.get("max_steps")
    _need(ms is None or (_is_int(ms) and (ms == -1 or ms >= 1)), "trainer.max_steps",
          "a positive number of steps (or -1: trainer.max_epochs decides)", ms)
    vi = cfg.trainer.get("val_check_interval")
    _need(vi is None or (isinstance(vi, (int, float)) and vi > 0), "trainer.val_check_interval", "a positive number of steps", vi)
    size = cfg.data.get("train_size")
    _need(size is None or (_is_int(size) and size >= 1), "data.train_size", "a positive integer or null", size)
    stop = cfg.get("stop_at_val_acc")
    _need(stop is None or (isinstance(stop, (int, float)) and 0 < stop <= 1), "stop_at_val_acc", "in (0, 1] or null", stop)
    _need(cfg.get("on_nan", "stop") in ("stop", "skip"), "on_nan", "stop or skip", cfg.get("on_nan"))
    readout = cfg.model.get("readout")
    _need(readout in (None, "last", "mean", "last_k"), "model.readout", "null, last, mean or last_k", readout)
    depth = cfg.model.get("depth")
    _need(depth is None or (_is_int(depth) and depth >= 1), "model.depth", "a positive integer or null", depth)
    p_in = cfg.model.get("input_dropout", 0.0)
    _need(isinstance(p_in, (int, float)) and not isinstance(p_in, bool) and 0 <= p_in < 1, "model.input_dropout", "in [0, 1)", p_in)
    gain = cfg.model.get("input_gain", 1.0)
    _need(isinstance(gain, (int, float)) and not isinstance(gain, bool) and gain > 0, "model.input_gain", "a positive number", gain)
    cap = cfg.data.get("max_len")
    _need(cap is None or (_is_int(cap) and cap >= 1), "data.max_len", "a positive integer or null", cap)
    train_acc = (cfg.get("eval") or {}).get("train_acc", True)
    _need(isinstance(train_acc, bool), "eval.train_acc", "true or false", train_acc)
    n_train = (cfg.get("eval") or {}).get("train_examples")
    _need(n_train is None or (_is_int(n_train) and n_train >= 1), "eval.train_examples", "a positive integer or null", n_train)
    if cfg.get("resume"):
        _need(Path(str(cfg.resume)).expanduser().exists(), "resume", "an existing run directory or checkpoint", cfg.resume)
    if has_trunk(cfg.model.kind):
        _trunk_preflight(cfg.trunk)


def _trunk_preflight(t: DictConfig) -> None:
    from fpt.trunks.source import check_source

    init = str(t.get("init"))
    path_like = "/" in init or init.endswith(".ckpt")
    _need(init in ("pretrained", "random", "stats", "standardized") or path_like, "trunk.init",
          "pretrained, random, stats, standardized or a toolkit run dir / .ckpt", init)
    if path_like:
        _need(Path(init).expanduser().exists(), "trunk.init", "an existing run directory or checkpoint", init)
    dtype = str(t.get("dtype", "auto"))
    _need(dtype in ("auto", "bf16", "fp32"), "trunk.dtype", "auto, bf16 or fp32", dtype)
    for key in ("dropout", "attn_dropout"):
        d = t.get(key)
        _need(d is None or (isinstance(d, (int, float)) and 0 <= d < 1), f"trunk.{key}", "in [0, 1) or null", d)
    check_source(t)


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


def resolved(cfg: DictConfig) -> dict:
    """The config as a plain resolved dict (Hydra's own node left out)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    c.pop("hydra", None)
    return c
