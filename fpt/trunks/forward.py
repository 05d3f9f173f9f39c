"""How task embeddings go through a trunk: one module-level function per kind, chosen by name (TrunkSpec.forward).

- embeds: every Hugging Face model that takes `inputs_embeds` (GPT-2, BERT, T5, Llama, ...);
- vit: ViT-style image encoders (ViT, DeiT, BEiT, DINOv2; fpt/trunks/vision.py): the patch projection is
  bypassed. The encoder's own tokens (CLS; DeiT's distillation token; DINOv2's registers) are prepended with their
  pretrained position rows (the trunk sees what it was pretrained on) and their outputs dropped, so outputs line
  up with the task's tokens. Task token i takes patch i's position (row 1 + i of ViT's table): the grid is read
  as a sequence in raster order, so a task may be as long as the grid has patches (196 for ViT-B/16 at 224) and
  the positions train like any other table;
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
    """A ViT-style encoder on task embeddings: (b, t, h) -> (b, t, h), its own tokens prepended and dropped."""
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


# --- ViT-style image encoders (ViT, DeiT, BEiT, DINOv2): one forward, one row per family in fpt/trunks/vision.py --
def vit_outputs(model: nn.Module, x: torch.Tensor, mask: torch.Tensor, hidden_states: bool = False, attentions: bool = False):
    """The encoder's own tokens (CLS, ...) prepended, task tokens on the patch positions, the own tokens cut after."""
    from fpt.trunks.vision import image_outputs

    return image_outputs(model, x, mask, hidden_states=hidden_states, attentions=attentions)


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
