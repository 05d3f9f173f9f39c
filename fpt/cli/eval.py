"""`fpt eval`: re-test a checkpoint on its task's full test set, or with chosen blocks skipped."""

from __future__ import annotations

from pathlib import Path

from fpt.config import command_line
from fpt.errors import FPTError


def run(args: list[str]) -> int:
    """`fpt eval`."""
    c = command_line("eval", args, nowhere="writes best.eval.json beside the checkpoint it tests", list_keys=("ablate.layers",))
    from fpt.config.schema import check
    from fpt.config.sections import EvalCommand

    own = ("ckpt", "run", "ablate.layers")
    opts = check(EvalCommand, {k: v for k, v in c.values().items() if k in own})
    rest = c.without(*own)  # the checkpoint config's keys to change (e.g. data.root=DIR)
    if opts.run is not None:
        from fpt.analysis import checkpoint_of

        ckpt = str(checkpoint_of(opts.run))
    elif opts.ckpt is None:
        raise FPTError("missing ckpt=PATH (or run=DIR: its checkpoints/best.ckpt)")
    elif not Path(opts.ckpt).expanduser().is_file():  # before the heavy imports: a typo fails at once
        raise FPTError(f"no checkpoint at {opts.ckpt}; pass ckpt=RUN_DIR/checkpoints/best.ckpt")
    else:
        ckpt = opts.ckpt
    layers = opts.ablate_layers
    if layers is not None:  # skip chosen blocks (identity) and report the accuracy drop per block
        from fpt.analysis.ablate import evaluate_ablation, format_report

        print(format_report(evaluate_ablation(ckpt, layers, rest)))
        return 0
    from fpt.run.train import evaluate

    out = evaluate(ckpt, rest)
    m = out.get("metric", "acc")
    print(f"test/{m} {out[f'test/{m}']:.4f}  test/loss {out['test/loss']:.4f}  ({out['task']}, step {out['steps']})")
    return 0
