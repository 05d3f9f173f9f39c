"""`trunk.arch` -> how to build it. Hand maps (gpt2, bert, t5), any Hugging Face model with its groups found from
the structure (auto), and the paper's other trunks with their own forwards (vit, longformer)."""

from __future__ import annotations

import importlib

from fpt.errors import FPTError
from fpt.trunks.base import Arch

# arch name -> module holding ARCH (imported on first use)
ARCHS = {name: f"fpt.trunks.{name}" for name in ("gpt2", "bert", "t5", "auto", "vit", "longformer")}


def get_arch(name: str) -> Arch:
    """The architecture registered under `name`."""
    if name not in ARCHS:
        raise FPTError(f"unknown trunk.arch '{name}'; known: {', '.join(ARCHS)}")
    return importlib.import_module(ARCHS[name]).ARCH
