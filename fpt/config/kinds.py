"""Model kinds: `model.kind` -> the function that builds it and what it has. One table the toolkit asks.

No torch here, so config checks can ask it before the heavy imports. A new baseline is one builder, one entry
here, one yaml in configs/model/ and one test.
"""

from __future__ import annotations

from dataclasses import dataclass

from fpt.errors import FPTError


@dataclass(frozen=True)
class Kind:
    builder: str  # "module:function" building an FPTModel from (cfg, spec); imported only when used
    trunk: bool  # a Hugging Face trunk: trunk.* applies; its blocks can be unfrozen, skipped and analysed


KINDS = {
    "fpt": Kind("fpt.models.build:build_fpt", trunk=True),
    "lstm": Kind("fpt.models.baselines:build_lstm", trunk=False),
    "linformer": Kind("fpt.models.linformer:build_linformer", trunk=False),
    # the "does the pretrained trunk matter?" ablations (fpt/models/ablations.py)
    "no_trunk": Kind("fpt.models.ablations:build_no_trunk", trunk=False),
    "attn1": Kind("fpt.models.ablations:build_attn1", trunk=False),
    "block1": Kind("fpt.models.ablations:build_block1", trunk=False),
}


def kind(name: str) -> Kind:
    """The registered kind `name`; unknown names are a one-line error."""
    if name not in KINDS:
        raise FPTError(f"unknown model.kind '{name}'; choose one of: {', '.join(KINDS)}")
    return KINDS[name]


def has_trunk(name: str) -> bool:
    """Whether model.kind `name` wraps a Hugging Face trunk (see Kind.trunk)."""
    return kind(str(name)).trunk
