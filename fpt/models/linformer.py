"""Linformer baseline (paper 3.6, Table 7): a 3-layer Linformer trained from scratch.

The body is learned positions (`wpe`) + lucidrains' `linformer.Linformer` (pre-norm blocks of
low-rank self-attention and a GELU feed-forward) + a final layernorm (`ln_f`), between the same
input layer, readouts and output layer as FPT. Nothing is pretrained; `variant=linformer` trains
every tensor.

Padding. Linformer attention has no mask: each layer projects the t keys and values along the
sequence to k rows (`proj_k`, `proj_v`, sliced to the batch's t), so every position, pads included,
enters every compressed key and value. Forward hooks on each attention's `to_k` and `to_v` multiply
their outputs by the batch's (b, t, 1) mask, so a padded position adds zero to the compressed keys
and values. With right padding, an example's logits are then the same whatever its batch is padded
to (position i always meets rows i of the projections and of `wpe`).

Sizes. heads: 12 at hidden 768 (GPT-2 base's head size 64) and 12 at hidden 384 (MiniLM-L6's
head size 32), the transformers the baseline stands beside. `model.k` (the projected length, 256 as
in the package and the Linformer paper, at least 1) is capped at the sequence length: beyond it the
projection only adds rows. So on sequences no longer than k the (t, t) projection is full rank and
the Linformer's attention is no low-rank approximation: only tasks longer than k see the compression.

Axes: b batch, t tokens, h hidden size.
"""

from __future__ import annotations

import torch
from einops import rearrange
from linformer import Linformer
from pydantic import model_validator
from torch import nn

from fpt.errors import FPTError
from fpt.config.groups import assign_groups
from fpt.config.kinds import ModelKind
from fpt.config.schema import Count, CountOrNull, Dropout
from fpt.config.sections import ModelCommon, heads_divide_hidden
from fpt.models.wrapper import FPTModel, call_body, input_options
from fpt.tasks.spec import TaskSpec

# Anchored (re.fullmatch) patterns over LinformerBody parameter names. The package's blocks are
# net.net.layers.N.0 (PreNorm(attention)) and net.net.layers.N.1 (PreNorm(feed-forward)).
LINFORMER_GROUPS = {
    "attn": [r"net\.net\.layers\.\d+\.0\.fn\.(proj_k|proj_v|to_q\.weight|to_k\.weight|to_v\.weight|to_out\.(weight|bias))"],
    "ffn": [r"net\.net\.layers\.\d+\.1\.fn\.(w1|w2)\.(weight|bias)"],
    "ln": [r"net\.net\.layers\.\d+\.[01]\.norm\.(weight|bias)", r"ln_f\.(weight|bias)"],
    "pos": [r"wpe\.weight"],
}


class LinformerBody(nn.Module):
    """Positions + Linformer blocks + final layernorm over (b, t, h); pads add nothing to keys and values."""

    def __init__(self, hidden: int, seq_len: int, depth: int, heads: int, k: int, dropout: float = 0.0):
        super().__init__()
        self.wpe = nn.Embedding(seq_len, hidden)
        nn.init.normal_(self.wpe.weight, std=0.02)
        self.net = Linformer(hidden, seq_len, depth, k=k, heads=heads, dropout=dropout)
        self.ln_f = nn.LayerNorm(hidden)
        self._mask: torch.Tensor | None = None  # (b, t, 1), set for the length of one forward
        for attn, _ in self.net.net.layers:
            attn.fn.to_k.register_forward_hook(self._zero_pads)
            attn.fn.to_v.register_forward_hook(self._zero_pads)

    def _zero_pads(self, module: nn.Module, args, out: torch.Tensor) -> torch.Tensor:
        return out * self._mask  # (b, t, heads * head size): padded positions' keys/values become 0

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(b, t, h), mask (b, t) -> (b, t, h)."""
        self._mask = rearrange(mask, "b t -> b t 1").to(x.dtype)
        try:
            h = self.net(x + self.wpe(torch.arange(x.shape[1], device=x.device)))  # (b, t, h)
        finally:
            self._mask = None
        return self.ln_f(h)


def linformer_groups(body: LinformerBody) -> dict[str, str]:
    """Linformer parameter name -> freeze group (attn incl. sequence projections, ffn, ln, pos)."""
    return assign_groups((n for n, _ in body.named_parameters()), LINFORMER_GROUPS)


def build_linformer(cfg, spec: TaskSpec) -> FPTModel:
    """A Linformer body (`model.hidden`, `depth`, `heads`, `k`, `max_len`, `dropout`) inside the FPT wrapper."""
    mcfg = cfg.model  # checked by LinformerOptions when the config was composed
    hidden, depth, heads = int(mcfg.get("hidden", 768)), int(mcfg.get("depth", 3)), int(mcfg.get("heads", 12))
    k, dropout, max_len = int(mcfg.get("k", 256)), float(mcfg.get("dropout", 0.1)), mcfg.get("max_len")
    if max_len is not None and spec.seq_len > max_len:
        raise FPTError(f"model=linformer: the task has {spec.seq_len} tokens but model.max_len={max_len}; "
                       f"set model.max_len=null (the task's length) or at least {spec.seq_len}")
    seq_len = max_len or spec.seq_len
    body = LinformerBody(hidden, seq_len, depth, heads, min(k, seq_len), float(dropout))
    return FPTModel(spec, body, hidden, linformer_groups(body), call_body, mcfg.get("readout"), **input_options(mcfg))


class LinformerOptions(ModelCommon):
    hidden: Count = 768
    depth: Count = 3
    heads: Count = 12
    k: Count = 256  # the projected sequence length (Linformer paper: 256); full rank on tasks no longer than k
    max_len: CountOrNull = None
    dropout: Dropout = 0.1

    _heads_divide_hidden = model_validator(mode="after")(heads_divide_hidden)


LINFORMER = ModelKind("linformer", LinformerOptions, build_linformer, trunk=False, groups=tuple(LINFORMER_GROUPS))
