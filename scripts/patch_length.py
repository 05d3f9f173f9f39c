"""Which patch length and stride FPT should default to on UEA/UCR sets of different lengths: a measurement.

    OMP_NUM_THREADS=1 python scripts/patch_length.py [--steps 100] [--sets ItalyPowerDemand,GunPoint,ArrowHead]
                                                     [--settings 4/2,8/4,16/8,auto] [--out /tmp/patch_length]

For each bundled data set (aeon's copies: offline) and each patch setting it runs `fpt train task=uea trunk=minilm`
(the offline pretrained MiniLM, FPT's freeze) for `--steps` steps, one seed, validation every `--every` steps (the
checkpoint is chosen on the stratified holdout, as a default run does), and prints one row per run: tokens per
series, validation and test accuracy, seconds per step and wall seconds, beside the archive's 1-NN. `auto` is
`task.patch_len=auto` (fpt.tasks.timeseries.auto_patch: about 32 tokens whatever the length); a setting that gives
the same patches as another on a set is run once. A finished run directory is read, not trained again.

What it can tell at CPU scale: how the token count moves the step time (it is close to linear in tokens) and
whether fewer, longer patches lose accuracy at the same number of steps. What it cannot: differences of a few
points (one seed, validation sets of 6 to 14 series, test sets of 150 to 1029), or what happens after many more
steps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from fpt.tasks.timeseries import auto_patch, n_patches, read_ts
from fpt.tasks.uea import find_files



def setting(name: str, length: int) -> tuple[int, int]:
    """(patch_len, stride) of a setting name: 'P/S' or 'auto'."""
    if name == "auto":
        return auto_patch(length)
    p, s = name.split("/")
    return int(p), int(s)


def series_length(name: str) -> int:
    train, test = find_files(name, Path("."))
    return max(s.shape[1] for path in (train, test) for s in read_ts(path)[0])


def run(name: str, p: int, s: int, args) -> dict:
    """One training run (or the record of a finished one) -> its results.json."""
    out = Path(args.out) / f"{name}_p{p}_s{s}_n{args.steps}"
    if not (out / "results.json").is_file():
        cmd = [str(Path(sys.executable).with_name("fpt")), "train", "task=uea", f"data.name={name}", "trunk=minilm",
               f"task.patch_len={p}", f"task.stride={s}", f"trainer.max_steps={args.steps}",
               f"trainer.val_check_interval={args.every}", "trainer.enable_progress_bar=false", "stop_at_val_acc=null",
               "eval.train_acc=false", "task.dtw_max_cells=0", f"seed={args.seed}", f"hydra.run.dir={out}"]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return json.loads((out / "results.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="ItalyPowerDemand,GunPoint,ArrowHead")
    ap.add_argument("--settings", default="4/2,8/4,16/8,auto")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="/tmp/patch_length")
    args = ap.parse_args()
    print(f"{'set':<17} {'length':>6} {'setting':>8} {'patch':>7} {'tokens':>6} {'val':>6} {'test':>6} {'1-NN':>6} "
          f"{'s/step':>7} {'wall s':>7}", flush=True)
    for name in args.sets.split(","):
        length, seen = series_length(name), set()
        for label in args.settings.split(","):
            p, s = setting(label, length)
            if (p, s) in seen:
                continue
            seen.add((p, s))
            r = run(name, p, s, args)
            print(f"{name:<17} {length:>6} {label:>8} {f'{p}/{s}':>7} {n_patches(length, p, s):>6} {r['val/acc']:>6.3f} "
                  f"{r['test/acc']:>6.3f} {r['baseline/1nn_acc']:>6.3f} {r['sec_per_step']:>7.3f} {r['wall_seconds']:>7.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
