"""What every trunk architecture declares, and how a trunk is loaded (pretrained or random)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from fpt.errors import FPTError
from fpt.trunks.source import hub_hint, require_hub, resolve_source

INIT_MODES = ("pretrained", "random", "stats", "standardized")  # or a toolkit run dir / checkpoint


@dataclass(frozen=True)
class Arch:
    """One Hugging Face architecture: its model class, anchored freeze map and forward."""

    name: str
    model_cls: Any  # a transformers PreTrainedModel class
    config_cls: Any
    groups: dict[str, list[str]]  # group -> regexes, re.fullmatch on the trunk's own parameter names
    hidden: Callable[[Any], int]  # config -> hidden size
    max_len: Callable[[Any], int | None]  # config -> position limit (None: relative positions)
    dropout_keys: tuple[str, ...]
    blocks: str  # dotted path of the ModuleList of transformer blocks, e.g. "h" or "encoder.layer"
    layers_key: str  # the config field that counts blocks
    attn_dropout_key: str | None = None  # the config field of attention-probability dropout alone (None: not separate)
    known_configs: dict[str, dict] = field(default_factory=dict)  # hub id -> config kwargs
    load_kwargs: dict[str, Any] = field(default_factory=dict)

    def __reduce__(self):
        """Pickled by name (its lambdas cannot be): ddp_spawn pickles the model, which holds `forward`."""
        from fpt.trunks import get_arch

        return get_arch, (self.name,)

    def forward(self, model: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, D) embeddings and (B, T) mask -> (B, T, D) last hidden states."""
        return model(inputs_embeds=x, attention_mask=mask).last_hidden_state


def load_trunk(cfg, arch: Arch) -> nn.Module:
    """Build the trunk that `cfg` names: pretrained weights, or the same architecture freshly initialised."""
    init = str(cfg.get("init", "pretrained"))
    if init not in INIT_MODES:
        if "/" in init or init.endswith(".ckpt"):
            from fpt.trunks.init import from_run

            return from_run(init, arch.name).train()
        raise FPTError(f"unknown trunk.init '{init}'; choose one of: {', '.join(INIT_MODES)}, or a run directory / .ckpt")
    _quiet_transformers()
    src, local = resolve_source(cfg)
    overrides = dropout_overrides(cfg, arch)
    if init == "random":
        config = _config(src, local, arch, overrides)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(cfg.get("init_seed", 0)))
            model = arch.model_cls(config, **arch.load_kwargs)
    else:
        if not local:
            require_hub(src)
        try:
            model = arch.model_cls.from_pretrained(src, **arch.load_kwargs, **overrides)
        except OSError as e:
            raise FPTError(hub_hint(src, local, e)) from None
        if init == "stats":
            from fpt.trunks.init import stats_only

            stats_only(model, int(cfg.get("init_seed", 0)))
        elif init == "standardized":
            from fpt.trunks.init import standardize

            standardize(model, arch.groups, list(cfg.get("standardize") or ["pos"]))
    return model.train()  # from_pretrained returns eval mode; dropout (trunk.dropout) applies in training


def dropout_overrides(cfg, arch: Arch) -> dict[str, float]:
    """Config fields that `trunk.dropout` (all of them) and `trunk.attn_dropout` (attention probabilities) set."""
    out = {k: float(cfg.dropout) for k in arch.dropout_keys} if cfg.get("dropout") is not None else {}
    if cfg.get("attn_dropout") is not None:
        if arch.attn_dropout_key is None:
            raise FPTError(f"trunk.attn_dropout: {arch.name} has one dropout rate for everything; set trunk.dropout instead")
        out[arch.attn_dropout_key] = float(cfg.attn_dropout)
    return out


def attn_dropout(model: nn.Module, arch: Arch) -> float:
    """The attention-probability dropout the loaded trunk applies in training."""
    return float(getattr(model.config, arch.attn_dropout_key or arch.dropout_keys[-1], 0.0) or 0.0)


def keep_blocks(model: nn.Module, arch: Arch, depth: int) -> nn.Module:
    """Use only the first `depth` transformer blocks (paper 3.10)."""
    parent_path, _, attr = arch.blocks.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    blocks = getattr(parent, attr)
    if not 1 <= depth <= len(blocks):
        raise FPTError(f"model.depth={depth}: this trunk has {len(blocks)} blocks; choose 1..{len(blocks)}")
    setattr(parent, attr, nn.ModuleList(list(blocks)[:depth]))
    setattr(model.config, arch.layers_key, depth)
    return model


def _quiet_transformers() -> None:
    """The load report lists e.g. BERT's pooler, which FPT leaves out on purpose; errors still show."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _config(src: str, local: bool, arch: Arch, overrides: dict):
    if not local and src in arch.known_configs:  # the architecture is known: no download needed
        return arch.config_cls(**{**arch.known_configs[src], **overrides})
    if not local:
        require_hub(src)
    try:
        return arch.config_cls.from_pretrained(src, **overrides)
    except OSError as e:
        raise FPTError(hub_hint(src, local, e)) from None


