"""The freeze groups: their names, `freeze=` parsing, and matching parameter names to groups by pattern.

Plain strings, no torch: the option schemas check `freeze=` with it, trunks map their parameters with it, and the
model applies the result (fpt/models/freeze.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from fpt.errors import FPTError

# Order matters only for display.
# rnn: the LSTM baseline's layers; adapter: PEFT's tensors and bias: BitFit's (peft.method, fpt/models/adapters.py)
GROUPS = ("attn", "ffn", "ln", "pos", "emb", "input", "output", "rnn", "adapter", "bias")
ALWAYS_FROZEN = ("emb",)
NONE_WORDS = ("none", "nothing", "")


def parse_freeze(freeze: str | Sequence[str] | None, known: Iterable[str] = GROUPS) -> list[str]:
    """Normalise `freeze=` (a list, 'a,b' or 'none') and reject unknown group names."""
    if freeze is None:
        return []
    items = freeze.split(",") if isinstance(freeze, str) else [str(f) for f in freeze]
    items = [i.strip() for i in items]
    if len(items) == 1 and items[0].lower() in NONE_WORDS:
        return []
    known = tuple(known)
    for item in items:
        if item not in known:
            raise FPTError(f"unknown freeze group '{item}'; known groups: {', '.join(known)} (or 'none')")
    return list(dict.fromkeys(items))


def group_of(name: str, group_map: Mapping[str, Sequence[str]]) -> str | None:
    """The group whose pattern fully matches `name`, or None."""
    for group, patterns in group_map.items():
        if any(re.fullmatch(p, name) for p in patterns):
            return group
    return None


def assign_groups(names: Iterable[str], group_map: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Map every parameter name to its group; a name no pattern claims is a bug in the map."""
    out: dict[str, str] = {}
    for name in names:
        group = group_of(name, group_map)
        if group is None:
            raise FPTError(f"parameter '{name}' belongs to no freeze group; the trunk's group map needs a pattern for it")
        out[name] = group
    return out
