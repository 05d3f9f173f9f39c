"""Trunks: what can be built (registry.py), how it loads (load.py), what it is found to be (discover.py, spec.py),
how embeddings go through it (forward.py). A new checkpoint of a family the structure rules read is one yaml in
configs/trunk/ (arch: auto); a family they cannot read is one file here with its hand map."""

from fpt.trunks.base import Arch
from fpt.trunks.load import Trunk, build_trunk, load_trunk
from fpt.trunks.registry import ARCHS, get_arch

__all__ = ["ARCHS", "Arch", "Trunk", "build_trunk", "get_arch", "load_trunk"]
