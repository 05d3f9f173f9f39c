"""Only the work the readout reads: the final block computed at the read positions alone.

With the `last` or `last_k` readout, the output layer reads a few positions of the last block's output.
The final block's keys and values still need every position, but its queries, attention output,
feed-forward and residuals are needed only where the readout reads. `install` replaces the forward of the
trunk's last block (an instance attribute: parameter names, freeze groups and checkpoints unchanged) by
one that computes exactly that, from the block's own modules, with the same weights, scaling, dropout and
masks; it returns the other positions unchanged (their values are never read). Supported: GPT2Block and
BertLayer (GPT-2, BERT, MiniLM, by their hand maps or by trunk=auto); other trunks keep the whole block.
Hidden states of the last layer at unread positions are therefore not the block's output: the analysis tools
turn this off (model.last_block_reads_only=false).

Axes: b batch, t tokens, q read positions per example, n heads, d head size, h hidden size.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def _gather(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """(b, t, h), (b, q) -> (b, q, h)."""
    return torch.gather(x, 1, pos[..., None].expand(-1, -1, x.shape[-1]))


def _scatter(x: torch.Tensor, pos: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """x with rows (b, q, h) written at positions pos (b, q); other positions as they were."""
    return x.scatter(1, pos[..., None].expand(-1, -1, x.shape[-1]), rows.to(x.dtype))


def _attend(q, k, v, allowed, dropout: float, scale: float) -> torch.Tensor:
    """(b, n, q, d) queries over (b, n, t, d) keys/values where allowed (b, 1, q, t) -> (b, q, n*d)."""
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout, scale=scale)
    return rearrange(out, "b n q d -> b q (n d)")


def gpt2_block(block: nn.Module, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """GPT2Block at the read positions only (causal: a query at position p sees keys j <= p that are real)."""
    read = getattr(block, "_fpt_read", None)
    if read is None:
        return type(block).forward(block, hidden_states, *args, **kwargs)
    pos, key_mask = read
    attn, h = block.attn, block.attn.embed_dim
    x = block.ln_1(hidden_states)  # (b, t, h): every position's keys and values
    w, bias = attn.c_attn.weight, attn.c_attn.bias  # Conv1D: y = x @ w + bias, w (h, 3h)
    q = _gather(x, pos) @ w[:, :h] + bias[:h]  # (b, q, h)
    k, v = (x @ w[:, h:] + bias[h:]).split(h, dim=-1)  # (b, t, h) each
    q, k, v = (rearrange(z, "b s (n d) -> b n s d", n=attn.num_heads) for z in (q, k, v))
    t = hidden_states.shape[1]
    allowed = (torch.arange(t, device=pos.device)[None, None] <= pos[..., None]) & key_mask[:, None]  # (b, q, t)
    ctx = _attend(q, k, v, allowed[:, None], attn.attn_dropout.p if attn.training else 0.0, attn.scaling)
    rows = _gather(hidden_states, pos) + attn.resid_dropout(attn.c_proj(ctx))
    rows = rows + block.mlp(block.ln_2(rows))
    return _scatter(hidden_states, pos, rows)


def bert_layer(layer: nn.Module, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """BertLayer (post-norm) at the read positions only (a query sees every real key)."""
    read = getattr(layer, "_fpt_read", None)
    if read is None:
        return type(layer).forward(layer, hidden_states, *args, **kwargs)
    pos, key_mask = read
    sa = layer.attention.self
    inp = _gather(hidden_states, pos)  # (b, q, h)
    q = rearrange(sa.query(inp), "b s (n d) -> b n s d", d=sa.attention_head_size)
    k, v = (rearrange(m(hidden_states), "b s (n d) -> b n s d", d=sa.attention_head_size) for m in (sa.key, sa.value))
    ctx = _attend(q, k, v, key_mask[:, None, None, :], sa.dropout.p if sa.training else 0.0, sa.scaling)
    attn_out = layer.attention.output(ctx, inp)  # dense, dropout, LayerNorm(+ input)
    return _scatter(hidden_states, pos, layer.output(layer.intermediate(attn_out), attn_out))


FORWARDS = {"GPT2Block": gpt2_block, "BertLayer": bert_layer}  # by block class: hand-mapped or trunk=auto alike


def install(last_block: nn.Module) -> bool:
    """Give `last_block` the read-positions-only forward of its class; False if there is none (the whole block runs)."""
    fn = FORWARDS.get(type(last_block).__name__)
    if fn is None or getattr(getattr(last_block, "attn", None), "reorder_and_upcast_attn", False):
        return False
    last_block.forward = functools.partial(fn, last_block)  # a partial pickles (ddp_spawn); a bound method would not
    last_block._fpt_read = None
    return True
