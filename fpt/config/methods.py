"""Parameter-efficient methods: what one `peft.method` entry says, and the table of them that the toolkit asks.

Each method declares its entry beside the code that applies it (fpt/models/adapters.py: LoRA, IA3, LN tuning, BitFit)
and fpt/models/registry.py registers it here, as model kinds are (fpt/config/kinds.py): the option check, the
results record and the model builder read this table, so there is no second list. A new method is one entry and one
yaml in configs/variant/ that sets `peft.method`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from fpt.config.registry import Registry


@dataclass(frozen=True)
class PeftMethod:
    name: str  # peft.method
    adapt: Callable[[Any, Any, Any, Any], dict]  # (trunk, name -> group, peft section, unused names) -> new name -> group
    injects: bool  # adds modules to the trunk (PEFT's layers): the last block's read-positions shortcut is off
    uses_rank: bool = False  # peft.r sizes it (results.json records peft_r)
    note: Optional[str] = None  # what its row shows


METHODS: Registry[PeftMethod] = Registry("peft.method")


def register_methods(*entries: PeftMethod) -> Registry[PeftMethod]:
    """Add `entries` to the table (fpt/models/registry.py calls it once); a name given twice is a bug."""
    return METHODS.register(*entries)


def peft_method(name: str) -> PeftMethod:
    """The registered method `name`; unknown names are a one-line error."""
    return METHODS.entry(name)
