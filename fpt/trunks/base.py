"""What every trunk architecture declares, and how a trunk is loaded (pretrained or random)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from fpt.errors import FPTError
from fpt.trunks.source import hub_hint, require_hub, resolve_source

INIT_MODES = ("pretrained", "random")


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
    known_configs: dict[str, dict] = field(default_factory=dict)  # hub id -> config kwargs
    load_kwargs: dict[str, Any] = field(default_factory=dict)

    def forward(self, model: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, D) embeddings and (B, T) mask -> (B, T, D) last hidden states."""
        return model(inputs_embeds=x, attention_mask=mask).last_hidden_state


def load_trunk(cfg, arch: Arch) -> nn.Module:
    """Build the trunk that `cfg` names: pretrained weights, or the same architecture freshly initialised."""
    init = str(cfg.get("init", "pretrained"))
    if init not in INIT_MODES:
        raise FPTError(f"unknown trunk.init '{init}'; choose one of: {', '.join(INIT_MODES)}")
    _quiet_transformers()
    src, local = resolve_source(cfg)
    overrides = {k: float(cfg.dropout) for k in arch.dropout_keys} if cfg.get("dropout") is not None else {}
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
    return model.train()  # from_pretrained returns eval mode; dropout (trunk.dropout) applies in training


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


