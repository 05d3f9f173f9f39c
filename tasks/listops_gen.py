"""LRA's ListOps generator: random nested MIN / MAX / MED / SM expressions over digits and their values.

The same trees, lengths and string layout as LRA's `listops.py` (a digit w.p. 0.75 below max_depth, 2..max_args
arguments per operator), rejection-sampled to a length window and de-duplicated; seeded by numpy, not by Python's
`random`. `fpt data listops out=DIR` and `task=listops_small` write its rows as LRA-format TSVs (tasks/listops.py).
"""

from __future__ import annotations

import statistics

import numpy as np
from pydantic import model_validator

from fpt.errors import FPTError
from fpt.config.schema import Count, Invalid, NonNegative, Options, rule

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")


class _Uniforms:
    """Uniform draws from a seeded numpy Generator, fetched in blocks (one scalar call each is slow)."""

    def __init__(self, seed: int, block: int = 8192):
        self.rng, self.block, self.buf, self.i = np.random.default_rng(seed), block, np.empty(0), 0

    def __call__(self) -> float:
        if self.i == len(self.buf):
            self.buf, self.i = self.rng.random(self.block), 0
        self.i += 1
        return float(self.buf[self.i - 1])

    def integer(self, low: int, high: int) -> int:
        """Uniform integer in [low, high]."""
        return low + int(self() * (high - low + 1))


class _TooLong(Exception):
    pass


def _tree(u: _Uniforms, depth: int, max_depth: int, max_args: int, budget: list[int]):
    """LRA's generate_tree: a digit w.p. 0.75 below max_depth (always at it), else an operator node."""
    if depth >= max_depth or u() > 0.25:
        budget[0] -= 1
        return u.integer(0, 9)
    budget[0] -= 2  # the operator and its closing `]`
    op = OPERATORS[u.integer(0, len(OPERATORS) - 1)]
    children = []
    for _ in range(u.integer(2, max_args)):
        if budget[0] <= 0:  # already too long: acceptance depends only on length, so stop early
            raise _TooLong
        children.append(_tree(u, depth + 1, max_depth, max_args, budget))
    return op, children


def tree_length(tree) -> int:
    """Operators + values + closers (LRA's length)."""
    return 1 if isinstance(tree, int) else 2 + sum(tree_length(c) for c in tree[1])


def evaluate(tree) -> int:
    """The value of an expression: MIN, MAX, MED (integer part of the median), SM (sum mod 10)."""
    if isinstance(tree, int):
        return tree
    op, args = tree[0], [evaluate(c) for c in tree[1]]
    if op == "[MIN":
        return min(args)
    if op == "[MAX":
        return max(args)
    if op == "[MED":
        return int(statistics.median(args))
    return sum(args) % 10


def lra_string(tree) -> str:
    """LRA's text: each node written left-nested, `( ( ( [MAX 2 ) 9 ) ] )` for [MAX 2 9 ]."""
    if isinstance(tree, int):
        return str(tree)
    op, children = tree
    parts = ["( " * (len(children) + 1) + op, lra_string(children[0]), ")"]
    for c in children[1:]:
        parts += [lra_string(c), ")"]
    return " ".join([*parts, "] )"])


def generate(n: int, seed: int = 0, min_len: int = 500, max_len: int = 2000, max_depth: int = 10, max_args: int = 10,
             exclude: set[str] | None = None) -> list[tuple[str, int]]:
    """`n` distinct (LRA source, label) pairs with min_len < length < max_len, by rejection sampling."""
    u, seen, out = _Uniforms(seed), set(exclude or ()), []
    tries, limit = 0, max(100_000, 1000 * n)
    while len(out) < n:
        tries += 1
        if tries > limit:
            raise FPTError(f"only {len(out)} of {n} distinct expressions with {min_len} < length < {max_len} in {limit} tries; "
                           f"widen min_len/max_len or raise max_depth/max_args")
        budget = [max_len - 1]  # length must stay below max_len
        try:
            tree = _tree(u, 1, max_depth, max_args, budget)
        except _TooLong:
            continue
        length = max_len - 1 - budget[0]
        source = lra_string(tree)
        if min_len < length < max_len and source not in seen:
            seen.add(source)
            out.append((source, evaluate(tree)))
    return out


class GeneratorOptions(Options):
    """The generator's options: `fpt data listops key=value` and listops_small's `task.generate`."""

    train_size: Count = 2000
    val_size: Count = 200
    test_size: Count = 200
    min_len: Count = 500  # lengths (ops + values + closers) strictly between min_len and max_len
    max_len: Count = 2000
    max_depth: rule(int, lambda v: 1 <= v <= 100, "an integer in 1..100") = 10
    max_args: rule(int, lambda v: v >= 2, "an integer >= 2 (an operator takes 2..max_args)") = 10
    seed: NonNegative = 0

    @model_validator(mode="after")
    def _room_between(self):
        if self.max_len - self.min_len < 2:
            raise Invalid(f"listops lengths are strictly between min_len and max_len: need max_len >= min_len + 2, "
                          f"got {self.min_len}, {self.max_len}")
        return self


GENERATOR_DEFAULTS = GeneratorOptions().model_dump()
