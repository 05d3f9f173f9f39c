"""`fpt bench`: time the training step of the toolkit's variants and a bare PyTorch loop (fpt.study.bench)."""

from __future__ import annotations

from fpt.config import command_line


def run(args: list[str]) -> int:
    """`fpt bench`."""
    c = command_line("bench", args, writes="file")
    from fpt.study.bench import main as bench

    return bench(c.overrides + ([f"bench.out={c.out_arg}"] if c.out else []))
