"""The `fpt` command: train | eval | predict | inspect | data | sweep | report | book | bench | export | analyze.

Every subcommand takes `key=value` arguments parsed one way (fpt.config.command_line: Hydra's grammar, the
`key=a,b` rewrite of list keys, `out=DIR` for where it writes) and answers `--help` / `-h` with its options,
config groups and an example. The subcommand is taken off the argument list before Hydra parses it, and
`sys.argv` is put back before training, because Lightning's ddp strategy starts the other ranks by re-running it.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from dataclasses import dataclass

from fpt.config import GROUPS, add_config_dirs, choices, compose, config_dir
from fpt.config.extensions import reset
from fpt.errors import FPTError


@dataclass(frozen=True)
class Command:
    """A subcommand: the function that runs it and what its --help says."""

    run: str  # "module:function" taking the argument list; imported only when used
    usage: str
    about: str
    out: str  # where it writes, and the key that says so
    example: str
    options: str = ""
    groups: bool = False  # --help lists the config groups


COMMANDS = {
    "train": Command(
        "fpt.cli.train:run", "fpt train [key=value ...] [--multirun] [--cfg job|hydra|all [--resolve]]",
        "Train one configuration (a grid with --multirun): build, fit, test the checkpoint best on validation; "
        "print test/acc.",
        "out=DIR: the run directory (hydra.run.dir=DIR works too; under --multirun the sweep's folder, hydra.sweep.dir)",
        "fpt train task=bit_xor trunk=minilm freeze=attn,ffn out=runs/xor", groups=True),
    "eval": Command(
        "fpt.cli.eval:run", "fpt eval ckpt=RUN/checkpoints/best.ckpt | run=RUN [ablate.layers=[0,5]|all] [key=value ...]",
        "Rebuild the model a checkpoint came from and re-test it on the full test set; with ablate.layers, re-test "
        "with each chosen block skipped. Other key=value change the checkpoint's config (e.g. data.root=DIR).",
        "beside the checkpoint: best.eval.json (best.ablation.json/.csv); out= does not apply",
        "fpt eval run=runs/xor ablate.layers=all"),
    "predict": Command("fpt.cli.predict:run", "fpt predict run=RUN [data.path=FILE] out=FILE.csv|FILE.npz [key=value ...]", "A trained run's predictions on a new file (custom: .npz or a datasets folder; uea: .ts; forecast: a CSV, its last window) or, without data.path, on its test split: one row per example, the class and its probabilities (or values, label scores, forecasts) in the data's units, with the file's labels. It needs only the run directory and its trunk, not the training data. Other key=value change the checkpoint's config (e.g. trunk.path=DIR).", "out=FILE (required): .csv or .npz, by its suffix", "fpt predict run=runs/mine data.path=new.npz out=predictions.csv"),
    "inspect": Command(
        "fpt.cli.inspect:run", "fpt inspect [key=value ...] [--cfg job|hydra|all [--resolve]]",
        "One line per parameter tensor (name, shape, group, trainable/frozen), then the trainable and used counts. "
        "Takes the key=value of fpt train.",
        "nothing: it prints (redirect it to keep it)", "fpt inspect trunk=gpt2 trunk.path=DIR freeze=attn,ffn", groups=True),
    "data": Command(
        "fpt.cli.data:run", "fpt data TASK out=DIR [option=value ...]   (or task=TASK)",
        "Write a task's data (or a small fixture) in its real on-disk format, so every task runs offline.",
        "out=DIR (hydra.run.dir=DIR works too); train on it with data.root=DIR",
        "fpt data listops out=data train_size=500 && fpt train task=listops data.root=data",
        "mnist, cifar10, cifar10_lra: n_train=1000 n_test=200 seed=0\n"
        "listops: train_size=2000 val_size=200 test_size=200 min_len=500 max_len=2000 max_depth=10 max_args=10 seed=0\n"
        "remote_homology: format=both|json|lmdb n_train=480 n_valid=96 n_test=96 n_folds=8 long_frac=0.03 seed=0"),
    "sweep": Command(
        "fpt.study.sweep:main", "fpt sweep [experiment=NAME] [key=a,b ...] [sweep.lr_protocol=all|seed0] [out=DIR]",
        "A grid of runs through Hydra's multirun (key=a,b sweeps; lists in brackets: 'freeze=[attn,ffn],[ln]'); "
        "runs already finished are skipped; results.csv and the lr chosen on validation per cell.",
        "out=DIR: the sweep's folder (default sweeps/EXPERIMENT; hydra.sweep.dir=DIR works too); one run per subfolder",
        "fpt sweep experiment=cpu_main out=sweeps/main && fpt report sweeps/main", groups=True),
    "report": Command(
        "fpt.study.report:main", "fpt report SWEEP_DIR [out=DIR]   (or dir=SWEEP_DIR)",
        "report.md laid out as the paper's tables, with learning curves, bars, accuracy vs lr and vs data size.",
        "out=DIR (default: the sweep folder): report.md and plots/",
        "fpt report sweeps/main"),
    "book": Command(
        "fpt.study.book:main", "fpt book [dir=docs/results] [check=true]",
        "Rebuild every page of the results book (docs/results/NAME/) from its committed results.csv, curves.csv, "
        "examples.npz and sweep.json, and rewrite the README's tables marked <!-- book-table: NAME --> from them; "
        "check=true changes nothing and exits 1 when a marked table differs from its page.",
        "the book's pages (report.md, plots/) and the marked tables of README.md and docs/results/index.md",
        "fpt book check=true"),
    "bench": Command(
        "fpt.cli.bench:run", "fpt bench [key=value as for fpt train] [bench.KEY=VALUE ...] [out=FILE]",
        "Time the training step of FPT, full finetuning, the LSTM and a bare PyTorch loop; FLOP/s vs a measured "
        "matmul peak.",
        "out=FILE: the JSON-lines file results are appended to (bench.out)",
        "fpt bench trunk=gpt2 trunk.init=random task=cifar10", groups=True),
    "export": Command(
        "fpt.analysis.export:main", "fpt export RUN_DIR out=DIR   (or run=RUN_DIR)",
        "Write a trained run's trunk as a plain Hugging Face model (PEFT adapters merged in; fp32) with the task's "
        "input/output layers beside it.",
        "out=DIR (required; hydra.run.dir=DIR works too): config.json, model.safetensors (AutoModel.from_pretrained(DIR)), "
        "fpt_layers.safetensors (input.*, output.*), fpt_export.json",
        "fpt export runs/xor out=exported/xor"),
    "analyze": Command(
        "fpt.analysis.cli:main", "fpt analyze attention|similarity|probe|weights|ablate key=value ...",
        "Look inside a run: attention maps, layer similarity, probes, weight statistics, layer ablation.",
        "out=DIR (default RUN/analysis, ./analysis for weights; hydra.run.dir=DIR works too); ablate writes beside "
        "the checkpoint", "fpt analyze attention run=runs/xor layers=[0,5] out=figs"),
}

USAGE = "usage: fpt COMMAND [key=value ...]    (fpt COMMAND --help: its options)\n\ncommands:\n" + "\n".join(
    f"  {name:<8} {c.example}" for name, c in COMMANDS.items()) + """

