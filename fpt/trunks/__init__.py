"""Trunk registry: `trunk.arch` -> architecture. A new architecture is one file here plus one yaml."""

from __future__ import annotations

import importlib

from fpt.errors import FPTError
from fpt.trunks.base import Arch, load_trunk

# arch name -> module holding ARCH (imported lazily: transformers is slow to import)
ARCHS = {"gpt2": "fpt.trunks.gpt2", "bert": "fpt.trunks.bert", "t5": "fpt.trunks.t5"}


def get_arch(name: str) -> Arch:
    """The architecture registered under `name`."""
    if name not in ARCHS:
        raise FPTError(f"unknown trunk.arch '{name}'; known: {', '.join(ARCHS)}")
    return importlib.import_module(ARCHS[name]).ARCH


__all__ = ["ARCHS", "Arch", "get_arch", "load_trunk"]
