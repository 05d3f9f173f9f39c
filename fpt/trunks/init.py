"""Initialisations beyond pretrained and random.

- stats: every tensor redrawn from a Gaussian with the pretrained tensor's mean and std (paper 3.8);
- standardized: the pretrained tensors of chosen groups rescaled to Xavier's range (their scale,
  not their direction, changed: the remedy for embeddings whose values drown the positions);
- a toolkit run or checkpoint: the trunk that run trained, e.g. on bit memory (paper 3.2): fpt.trunks.load.from_run.

Pure functions of a model's tensors: nothing here imports the loader.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from fpt.errors import FPTError


@torch.no_grad()
def stats_only(model: nn.Module, seed: int) -> nn.Module:
    """Replace each tensor by N(mean, std) samples of its own pretrained values, seeded."""
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        ref = p.detach().clone()
        std = ref.std() if ref.numel() > 1 else ref.new_zeros(())
        p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std + ref.mean())
    return model


def xavier_std(shape: torch.Size) -> float:
    """Std of Xavier-normal init for a weight of this shape: sqrt(2 / (fan_in + fan_out))."""
    return math.sqrt(2.0 / (shape[0] + shape[1]))


@torch.no_grad()
def standardize(model: nn.Module, names: Mapping[str, str], groups: list[str]) -> nn.Module:
    """Rescale the 2-D tensors of `groups` (`names`: parameter name -> group) to zero mean and Xavier's std
    (1-D tensors keep their values)."""
    present = list(dict.fromkeys(names.values()))
    unknown = [g for g in groups if g not in present]
    if unknown:
        raise FPTError(f"trunk.standardize names unknown group(s) {unknown}; this trunk's groups: {', '.join(present)}")
    hit = 0
    for name, p in model.named_parameters():
        if p.dim() == 2 and names.get(name) in groups:
            p.copy_((p - p.mean()) / p.std().clamp_min(1e-12) * xavier_std(p.shape))
            hit += 1
    if not hit:
        raise FPTError(f"trunk.standardize={groups} matched no 2-D tensor of this trunk")
    return model


@torch.no_grad()
def keep_pretrained(model: nn.Module, pretrained: nn.Module, names: Mapping[str, str], groups: list[str]) -> nn.Module:
    """Copy the pretrained tensors of `groups` (`names`: parameter name -> group) into a freshly initialised `model`
    (`trunk.init=random trunk.keep=[pos]`): pretrained pieces in a fresh trunk."""
    present = list(dict.fromkeys(names.values()))
    unknown = [g for g in groups if g not in present]
    if unknown:
        raise FPTError(f"trunk.keep names group(s) {unknown} this trunk lacks; its groups: {', '.join(present)}")
    source = dict(pretrained.named_parameters())
    for name, p in model.named_parameters():
        if names.get(name) in groups:
            p.copy_(source[name])
    return model
