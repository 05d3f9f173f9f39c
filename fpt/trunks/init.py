"""Initialisations beyond pretrained and random.

- stats: every tensor redrawn from a Gaussian with the pretrained tensor's mean and std (paper 3.8);
- standardized: the pretrained tensors of chosen groups rescaled to Xavier's range (their scale,
  not their direction, changed: the remedy for embeddings whose values drown the positions);
- a toolkit run or checkpoint: the trunk that run trained, e.g. on bit memory (paper 3.2).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from fpt.errors import FPTError
from fpt.kinds import has_trunk


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
def standardize(model: nn.Module, group_map: dict[str, list[str]], groups: list[str]) -> nn.Module:
    """Rescale the 2-D tensors of `groups` to zero mean and Xavier's std (1-D tensors keep their values)."""
    unknown = [g for g in groups if g not in group_map]
    if unknown:
        raise FPTError(f"trunk.standardize names unknown group(s) {unknown}; this trunk's groups: {', '.join(group_map)}")
    hit = 0
    for name, p in model.named_parameters():
        if p.dim() == 2 and any(re.fullmatch(pat, name) for g in groups for pat in group_map[g]):
            p.copy_((p - p.mean()) / p.std().clamp_min(1e-12) * xavier_std(p.shape))
            hit += 1
    if not hit:
        raise FPTError(f"trunk.standardize={groups} matched no 2-D tensor of this trunk")
    return model


def from_run(path: str, arch_name: str) -> nn.Module:
    """The trunk a toolkit run trained: its own trunk config rebuilt, then its trained tensors loaded."""
    from fpt.checkpoint import check_trusted, load_checkpoint
    from fpt.trunks import get_arch
    from fpt.trunks.base import load_trunk

    p = Path(path).expanduser()
    ckpt = load_checkpoint(p / "checkpoints" / "best.ckpt" if p.is_dir() else p)
    src = ckpt["fpt"]["config"]
    check_trusted(src, p)
    if not has_trunk(src["model"]["kind"]) or src["trunk"]["arch"] != arch_name:
        raise FPTError(f"trunk.init={path}: that run trained a {src['model']['kind']}/{src['trunk'].get('arch')} model, not a {arch_name} trunk")
    model = load_trunk(OmegaConf.create(src["trunk"]), get_arch(arch_name))
    trained = {k.removeprefix("model.trunk."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.trunk.")}
    missing = set(trained) - set(model.state_dict())
    if missing:
        raise FPTError(f"trunk.init={path}: tensors {sorted(missing)[:3]} do not fit the rebuilt trunk")
    model.load_state_dict(trained, strict=False)
    return model
