"""`fpt analyze TOOL key=value ...`: the analysis tools on the command line.

Paths are checked before torch and transformers are imported, so a typo fails at once, in one line.
"""

from __future__ import annotations

import sys

from fpt.analysis import checkpoint_of
from fpt.config import CommandLine, command_line
from fpt.errors import FPTError
from fpt.config.schema import Count, Indices, Options, Text, TextOrNull, check, choice

USAGE = """usage: fpt analyze TOOL key=value ...

tools (out=DIR, or hydra.run.dir=DIR, defaults to RUN_DIR/analysis/, or ./analysis/ for weights):
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
  ablate      ckpt=PATH|run=DIR layers=[0,5]|all [key=value ...]
              test accuracy with each block skipped; writes <ckpt>.ablation.{json,csv} beside the checkpoint

Features are mean-pooled over real tokens (pool=flat: all positions concatenated); layer 0 is the
embedding output, layer i the output of block i.
"""

class _Tool(Options):
    out: TextOrNull = None  # taken by the command line (out=DIR or hydra.run.dir=DIR)


class Attention(_Tool):
    run: Text
    layers: Indices = None  # None: the first and the last
    heads: Indices = None  # None: all
    examples: Count = 4
    n: Count = 64


class Similarity(_Tool):
    a: Text
    b: Text  # a run directory, trunk (a's own, untrained) or trunk:NAME
    n: Count = 512
    pool: choice("mean", "flat") = "mean"


class Probe(_Tool):
    run: Text
    n: Count = 1000
    pool: choice("mean", "flat") = "mean"
    targets: Count = 8


class Weights(_Tool):
    pass


class Ablate(Options):
    ckpt: TextOrNull = None
    run: TextOrNull = None
    layers: Indices


# tool -> its options' schema; similarity and weights also take trunk.* options, ablate any key of the run's config
SCHEMAS = {"attention": Attention, "similarity": Similarity, "probe": Probe, "weights": Weights, "ablate": Ablate}
PASS_THROUGH = {"similarity": "trunk", "weights": "trunk", "ablate": ""}  # prefixes of options handed on as overrides


def parse(tool: str, c: CommandLine):
    """Split the command line into the tool's own options (checked against its schema) and pass-through overrides."""
    schema = SCHEMAS[tool]
    own = [f.alias or n for n, f in schema.model_fields.items()]
    values = c.values()
    mine = {k: v for k, v in values.items() if k in own or tool not in PASS_THROUGH or not k.startswith(PASS_THROUGH[tool])}
    rest = c.without(*mine)
    opts = check(schema, {**mine, **({"out": c.out} if c.out and "out" in own else {})})
    return opts, rest


def _attention(opts: Attention, rest: list[str]) -> list:
    checkpoint_of(opts.run)
    from fpt.analysis.attention import analyze_attention

    return analyze_attention(opts.run, opts.layers, opts.heads, opts.examples, opts.n, opts.out)


def _similarity(opts: Similarity, rest: list[str]) -> list:
    checkpoint_of(opts.a)
    if not opts.b.startswith("trunk"):
        checkpoint_of(opts.b)
    from fpt.analysis.similarity import analyze_similarity

    return analyze_similarity(opts.a, opts.b, opts.n, opts.pool, rest, opts.out)


def _probe(opts: Probe, rest: list[str]) -> list:
    checkpoint_of(opts.run)
    from fpt.analysis.similarity import analyze_probe

    return analyze_probe(opts.run, opts.n, opts.pool, opts.targets, opts.out)


def _weights(opts: Weights, rest: list[str]) -> list:
    from fpt.analysis.weights import analyze_weights

    files, scale = analyze_weights(rest, opts.out)
    if scale.get("ratio_std") is not None:
        print(f"{scale['trunk']}: token embedding / position scale: std {scale['emb_std']:.4g} / {scale['pos_std']:.4g} = {scale['ratio_std']:.3g}; "
              f"mean row norm {scale['emb_row_norm']:.4g} / {scale['pos_row_norm']:.4g} = {scale['ratio_row_norm']:.3g}")
    else:
        print(f"{scale['trunk']}: {scale['note']}")
    if "ranges" in scale:
        print(f"ranges of the {'standardised' if 'standardized' in scale['trunk'] else 'kept'} groups, pretrained (before) and as built (after):")
        print(scale["ranges"])
    return files


def _ablate(opts: Ablate, rest: list[str]) -> list:
    if opts.ckpt is None and opts.run is None:
        raise FPTError("ablate: pass ckpt=PATH or run=DIR")
    ckpt = checkpoint_of(opts.ckpt or opts.run)
    from fpt.analysis.ablate import evaluate_ablation, format_report

    report = evaluate_ablation(str(ckpt), opts.layers, rest)
    print(format_report(report))
    return [ckpt.with_name(f"{ckpt.stem}.ablation.json"), ckpt.with_name(f"{ckpt.stem}.ablation.csv")]


TOOLS = {"attention": _attention, "similarity": _similarity, "probe": _probe, "weights": _weights, "ablate": _ablate}


def main(argv: list[str] | None = None) -> int:
    """`fpt analyze` entry point: run one tool, print the files it wrote."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    c = command_line("analyze", argv, writes="dir", positional="TOOL", list_keys=("layers", "heads"))
    if c.positional not in TOOLS:
        raise FPTError(f"unknown analysis '{c.positional}'; choose one of: {', '.join(TOOLS)}" if c.positional else
                       f"which analysis? fpt analyze {'|'.join(TOOLS)} key=value ...")
    if c.positional == "ablate" and c.out:
        raise FPTError("ablate writes <ckpt>.ablation.json and .csv beside the checkpoint; out= does not apply")
    opts, rest = parse(c.positional, c)
    for path in TOOLS[c.positional](opts, rest):
        print(path)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FPTError as e:
        print(f"fpt analyze: error: {e}", file=sys.stderr)
        sys.exit(2)
