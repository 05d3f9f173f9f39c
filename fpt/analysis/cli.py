"""`fpt analyze TOOL key=value ...`: the analysis tools on the command line.

Paths are checked before torch and transformers are imported, so a typo fails at once, in one line.
"""

from __future__ import annotations

import sys

from fpt.analysis import checkpoint_of
from fpt.errors import FPTError

USAGE = """usage: fpt analyze TOOL key=value ...

tools (out=DIR defaults to RUN_DIR/analysis/, or ./analysis/ for weights):
  attention   run=DIR [layers=[0,5]] [heads=[0,1]] [examples=4] [n=64] [out=DIR]
              attention grids (layers x heads) of the first test examples; entropy and mean
              attention distance per layer and head over n test examples (CSV + plot)
  similarity  a=DIR b=DIR|trunk|trunk:NAME [trunk.KEY=V ...] [n=512] [pool=mean|flat] [out=DIR]
              linear CKA and RSA of every layer of a against every layer of b on a's test inputs
              (b=trunk: a's own trunk as loaded, before training; b=trunk:minilm trunk.init=random: another)
  probe       run=DIR [n=1000] [pool=mean|flat] [targets=8] [out=DIR]
              logistic-regression probe accuracy per layer (fit on val, score on test)
  weights     trunk=NAME [trunk.init=random|standardized|...] [trunk.KEY=V ...] [out=DIR]
              per-tensor statistics vs Xavier, embedding-to-position scale (CSV, JSON, plot)
  ablate      ckpt=PATH|run=DIR layers=[0,5] [key=value ...]
              test accuracy with each block skipped; writes <ckpt>.ablation.{json,csv}

Features are mean-pooled over real tokens (pool=flat: all positions concatenated); layer 0 is the
embedding output, layer i the output of block i.
"""

# tool -> (options it takes, required ones); similarity and weights also take trunk.* options
OPTIONS = {
    "attention": ({"run", "layers", "heads", "examples", "n", "out"}, {"run"}),
    "similarity": ({"a", "b", "n", "pool", "out"}, {"a", "b"}),
    "probe": ({"run", "n", "pool", "targets", "out"}, {"run"}),
    "weights": ({"out"}, set()),
    "ablate": ({"ckpt", "run", "layers"}, {"layers"}),
}
PASS_THROUGH = {"similarity": "trunk", "weights": "trunk", "ablate": ""}  # prefixes of options handed on as overrides


def parse(tool: str, args: list[str]) -> tuple[dict[str, str], list[str]]:
    """Split `key=value` arguments into the tool's own options and pass-through overrides."""
    known, required = OPTIONS[tool]
    opts, rest = {}, []
    for a in args:
        key, eq, value = a.partition("=")
        if not eq:
            raise FPTError(f"expected key=value, got '{a}'")
        if key in known:
            opts[key] = value
        elif tool in PASS_THROUGH and key.lstrip("+~").startswith(PASS_THROUGH[tool]):
            rest.append(a)
        else:
            raise FPTError(f"{tool}: unknown option '{key}'; it takes: {', '.join(sorted(known))}")
    missing = sorted(required - set(opts))
    if missing:
        raise FPTError(f"{tool}: missing {missing[0]}=...; see fpt analyze --help")
    return opts, rest


def positive(opts: dict, key: str, default: int) -> int:
    """An option that must be a positive integer."""
    value = opts.get(key, default)
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise FPTError(f"{key}={value}: expected a positive integer")
    return n


def _attention(opts: dict, rest: list[str]) -> list:
    checkpoint_of(opts["run"])
    from fpt.analysis.attention import analyze_attention

    return analyze_attention(opts["run"], opts.get("layers"), opts.get("heads"), positive(opts, "examples", 4), positive(opts, "n", 64), opts.get("out"))


def _similarity(opts: dict, rest: list[str]) -> list:
    checkpoint_of(opts["a"])
    if not opts["b"].startswith("trunk"):
        checkpoint_of(opts["b"])
    from fpt.analysis.similarity import analyze_similarity

    return analyze_similarity(opts["a"], opts["b"], positive(opts, "n", 512), opts.get("pool", "mean"), rest, opts.get("out"))


def _probe(opts: dict, rest: list[str]) -> list:
    checkpoint_of(opts["run"])
    from fpt.analysis.similarity import analyze_probe

    return analyze_probe(opts["run"], positive(opts, "n", 1000), opts.get("pool", "mean"), positive(opts, "targets", 8), opts.get("out"))


def _weights(opts: dict, rest: list[str]) -> list:
    from fpt.analysis.weights import analyze_weights

    files, scale = analyze_weights(rest, opts.get("out"))
    if scale.get("ratio_std") is not None:
        print(f"{scale['trunk']}: token embedding / position scale: std {scale['emb_std']:.4g} / {scale['pos_std']:.4g} = {scale['ratio_std']:.3g}; "
              f"mean row norm {scale['emb_row_norm']:.4g} / {scale['pos_row_norm']:.4g} = {scale['ratio_row_norm']:.3g}")
    else:
        print(f"{scale['trunk']}: {scale['note']}")
    return files


def _ablate(opts: dict, rest: list[str]) -> list:
    if "ckpt" not in opts and "run" not in opts:
        raise FPTError("ablate: pass ckpt=PATH or run=DIR")
    ckpt = checkpoint_of(opts.get("ckpt") or opts["run"])
    from fpt.analysis.ablate import evaluate_ablation, format_report

    report = evaluate_ablation(str(ckpt), opts["layers"], rest)
    print(format_report(report))
    return [ckpt.with_name(f"{ckpt.stem}.ablation.json"), ckpt.with_name(f"{ckpt.stem}.ablation.csv")]


TOOLS = {"attention": _attention, "similarity": _similarity, "probe": _probe, "weights": _weights, "ablate": _ablate}


def main(argv: list[str] | None = None) -> int:
    """`fpt analyze` entry point: run one tool, print the files it wrote."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    tool, args = argv[0], argv[1:]
    if tool not in TOOLS:
        raise FPTError(f"unknown analysis '{tool}'; choose one of: {', '.join(TOOLS)}")
    opts, rest = parse(tool, args)
    for path in TOOLS[tool](opts, rest):
        print(path)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FPTError as e:
        print(f"fpt analyze: error: {e}", file=sys.stderr)
        sys.exit(2)
