"""`fpt predict`: a trained run's predictions on a new file, or on its own test split, as a .csv or .npz table."""

from __future__ import annotations

from pathlib import Path

from fpt.config import command_line
from fpt.errors import FPTError

OWN = ("run", "ckpt", "data.path")


def run(args: list[str]) -> int:
    """`fpt predict run=DIR [data.path=FILE] out=FILE`."""
    out, rest = _out(args)
    c = command_line("predict", rest, nowhere="writes the file out= names")
    values = {k: v for k, v in c.values().items() if k in OWN}
    if values.get("run") is None and values.get("ckpt") is None:
        raise FPTError("missing run=DIR (its checkpoints/best.ckpt) or ckpt=PATH")
    source = Path(str(values.get("ckpt") or values["run"])).expanduser()
    if not source.exists():  # before the heavy imports: a typo fails at once
        raise FPTError(f"no run directory or checkpoint at {source}; pass run=RUN_DIR (a finished fpt train)")
    data = values.get("data.path")
    if data is not None and not Path(str(data)).expanduser().exists():
        raise FPTError(f"data.path {data} does not exist; pass the file to predict on (or leave data.path out: the test split)")
    from fpt.run.predict import load, write

    run_ = load(source, c.without(*OWN))
    columns = run_.predict_file(None if data is None else Path(str(data)).expanduser())
    rows = len(next(iter(columns.values())))
    print(f"{rows} rows ({_what(run_.spec.objective)}) of {data or 'the test split'} -> {write(columns, out)}")
    return 0


def _out(args: list[str]) -> tuple[Path, list[str]]:
    """out=FILE (.csv or .npz; an existing file is replaced) taken off the arguments, checked; the other arguments."""
    outs = [a.partition("=")[2] for a in args if a.startswith("out=")]
    if not outs or not outs[-1]:
        raise FPTError("missing out=FILE: where the predictions go (.csv or .npz)")
    out = Path(outs[-1]).expanduser()
    if out.suffix.lower() not in (".csv", ".npz"):
        raise FPTError(f"out={outs[-1]}: write a .csv or an .npz file (the suffix chooses the format)")
    if out.is_dir():
        raise FPTError(f"out={outs[-1]} is a directory; name a .csv or .npz file")
    return out, [a for a in args if not a.startswith("out=")]


def _what(objective: str) -> str:
    return {"classification": "class and probabilities", "multilabel": "label scores", "regression": "values",
            "forecast": "forecast steps"}[objective]
