"""ViT-style image encoders on task tokens (paper 3.2): one plain-data row per family, the one forward that serves
them all, and the image models FPT refuses, each with the reason.

A ViT-style encoder embeds an image as a flat sequence of patch tokens after a few learned tokens of its own and
keeps that length through every block. FPT bypasses the patch projection and puts the task's tokens in the patches'
place, and does the same for every family:
- the family's own tokens go first, as in pretraining: CLS (every family) and DeiT's distillation token, each with
  its pretrained position row (0, and 1 for DeiT); DINOv2-with-registers' register tokens follow them with no
  position row, as DINOv2's own forward places them. They are learned rows kept as a frozen prefix (group emb: never
  trained); their outputs are cut, so outputs line up with the task's tokens and the task's readout
  (fpt/trunks/readout.py) reads task positions only; no pooler is built (no CLS readout);
- task token i stands where patch i stands, in raster order of the pretrained grid: absolute row (prefix + i) of the
  table (ViT, DeiT, DINOv2, BEiT with use_absolute_position_embeddings; DINOv2's table is read at its pretrained
  grid, never interpolated) and, in BEiT, the relative position bias (each block's and the shared one) restricted
  to the prefix and the first t patches; a task may be as long as the grid has patches (`image_limit`);
- layer scale (BEiT's lambda_1 / lambda_2, DINOv2's layer_scale1 / layer_scale2) belongs to the sub-layer it scales
  (attn / ffn: fpt/trunks/discover.py);
- BEiT with use_mean_pooling (its pretrained checkpoints) has no final norm on its tokens: that norm sits in its
  pooler, which FPT does not build, so the last block's states reach the readout as they are.

Axes: b batch, t task tokens, k the encoder's own leading tokens, h hidden size, n heads.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import nn

from fpt.errors import FPTError


@dataclass(frozen=True)
class ImageEncoder:
    """Where one family keeps what the task-token forward needs: attribute names, no callables."""

    prefix: tuple[str, ...] = ("cls_token",)  # embeddings.<name>: tokens before the task's, each with a position row
    registers: str | None = None  # embeddings.<name>: tokens after the prefix, no position row (DINOv2 registers)
    blocks: str = "layers"  # dotted path of the blocks
    block_bias: str | None = None  # block.<name>: each block's relative position bias (a block may have none)
    shared_bias: str | None = None  # model.<name>: one relative position bias all blocks add (a model may have none)
    block_kwargs: tuple[str, ...] = ()  # keyword arguments the blocks need: "resolution" (BEiT's bias reads the grid)


# config.model_type -> its layout (transformers 5 names); a new ViT-style family is one row here and one in the tests
IMAGE_ENCODERS = {
    "vit": ImageEncoder(),
    "deit": ImageEncoder(prefix=("cls_token", "distillation_token")),
    "beit": ImageEncoder(block_bias="relative_position_bias", shared_bias="shared_position_bias", block_kwargs=("resolution",)),
    "dinov2": ImageEncoder(blocks="encoder.layer"),
    "dinov2_with_registers": ImageEncoder(registers="register_tokens", blocks="encoder.layer"),
}
SUPPORTED = ", ".join(IMAGE_ENCODERS)
HIERARCHICAL = ("merges patches between stages (a hierarchical encoder): its token count changes inside the trunk, "
                "so task tokens cannot pass through it")
CONVOLUTIONAL = "is a convolutional network over a pixel grid, not a transformer over tokens: task tokens cannot pass through it"
# image models FPT cannot run, by model_type -> why; any other model that reads only pixels is refused too
REFUSED = {
    **{t: HIERARCHICAL for t in ("swin", "swinv2", "donut-swin", "maskformer-swin", "pvt", "pvt_v2", "focalnet",
                                 "hiera", "dinat", "nat")},
    **{t: CONVOLUTIONAL for t in ("convnext", "convnextv2", "resnet", "regnet", "bit", "efficientnet", "mobilenet_v1",
                                  "mobilenet_v2")},
}


def refuse_image_model(config, cls) -> None:
    """A one-line FPTError if `cls` is an image model with no task-token path (Swin, ConvNeXt, ...); else nothing."""
    kind = config.model_type
    if kind in IMAGE_ENCODERS:
        return
    params = inspect.signature(cls.forward).parameters
    why = REFUSED.get(kind) or ("reads images (pixel_values), not token embeddings, and FPT has no task-token path for it"
                                if "pixel_values" in params and not {"inputs_embeds", "input_ids"} & set(params) else None)
    if why:
        raise FPTError(f"trunk=auto: {cls.__name__} (model_type {kind}) {why}; use a ViT-style image encoder "
                       f"({SUPPORTED}) or a text trunk")


def image_limit(model: nn.Module) -> int:
    """Task tokens a ViT-style encoder can take: the patches of its pretrained grid."""
    return int(model.embeddings.patch_embeddings.num_patches)


def _embed(model: nn.Module, enc: ImageEncoder, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(prefix + registers + task tokens with their positions, after the embedding dropout; k leading tokens)."""
    emb = model.embeddings
    b, t, _ = x.shape
    prefix = [getattr(emb, name).expand(b, -1, -1).to(x.dtype) for name in enc.prefix]  # (b, 1, h) each
    h = torch.cat([*prefix, x], 1)  # (b, p + t, h)
    if getattr(emb, "position_embeddings", None) is not None:  # BEiT may have only relative positions
        h = h + emb.position_embeddings[:, : h.shape[1]]
    if enc.registers:  # after the positions, between the prefix and the task: DINOv2's own order
        reg = getattr(emb, enc.registers).expand(b, -1, -1).to(x.dtype)  # (b, r, h)
        h = torch.cat([h[:, : len(prefix)], reg, h[:, len(prefix):]], 1)
    return emb.dropout(h), h.shape[1] - t


