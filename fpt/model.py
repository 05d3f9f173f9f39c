"""The FPT wrapper: input layer -> trunk -> readout -> output layer.

Axes: b batch, t tokens, d token features (task side), h hidden size (trunk side),
k read positions, n targets per example, c classes.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Callable

import torch
from einops import rearrange, reduce
from torch import nn

from fpt.errors import FPTError
from fpt.freeze import apply_freeze, assign_groups, parse_freeze, unfreeze_blocks
from tasks.base import TaskSpec

BodyForward = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


class FPTModel(nn.Module):
    """Task tokens in through `input`, a sequence body (`trunk`), task logits out through `output`."""

    def __init__(self, spec: TaskSpec, trunk: nn.Module, hidden: int, groups: dict, body_forward: BodyForward, readout: str | None = None):
        super().__init__()
        self.spec = spec
        self.readout = readout or spec.readout
        if self.readout == "last_k" and spec.readout != "last_k":
            raise FPTError(f"model.readout=last_k needs a task with per-position targets; this task reads '{spec.readout}'")
        if spec.vocab_size is not None:
            self.input = nn.Embedding(spec.vocab_size, hidden, padding_idx=spec.pad_id)
        else:
            self.input = nn.Linear(spec.token_dim, hidden)
            nn.init.orthogonal_(self.input.weight)  # keeps token geometry; the paper's choice
            nn.init.zeros_(self.input.bias)
        self.trunk = trunk
        self.output = nn.Linear(hidden, spec.targets_per_position * spec.num_classes)
        self.trunk_groups = groups  # trunk parameter name -> group, from the trunk's own map
        self._body_forward = body_forward

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (b, t, d) or (b, t) ids, mask (b, t) -> logits (b, n, c)."""
        return self.head(self.features(x, mask))

    def features(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Everything before the output layer: readout features (b, k, h) or (b, h)."""
        h = self._body_forward(self.trunk, self.input(x), mask)  # (b, t, h)
        return self.read(h, mask)

    def read(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(b, t, h) -> (b, k, h) for last_k, else (b, h)."""
        if self.readout == "last_k":
            return h[:, -self.spec.k :]
        if self.readout == "mean":
            m = mask.unsqueeze(-1).to(h.dtype)
            return reduce(h * m, "b t h -> b h", "sum") / m.sum(1).clamp_min(1)
        last = mask.long().sum(1).clamp_min(1) - 1  # index of the last real token (right padding)
        return h[torch.arange(h.shape[0], device=h.device), last]

    def head(self, r: torch.Tensor) -> torch.Tensor:
        """Readout features -> logits (b, n, c)."""
        c = self.spec.num_classes
        if r.dim() == 3:
            return rearrange(self.output(r), "b k (p c) -> b (k p) c", c=c)
        return rearrange(self.output(r), "b (p c) -> b p c", c=c)

    def param_groups(self) -> dict[str, str]:
        """Every parameter's freeze group: the trunk's map, plus `input` and `output`."""
        groups = {}
        for name, _ in self.named_parameters():
            top, _, rest = name.partition(".")
            groups[name] = self.trunk_groups[rest] if top == "trunk" else top
        return groups


def build_model(cfg, spec: TaskSpec) -> FPTModel:
    """The model `cfg.model.kind` names, built for `spec`, with `cfg.freeze` applied."""
    kind = str(cfg.model.kind)
    if kind == "fpt":
        model = _fpt(cfg, spec)
    elif kind == "lstm":
        from fpt.baselines import build_lstm

        model = build_lstm(cfg.model, spec)
    else:
        raise FPTError(f"unknown model.kind '{kind}'; choose fpt or lstm")
    groups = model.param_groups()
    apply_freeze(model, groups, parse_freeze(cfg.freeze))
    unfreeze = cfg.get("unfreeze") or {}
    if unfreeze.get("groups"):
        if kind != "fpt":
            raise FPTError("unfreeze.* selects transformer blocks; it does not apply to model.kind=lstm")
        unfreeze_blocks(model, groups, parse_freeze(unfreeze["groups"]), unfreeze.get("last"), model.blocks)
    if cfg.model.get("compile"):  # torch.compile in place: parameter names, freeze groups and checkpoints stay the same
        model.trunk.compile()
    return model


def _fpt(cfg, spec: TaskSpec) -> FPTModel:
    from fpt.trunks import get_arch, load_trunk
    from fpt.trunks.base import attn_dropout, keep_blocks

    arch = get_arch(str(cfg.trunk.arch))
    trunk = load_trunk(cfg.trunk, arch)
    if cfg.model.get("depth"):
        keep_blocks(trunk, arch, int(cfg.model.depth))
    if cfg.model.get("grad_checkpointing"):  # recompute block activations in backward: memory for compute
        if hasattr(trunk, "activation_checkpointing_enable"):  # transformers >= 5.x; the old name is deprecated there
            trunk.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            trunk.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    p_attn = attn_dropout(trunk, arch)
    if spec.seq_len >= 512 and not torch.cuda.is_available() and p_attn > 0:
        print(f"note: attention dropout {p_attn:g} keeps torch's fused attention off on CPU, so every "
              f"layer stores its heads x {spec.seq_len}^2 attention map; trunk.attn_dropout=0 turns the fused kernel on",
              file=sys.stderr)
    limit = arch.max_len(trunk.config)
    if limit is not None and spec.seq_len > limit and spec.truncatable:
        print(f"note: sequences cut from {spec.seq_len} to the trunk's {limit} positions", file=sys.stderr)
        spec = replace(spec, seq_len=limit)
    elif limit is not None and spec.seq_len > limit:
        raise FPTError(
            f"the task has {spec.seq_len} tokens but trunk '{cfg.trunk.name}' has {limit} positions; "
            f"shorten the task's sequences or choose a trunk with more positions"
        )
    groups = assign_groups((n for n, _ in trunk.named_parameters()), arch.groups)
    model = FPTModel(spec, trunk, arch.hidden(trunk.config), groups, arch.forward, cfg.model.get("readout"))
    model.blocks = f"trunk.{arch.blocks}"
    return model
