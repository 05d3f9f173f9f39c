"""How task embeddings go through a trunk: one module-level function per kind, chosen by name (TrunkSpec.forward).

- embeds: every Hugging Face model that takes `inputs_embeds` (GPT-2, BERT, T5, Llama, ...);
- vit: ViT's patch projection is bypassed. A [CLS] token with its pretrained position row 0 is prepended (the
  trunk sees what it was pretrained on: CLS, then a sequence of tokens) and its output dropped, so outputs line
  up with the task's tokens. Task token i gets row 1 + i of the position table: the table is read as a sequence
  in raster order (row by row of the patch grid), so a task may be as long as the grid has patches (196 for
  ViT-B/16 at 224) and the positions train like any other table;
- longformer: sequences are right-padded (zeros, masked out) to a multiple of the sliding window inside the
  wrapper, and the outputs cut back, so Hugging Face's own padding (which embeds pad ids) never runs.

Module-level functions pickle by name (ddp_spawn). `outputs` gives the analysis tools every layer's hidden
state (and attention maps), aligned with the task's positions, for any kind.

Axes: b batch, t tokens, h hidden size, n heads.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn


def embeds_forward(model: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(b, t, d) embeddings and (b, t) mask -> (b, t, h) last hidden states."""
    return model(inputs_embeds=x, attention_mask=mask).last_hidden_state


def vit_forward(model: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """ViT on task embeddings: (b, t, h) -> (b, t, h), CLS prepended and dropped."""
    return vit_outputs(model, x, mask).last_hidden_state


def longformer_forward(model: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Longformer, padded to its window inside: (b, t, h) -> (b, t, h)."""
    return longformer_outputs(model, x, mask).last_hidden_state


FORWARDS = {"embeds": embeds_forward, "vit": vit_forward, "longformer": longformer_forward}


def outputs(model: nn.Module, forward: str, x: torch.Tensor, mask: torch.Tensor, attentions: bool = False):
    """Every layer's hidden state (embeddings first, the last after the final norm) and, if asked, attention maps."""
    if forward == "vit":
        return vit_outputs(model, x, mask, hidden_states=True, attentions=attentions)
    if forward == "longformer":
        return longformer_outputs(model, x, mask, output_hidden_states=True, output_attentions=attentions)
    return model(inputs_embeds=x, attention_mask=mask, output_hidden_states=True, output_attentions=attentions)


# --- ViT ----------------------------------------------------------------------------------------------
def vit_limit(model: nn.Module) -> int:
    """Task tokens ViT can take: its position rows less the CLS row."""
    return model.embeddings.position_embeddings.shape[1] - 1


def vit_outputs(model: nn.Module, x: torch.Tensor, mask: torch.Tensor, hidden_states: bool = False, attentions: bool = False):
    """ViT's embeddings (CLS + positions + dropout), blocks and final norm on task embeddings, CLS cut from the outputs."""
    from transformers.masking_utils import create_bidirectional_mask

    emb = model.embeddings
    b, t, _ = x.shape
    cls = emb.cls_token.expand(b, -1, -1).to(x.dtype)  # (b, 1, h)
    h = emb.dropout(torch.cat([cls, x], 1) + emb.position_embeddings[:, : t + 1])  # (b, 1 + t, h)
    m = torch.cat([mask.new_ones(b, 1), mask], 1)  # CLS is always real
    am = create_bidirectional_mask(config=model.config, inputs_embeds=h, attention_mask=m)
    maps, hooks = [], []
    if attentions:  # ViTLayer drops its attention's weights: catch them on the way out
        hooks = [layer.attention.register_forward_hook(lambda mod, args, out: maps.append(out[1]))
                 for layer in model.layers if hasattr(layer, "attention")]
    states = [h]
    try:
        for layer in model.layers:
            h = layer(h, am)
            states.append(h)
    finally:
        for hook in hooks:
            hook.remove()
    last = model.layernorm(h)
    states[-1] = last  # the last hidden state after the final norm, as Hugging Face's text models return it
    return SimpleNamespace(
        last_hidden_state=last[:, 1:],
        hidden_states=tuple(s[:, 1:] for s in states) if hidden_states else None,
        attentions=tuple(a[:, :, 1:, 1:] for a in maps) if attentions else None,  # query and key CLS cut
    )


# --- Longformer ---------------------------------------------------------------------------------------
def longformer_window(config) -> int:
    """The widest attention window of any layer (what sequences must be a multiple of)."""
    w = config.attention_window
    return int(w if isinstance(w, int) else max(w))


def longformer_outputs(model: nn.Module, x: torch.Tensor, mask: torch.Tensor, **flags):
    """Pad to the window with masked zeros, run, and cut every output back to t positions."""
    t = x.shape[1]
    pad = -t % longformer_window(model.config)
    x = F.pad(x, (0, 0, 0, pad))  # (b, t + pad, h)
    mask = F.pad(mask.long(), (0, pad))  # 1: local attention, 0: padding (2 would be global: never used)
    out = model(inputs_embeds=x, attention_mask=mask, **flags)
    return SimpleNamespace(
        last_hidden_state=out.last_hidden_state[:, :t],
        hidden_states=tuple(s[:, :t] for s in out.hidden_states) if out.hidden_states is not None else None,
        attentions=tuple(a[:, :, :t] for a in out.attentions) if out.attentions is not None else None,  # (b, n, t, window)
    )