def _mask(model: nn.Module, enc: ImageEncoder, h: torch.Tensor, m: torch.Tensor):
    """The blocks' attention mask; with a relative bias, additive floats the bias can be added to (b, n, T, T)."""
    from transformers.masking_utils import create_bidirectional_mask

    if enc.block_bias is None:
        return create_bidirectional_mask(config=model.config, inputs_embeds=h, attention_mask=m)
    am = torch.zeros(m.shape[0], 1, 1, m.shape[1], dtype=h.dtype, device=h.device)
    am = am.masked_fill(~m.bool()[:, None, None, :], torch.finfo(h.dtype).min)  # (b, 1, 1, T)
    shared = getattr(model, enc.shared_bias, None) if enc.shared_bias else None
    if shared is not None:
        am = am + shared(_grid(model), dim_size=h.shape[1]).to(h.dtype)  # (b, n, T, T): crop_bias cut it
    return am


def _grid(model: nn.Module) -> tuple[int, int]:
    """The pretrained patch grid (rows, columns)."""
    size = model.config.image_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    return size[0] // model.config.patch_size, size[1] // model.config.patch_size


def crop_bias(module: nn.Module, args, kwargs, out: torch.Tensor) -> torch.Tensor:
    """Forward hook on a relative bias: the whole grid's (1, n, N + 1, N + 1) -> the dim_size tokens present (no-op on
    images). Module-level and left in place: it pickles (ddp_spawn), and grad checkpointing's recomputation keeps it."""
    size = kwargs.get("dim_size")
    return out[..., :size, :size] if size is not None else out


def _crop_biases(model: nn.Module, enc: ImageEncoder, blocks) -> None:
    """Hook `crop_bias` on every relative bias module of the trunk, once."""
    owners = [(b, enc.block_bias) for b in blocks] + [(model, enc.shared_bias)]
    for owner, name in owners:
        bias = getattr(owner, name, None) if name else None
        if bias is not None and crop_bias not in bias._forward_hooks.values():
            bias.register_forward_hook(crop_bias, with_kwargs=True)


def _catch_maps(blocks, maps: list) -> list:
    """Hooks that catch each block's attention maps (the blocks drop them)."""
    return [b.attention.register_forward_hook(lambda mod, args, out: maps.append(out[1])) for b in blocks if hasattr(b, "attention")]


def image_outputs(model: nn.Module, x: torch.Tensor, mask: torch.Tensor, hidden_states: bool = False,
                  attentions: bool = False):
    """A ViT-style encoder on task embeddings (b, t, h): every output with the encoder's own k tokens cut."""
    enc = IMAGE_ENCODERS[model.config.model_type]
    blocks = model.get_submodule(enc.blocks)
    _crop_biases(model, enc, blocks)
    h, k = _embed(model, enc, x)  # (b, k + t, h)
    m = torch.cat([mask.new_ones(x.shape[0], k), mask], 1)  # the encoder's own tokens are always real
    am = _mask(model, enc, h, m)
    kwargs = {"resolution": tuple(model.config.patch_size * g for g in _grid(model))} if "resolution" in enc.block_kwargs else {}
    maps = []
    hooks = _catch_maps(blocks, maps) if attentions else []
    states = [h]
    try:
        for block in blocks:
            h = block(h, am, **kwargs)
            states.append(h)
    finally:
        for hook in hooks:
            hook.remove()
    states[-1] = model.layernorm(h)  # after the final norm, as Hugging Face's text models return it (BEiT: maybe none)
    return SimpleNamespace(
        last_hidden_state=states[-1][:, k:],
        hidden_states=tuple(s[:, k:] for s in states) if hidden_states else None,
        attentions=tuple(a[:, :, k:, k:] for a in maps) if attentions else None,  # query and key rows of the prefix cut
    )
