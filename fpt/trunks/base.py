"""What a trunk architecture declares: plain data (names and regexes, no callables), so it pickles as it is.

`Arch` says which transformers class to build (or none: AutoModel picks it from the saved config), and either a
hand map of its freeze groups or None (found from the model's structure, fpt.trunks.discover), the path of its
blocks (or None: found), and the body forward by name (fpt.trunks.forward). Everything else about a loaded trunk
(widths, positions, causality) is measured on the model itself: fpt.trunks.spec.TrunkSpec.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from fpt.errors import FPTError
from fpt.trunks.discover import block_list, check_blocks, find_blocks, select_blocks

ATTN_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attn_pdrop", "attention_dropout", "attn_dropout")
# dropout fields that belong to heads FPT never builds
HEAD_DROPOUT = re.compile(r"classif|summary|qa_")


@dataclass(frozen=True)
class Arch:
    """One way to build a trunk: a transformers class (or AutoModel), a hand map (or discovery), a forward."""

    name: str
    model_class: str | None = None  # a transformers class name, e.g. "GPT2Model"; None: AutoModel, from the config
    groups: dict[str, list[str]] | None = None  # group -> regexes (re.fullmatch on parameter names); None: discovered
    blocks: str | None = None  # dotted path of the ModuleList of blocks; None: discovered
    forward: str = "embeds"  # fpt.trunks.forward.FORWARDS key; for AutoModel trunks chosen by model_type
    dropout_keys: tuple[str, ...] | None = None  # config fields trunk.dropout sets; None: every dropout field (and
    #                                              stochastic depth, drop_path_rate: BEiT, DINOv2)
    attn_dropout_key: str | None = None  # the field of attention-probability dropout alone (None: found, if any)
    known_configs: dict[str, dict] = field(default_factory=dict)  # hub id -> config kwargs (random init offline)
    load_kwargs: dict[str, Any] = field(default_factory=dict)


def dropout_keys(config, arch: Arch) -> tuple[tuple[str, ...], str | None]:
    """(fields trunk.dropout sets, the attention-probability field or None) for this arch and config."""
    if arch.dropout_keys is not None:
        return arch.dropout_keys, arch.attn_dropout_key
    fields = config.to_dict()
    keys = tuple(k for k, v in fields.items() if re.search(r"dropout|pdrop|drop_path", k) and not HEAD_DROPOUT.search(k)
                 and isinstance(v, (int, float)) and not isinstance(v, bool))
    attn = arch.attn_dropout_key or next((k for k in ATTN_DROPOUT_KEYS if k in keys), None)
    return keys, attn


def dropout_overrides(cfg, arch: Arch, config) -> dict[str, float]:
    """Config fields that `trunk.dropout` (all of them) and `trunk.attn_dropout` (attention probabilities) set."""
    keys, attn_key = dropout_keys(config, arch)
    out = {k: float(cfg.dropout) for k in keys} if cfg.get("dropout") is not None else {}
    if cfg.get("attn_dropout") is not None:
        if attn_key is None:
            name = arch.name if arch.model_class else getattr(config, "model_type", arch.name)
            raise FPTError(f"trunk.attn_dropout: {name} has one dropout rate for everything; set trunk.dropout instead")
        out[attn_key] = float(cfg.attn_dropout)
    return out


def attn_dropout(model: nn.Module, arch: Arch) -> float:
    """The attention-probability dropout the loaded trunk applies in training."""
    keys, attn_key = dropout_keys(model.config, arch)
    key = attn_key or (keys[-1] if keys else None)
    return float(getattr(model.config, key, 0.0) or 0.0) if key else 0.0


def keep_blocks(model: nn.Module, arch: Arch, depth: int) -> nn.Module:
    """Use only the first `depth` transformer blocks (paper 3.10): model.depth, the shorthand of model.blocks."""
    blocks = arch.blocks or find_blocks(model)
    total = len(block_list(model, blocks))
    if not 1 <= depth <= total:
        raise FPTError(f"model.depth={depth}: this trunk has {total} blocks; choose 1..{total}")
    return select_blocks(model, blocks, check_blocks(range(depth), total))
