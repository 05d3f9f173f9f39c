"""The `fpt` command: train | eval | inspect.

The subcommand is taken off the argument list before Hydra parses it, and `sys.argv` is put
back before training, because Lightning's ddp strategy starts the other ranks by re-running it.
"""

from __future__ import annotations

import importlib
import sys
import warnings

from fpt.config import check_groups, check_out_dir, compose, config_dir, is_multirun, pop_arg, preflight, rewrite, sweep_points
from fpt.errors import FPTError

USAGE = """usage: fpt COMMAND [key=value ...]

commands:
  train    train a model:        fpt train task=bit_xor trunk=minilm freeze=attn,ffn
  eval     test a checkpoint:    fpt eval ckpt=RUN_DIR/checkpoints/best.ckpt [ablate.layers=[0,5]]
  inspect  show what trains:     fpt inspect trunk=gpt2 trunk.path=DIR freeze=attn,ffn
  data     write a task's files: fpt data listops out=DIR [key=value ...]
  sweep    a grid of runs:       fpt sweep experiment=cpu_main   (then: fpt report sweeps/cpu_main)
  report   tables and plots:     fpt report SWEEP_DIR
  bench    time the step:        fpt bench trunk=gpt2 trunk.init=random task=cifar10
  analyze  look inside a run:    fpt analyze attention|similarity|probe|weights|ablate ...

Overrides are Hydra's (config groups: task, trunk, model, trainer, logger, experiment);
`freeze=a,b` means the list [a,b]; sweep with --multirun 'freeze=[attn,ffn],[ln]' seed=0,1,2.
"""


# Commands with a module of their own, imported only when used; each takes the argument list.
EXTERNAL = {
    "sweep": "fpt.sweep:main",
    "report": "fpt.report:main",
    "bench": "fpt.bench:main",
    "analyze": "fpt.analysis.cli:main",
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `fpt` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")  # Lightning vs torch 2.14 noise
    warnings.filterwarnings("ignore", message=r".*Experiment logs directory .* exists and is not empty.*")  # handled: resume keeps rows
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    cmd, args = argv[0], argv[1:]
    commands = {"train": _train, "eval": _eval, "inspect": _inspect, "data": _data, **EXTERNAL}
    try:
        if cmd not in commands:
            raise FPTError(f"unknown command '{cmd}'; choose one of: {', '.join(commands)}")
        fn = commands[cmd]
        if isinstance(fn, str):  # a command that lives in its own module: 'module:function'
            module, _, name = fn.partition(":")
            fn = getattr(importlib.import_module(module), name)
        return fn(args) or 0
    except FPTError as e:
        print(f"fpt {cmd}: error: {e}", file=sys.stderr)
        return 2


def _checked(args: list[str]):
    """Rewrite and check the overrides before any heavy import; under --multirun, every point."""
    args = rewrite(args)
    check_groups(args)
    if is_multirun(args):
        for point in sweep_points(args):
            preflight(compose(point))
        return args, None
    cfg = compose(args)
    preflight(cfg)
    return args, cfg


def _train(args: list[str]) -> int:
    args, _ = _checked(args)
    for key in ("hydra.run.dir", "hydra.sweep.dir"):
        value, _ = pop_arg(args, key)
        if value is not None:
            check_out_dir(value, key)
    import hydra

    original = list(sys.argv)

    @hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
    def run(cfg):
        from fpt.job import run_job

        sys.argv = original  # ddp re-runs sys.argv for the other ranks
        return run_job(cfg)

    sys.argv = [original[0], *args]
    try:
        run()
    finally:
        sys.argv = original
    return 0


def _kv(args: list[str], required: str) -> tuple[str, list[str]]:
    value, rest = pop_arg(args, required)
    if value is None:
        raise FPTError(f"missing {required}=PATH")
    return value, rest


def _eval(args: list[str]) -> int:
    ckpt, rest = _kv(args, "ckpt")
    from pathlib import Path

    if not Path(ckpt).expanduser().is_file():  # before the heavy imports: a typo fails at once
        raise FPTError(f"no checkpoint at {ckpt}; pass ckpt=RUN_DIR/checkpoints/best.ckpt")
    layers, rest = pop_arg(rest, "ablate.layers")
    if layers is not None:  # skip chosen blocks (identity) and report the accuracy drop per block
        from fpt.analysis.ablate import evaluate_ablation, format_report

        print(format_report(evaluate_ablation(ckpt, layers, rest)))
        return 0
    from fpt.train import evaluate

    out = evaluate(ckpt, rest)
    print(f"test/acc {out['test/acc']:.4f}  test/loss {out['test/loss']:.4f}  ({out['task']}, step {out['steps']})")
    return 0


def _inspect(args: list[str]) -> int:
    _, cfg = _checked(args)
    if cfg is None:
        raise FPTError("inspect takes one configuration, not --multirun")
    from fpt.freeze import inspect_table
    from fpt.train import build

    _, lit = build(cfg, cached=False)
    print(inspect_table(lit.model, lit.model.param_groups()))
    return 0


def _data(args: list[str]) -> int:
    if not args or "=" in args[0]:
        raise FPTError("usage: fpt data TASK out=DIR [option=value ...]")
    name, rest = args[0], args[1:]
    check_groups([f"task={name}"])
    out, options = _kv(rest, "out")
    check_out_dir(out, "out")
    from pathlib import Path

    from omegaconf import OmegaConf

    from tasks.base import task_class

    task_cfg = OmegaConf.load(config_dir() / "task" / f"{name}.yaml")
    opts = {}
    for kv in options:
        key, eq, value = kv.partition("=")
        if not eq:
            raise FPTError(f"expected option=value, got '{kv}'")
        opts[key] = OmegaConf.from_dotlist([kv])[key] if value else value
    written = task_class(task_cfg).write_data(Path(out).expanduser(), **opts)
    for p in written:
        print(p)
    print(f"wrote {len(written)} file(s) for task {name} under {out}; train on them with: fpt train task={name} data.root={out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
