"""Trunk registry: `trunk.arch` -> how to build it. Hand maps (gpt2, bert, t5), any Hugging Face model with its
groups found from the structure (auto), and the paper's other trunks with their own forwards (vit, longformer).
A new preset of an existing family is one yaml in configs/trunk/; a family the rules cannot read is one file here."""

from __future__ import annotations

import importlib

from fpt.errors import FPTError
from fpt.trunks.base import Arch
from fpt.trunks.load import Trunk, build_trunk, load_trunk

# arch name -> module holding ARCH (imported lazily)
ARCHS = {name: f"fpt.trunks.{name}" for name in ("gpt2", "bert", "t5", "auto", "vit", "longformer")}


def get_arch(name: str) -> Arch:
    """The architecture registered under `name`."""
    if name not in ARCHS:
        raise FPTError(f"unknown trunk.arch '{name}'; known: {', '.join(ARCHS)}")
    return importlib.import_module(ARCHS[name]).ARCH


__all__ = ["ARCHS", "Arch", "Trunk", "build_trunk", "get_arch", "load_trunk"]