Every command takes key=value arguments (Hydra's syntax) and writes where out=DIR says (fpt train: the
run directory, hydra.run.dir; fpt sweep: the sweep's folder, hydra.sweep.dir). `freeze=a,b` means the
list [a,b]; sweep with --multirun 'freeze=[attn,ffn],[ln]' seed=0,1,2. --config-dir DIR (any command) adds
a folder of your own task/, trunk/, model/, variant/ and experiment/ yamls (docs/extending.md).
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `fpt` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")  # Lightning vs torch 2.14 noise
    warnings.filterwarnings("ignore", message=r".*Experiment logs directory .* exists and is not empty.*")  # handled: resume keeps rows
    if not argv or argv[0] in ("-h", "--help", "help") and len(argv) < 2:
        print(USAGE)
        return 0
    if argv[0] == "help":  # fpt help COMMAND
        argv = [argv[1], "--help"]
    cmd, args = argv[0], argv[1:]
    reset()  # what an earlier command in this process added (--config-dir, plugins) is not this one's
    try:
        if cmd not in COMMANDS:
            raise FPTError(f"unknown command '{cmd}'; choose one of: {', '.join(COMMANDS)}")
        if any(a in ("-h", "--help") for a in args):
            add_config_dirs(args)  # --help lists their yamls too
            print(help_text(cmd))
            return 0
        module, _, name = COMMANDS[cmd].run.partition(":")
        return getattr(importlib.import_module(module), name)(args) or 0
    except FPTError as e:
        print(f"fpt {cmd}: error: {e}", file=sys.stderr)
        return 2


def help_text(cmd: str) -> str:
    """`fpt CMD --help`: usage, what it does, where it writes, its options and config groups, an example."""
    c = COMMANDS[cmd]
    lines = [f"usage: {c.usage}", "", c.about, "", f"writes: {c.out}"]
    if cmd in ("train", "inspect", "sweep"):
        lines += ["", "options (key=default: what is allowed; every key of configs/ can be set):"]
        lines += [f"  {k + '=' + _show(v):<40} {what}" for k, v, what in option_defaults()]
        lines += ["  task.*, trunk.*, model.*, trainer.*: the chosen yaml's keys (fpt train task=NAME --cfg job shows them)",
                  "  freeze=a,b means the list [a,b] outside --multirun; under it, a,b sweeps"]
    elif cmd == "bench":
        import fpt.study.bench

        lines += ["", *(fpt.study.bench.__doc__ or "").strip().splitlines()[2:], "",
                  "bench.KEY options (configs/bench/default.yaml, checked by fpt.config.sections.Bench):",
                  (config_dir() / "bench" / "default.yaml").read_text().strip()]
    elif cmd == "analyze":
        from fpt.analysis.cli import USAGE as tools

        lines += ["", tools.strip().split("\n", 2)[2]]  # its tools, without its usage line
    if c.options:
        lines += ["", "options:", *(f"  {ln}" for ln in c.options.splitlines())]
    if c.groups:
        lines += ["", "config groups (GROUP=NAME):", *(f"  {g:<11} {', '.join(choices(g))}" for g in GROUPS)]
    lines += ["", "--config-dir DIR: add DIR's task/, trunk/, model/, variant/, experiment/ yamls (docs/extending.md)"]
    return "\n".join([*lines, "", "example:", f"  {c.example}"])


def option_defaults() -> list[tuple[str, object, str]]:
    """(key, default in the composed config, what is allowed) of the root options, from the schemas."""
    from omegaconf import OmegaConf

    from fpt.config.schema import fields
    from fpt.config.sections import Root, Trainer, Trunk
    from fpt.models.build import FPTModelOptions

    cfg = compose([])
    keys = [f for f in fields(Root, skip=("bench",)) if not f[0].startswith(("trainer.", "logger."))]
    keys += fields(Trainer, "trainer") + [f for f in fields(FPTModelOptions, "model") if f[0] != "model.kind"]
    keys += [f for f in fields(Trunk, "trunk")]
    return [(k, OmegaConf.select(cfg, k, default=d), what) for k, d, what in keys]


def _show(v) -> str:
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v).replace("'", "")
