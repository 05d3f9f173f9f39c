"""The "does the pretrained trunk matter?" ablations: the FPT model's input layer, readout and output layer around
less and less body, all trained from scratch.

- `model=no_trunk`: nothing in between: the readout reads the input layer's tokens (a bag of token embeddings
  for the mean readout, the last token alone for the last readout);
- `model=attn1`: one pre-norm self-attention layer (learned positions + LayerNorm + torch's MultiheadAttention,
  residual), no feed-forward;
- `model=block1`: one pre-norm transformer block (torch's TransformerEncoderLayer) with learned positions.

Widths default to MiniLM's (hidden 384, 12 heads), the trunk the CPU studies compare them with.
Axes: b batch, t tokens, h hidden size.
"""

from __future__ import annotations

import torch
from pydantic import model_validator
from torch import nn

from fpt.config.groups import assign_groups
from fpt.config.kinds import ModelKind
from fpt.config.schema import Count, Dropout
from fpt.config.sections import ModelCommon, heads_divide_hidden
from fpt.models.wrapper import FPTModel, input_options
from fpt.tasks.spec import TaskSpec

GROUPS = {
    "pos": [r"wpe\.weight"],
    "ln": [r"ln\.(weight|bias)", r"layer\.norm[12]\.(weight|bias)"],
    "attn": [r"attn\.(in_proj_weight|in_proj_bias|out_proj\.(weight|bias))",
             r"layer\.self_attn\.(in_proj_weight|in_proj_bias|out_proj\.(weight|bias))"],
    "ffn": [r"layer\.linear[12]\.(weight|bias)"],
}


class Nothing(nn.Module):
    """No body: (b, t, h) in, the same out."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x


class OneLayer(nn.Module):
    """Learned positions, then one pre-norm self-attention layer (`block=False`) or transformer block (`block=True`)."""

    def __init__(self, hidden: int, heads: int, seq_len: int, dropout: float, block: bool):
        super().__init__()
        self.wpe = nn.Embedding(seq_len, hidden)
        nn.init.normal_(self.wpe.weight, std=0.02)
        if block:
            self.layer = nn.TransformerEncoderLayer(hidden, heads, 4 * hidden, dropout, activation="gelu",
                                                    batch_first=True, norm_first=True)
        else:
            self.ln = nn.LayerNorm(hidden)
            self.attn = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(b, t, h), mask (b, t) -> (b, t, h); pads are masked out as keys."""
        x = x + self.wpe(torch.arange(x.shape[1], device=x.device))  # (b, t, h)
        pad = ~mask.bool()
        if hasattr(self, "layer"):
            return self.layer(x, src_key_padding_mask=pad)
        h = self.ln(x)
        return x + self.attn(h, h, h, key_padding_mask=pad, need_weights=False)[0]


def _forward(body: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return body(x, mask)


def _wrap(cfg, spec: TaskSpec, body: nn.Module) -> FPTModel:
    groups = assign_groups((n for n, _ in body.named_parameters()), GROUPS)
    return FPTModel(spec, body, int(cfg.model.hidden), groups, _forward, cfg.model.get("readout"), **input_options(cfg.model))


def build_no_trunk(cfg, spec: TaskSpec) -> FPTModel:
    """Input layer -> readout -> output layer."""
    return _wrap(cfg, spec, Nothing())


def build_attn1(cfg, spec: TaskSpec) -> FPTModel:
    """One self-attention layer from scratch between the input and output layers."""
    m = cfg.model
    return _wrap(cfg, spec, OneLayer(int(m.hidden), int(m.heads), spec.seq_len, float(m.dropout), block=False))


def build_block1(cfg, spec: TaskSpec) -> FPTModel:
    """One transformer block from scratch between the input and output layers."""
    m = cfg.model
    return _wrap(cfg, spec, OneLayer(int(m.hidden), int(m.heads), spec.seq_len, float(m.dropout), block=True))


class NoTrunkOptions(ModelCommon):
    hidden: Count = 384  # MiniLM's width


class OneLayerOptions(NoTrunkOptions):
    heads: Count = 12
    dropout: Dropout = 0.1

    _heads_divide_hidden = model_validator(mode="after")(heads_divide_hidden)


NO_TRUNK = ModelKind("no_trunk", NoTrunkOptions, build_no_trunk, trunk=False, note=(
    "no trunk: the input layer, the readout and the output layer alone. Every trunk row that does not beat it "
    "gains nothing from its trunk; the task's own layers reach this much."))
ATTN1 = ModelKind("attn1", OneLayerOptions, build_attn1, trunk=False, groups=tuple(GROUPS), note=(
    "1 attention layer (scratch): one self-attention layer trained from scratch. A pretrained trunk that does "
    "not beat it adds nothing that one fresh attention layer cannot learn."))
BLOCK1 = ModelKind("block1", OneLayerOptions, build_block1, trunk=False, groups=tuple(GROUPS), note=(
    "1 transformer block (scratch): one block trained from scratch, the smallest transformer. A frozen "
    "pretrained trunk should beat it with fewer trained values to show its pretraining matters."))
