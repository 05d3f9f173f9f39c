"""Model kinds: what one `model.kind` entry says, and the table of them that the toolkit asks.

Each kind declares its own entry beside its builder (fpt/models/build.py, baselines.py, linformer.py, ablations.py:
builder, options schema, the freeze groups it adds, the note `fpt report` prints) and fpt/models/registry.py
registers them here. The config layer sits below the models, so it never imports them: whoever checks or builds a
config imports fpt.models first (fpt/models/__init__.py registers every kind), and the checks here then see them.
A new kind is its file (builder + entry) and one yaml in configs/model/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from fpt.config.registry import Registry


@dataclass(frozen=True)
class ModelKind:
    name: str  # model.kind
    options: type  # its schema (a fpt.config.sections.ModelCommon), checked where the config is composed
    builder: Callable[[Any, Any], Any]  # (cfg, TaskSpec) -> FPTModel
    trunk: bool  # a Hugging Face trunk: trunk.* applies; its blocks can be unfrozen, skipped and analysed
    groups: tuple[str, ...] = ()  # freeze groups its body's parameters fall in (besides input and output)
    freeze: tuple[str, ...] = ()  # what `freeze: null` (the root default) freezes: FPT's attn,ffn; scratch kinds none
    note: Optional[str] = None  # what its row shows, printed under `fpt report`'s efficiency table


KINDS: Registry[ModelKind] = Registry("model.kind")


def register(*entries: ModelKind) -> Registry[ModelKind]:
    """Add `entries` to the table (fpt/models/registry.py calls it once); a name given twice is a bug."""
    return KINDS.register(*entries)


def kind(name: str) -> ModelKind:
    """The registered kind `name`; unknown names are a one-line error."""
    return KINDS.entry(name)


def has_trunk(name: str) -> bool:
    """Whether model.kind `name` wraps a Hugging Face trunk (see ModelKind.trunk)."""
    return kind(str(name)).trunk


def freeze_of(cfg) -> list[str]:
    """The groups a config freezes: `freeze` as given, or with `freeze: null` its model kind's own (see ModelKind.freeze)."""
    from fpt.config.groups import parse_freeze

    given = cfg.get("freeze")
    return parse_freeze(given) if given is not None else list(kind(str(cfg["model"]["kind"])).freeze)
