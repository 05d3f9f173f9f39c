"""Finding what a trunk is from its structure: its blocks, its freeze groups, its positions, and (by a probe
forward) whether it is causal and what its blocks return.

The rules, for any Hugging Face model:
- blocks: the outermost nn.ModuleList whose children are all one class (`h`, `encoder.layer`, `layers`,
  `decoder.layers`, `encoder.block`, ...); the longest if there are several;
- ln: every parameter a normalisation layer owns, wherever it sits (LayerNorm, RMSNorm, their per-model
  subclasses: any module whose class name ends in Norm);
- pos: learned position parameters: absolute tables (`wpe`, `position_embeddings`, OPT's `embed_positions`,
  ViT's table), learned relative biases or tables (`relative_attention_bias`, `rel_embeddings`, ...), and
  BERT-family `token_type_embeddings` (row 0 is added to every position). Rotary and ALiBi trunks have none;
- emb: the token table (`get_input_embeddings()`: `wte`, `embed_tokens`, `word_embeddings`, ViT's patch
  projection), and token rows such as ViT's `cls_token`, DeiT's `distillation_token`, DINOv2's `register_tokens`;
  never trained;
- attn: the rest of a block's attention sub-module (a module on the way whose attribute name holds attn /
  attention, or whose class name holds Attention / Attn, and the attention branch's layer scale: BEiT's `lambda_1`,
  DINOv2's `layer_scale1`); ffn: everything else inside a block (MLPs, experts,
  routers), and the linear maps between the embedding width and the hidden width outside the blocks
  (ELECTRA's `embeddings_project`, ALBERT's `embedding_hidden_mapping_in`, OPT's `project_in`/`project_out`);
- anything else outside the blocks is an error naming it: give the trunk a map with `trunk.groups`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from fpt.errors import FPTError
from fpt.config.groups import GROUPS
from fpt.trunks.spec import TrunkSpec

NORM_CLASS = re.compile(r"Norm(\dd)?$")  # LayerNorm, LlamaRMSNorm, T5LayerNorm, GemmaRMSNorm, BatchNorm1d, ...
ABSOLUTE_POS = {"wpe", "position_embeddings", "position_embedding", "embed_positions", "pos_embed", "pos_embedding"}
RELATIVE_POS = {"relative_attention_bias", "rel_embeddings", "distance_embedding", "relative_position_bias_table"}
TOKEN_TYPE = {"token_type_embeddings"}
TOKEN_ROWS = {"cls_token", "mask_token", "dist_token", "distillation_token", "register_tokens"}
PATCHES = {"patch_embeddings", "patch_embed", "patch_embedding"}
PROJECTIONS = {"embeddings_project", "embedding_hidden_mapping_in", "project_in", "project_out"}
ATTN_ATTR = re.compile(r"attn|attention", re.I)
ATTN_CLASS = re.compile(r"Attention|Attn")
ATTN_SCALE = {"lambda_1", "layer_scale1"}  # layer scale of the attention branch (BEiT, DINOv2); the FFN's is ffn
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
MAP_HINT = ("give the trunk a map: trunk.groups.GROUP=[REGEX,...] (re.fullmatch on parameter names; "
            "+trunk.groups.ffn='[name\\..*]' on the command line), or a hand map in fpt/trunks/")


def is_norm(module: nn.Module) -> bool:
    """A normalisation layer: torch's own, or any class whose name ends in Norm (LlamaRMSNorm, T5LayerNorm, ...)."""
    own = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.modules.batchnorm._BatchNorm)
    return isinstance(module, own) or bool(NORM_CLASS.search(type(module).__name__))


# --- blocks -------------------------------------------------------------------------------------------
def find_blocks(model: nn.Module) -> str:
    """Dotted path of the trunk's repeated blocks (see the module docstring); one-line error if there are none."""
    lists = [(name, m) for name, m in model.named_modules()
             if isinstance(m, nn.ModuleList) and len(m) and len({type(c) for c in m}) == 1
             and next(m.parameters(), None) is not None]
    outer = [(n, m) for n, m in lists if not any(n.startswith(o + ".") for o, _ in lists if o)]
    if not outer:
        raise FPTError(f"could not find the repeated blocks of this {type(model).__name__} trunk (no nn.ModuleList of "
                       f"same-class modules with weights); it needs a hand map in fpt/trunks/")
    name, _ = max(outer, key=lambda nm: (len(nm[1]), sum(p.numel() for p in nm[1].parameters())))
    return name


def block_list(model: nn.Module, blocks: str) -> nn.ModuleList:
    """The ModuleList at `blocks`."""
    return model.get_submodule(blocks)


def select_blocks(model: nn.Module, blocks: str, keep: Sequence[int]) -> nn.Module:
    """Keep exactly the blocks `keep` (pretrained indices), in that order; the config counts them."""
    parent_path, _, attr = blocks.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    old = getattr(parent, attr)
    setattr(parent, attr, nn.ModuleList([old[i] for i in keep]))
    config = model.config
    for key in LAYER_KEYS:  # models read their block count from the config (e.g. `self.layers[: num_hidden_layers]`)
        if isinstance(getattr(config, key, None), int) and getattr(config, key) == len(old):
            setattr(config, key, len(keep))
    types = getattr(config, "layer_types", None)  # per-block attention kinds (sliding / full) follow their blocks
    if isinstance(types, list) and len(types) == len(old):
        config.layer_types = [types[i] for i in keep]
    return model


def check_blocks(keep, total: int, key: str = "model.blocks") -> list[int]:
    """`keep` as a list of block indices in 0..total-1, none repeated; one-line errors otherwise."""
    items = list(keep)
    if not items:
        raise FPTError(f"{key}=[]: keep at least one block; this trunk has {total} (0..{total - 1})")
    for i in items:
        if isinstance(i, bool) or not isinstance(i, int):
            raise FPTError(f"{key}: '{i}' is not a block index; write e.g. {key}=[0,1,2]")
        if not 0 <= i < total:
            raise FPTError(f"{key}: block {i} is out of range; this trunk has {total} blocks (0..{total - 1})")
    if len(set(items)) != len(items):
        twice = next(i for i in items if items.count(i) > 1)
        raise FPTError(f"{key}: block {twice} is listed twice; each block can be kept once")
    return items


# --- groups -------------------------------------------------------------------------------------------
def _input_embedding_path(model: nn.Module) -> str | None:
    try:
        emb = model.get_input_embeddings()
    except (NotImplementedError, AttributeError):
        return None
    return next((n for n, m in model.named_modules() if m is emb), None)


def structure_groups(model: nn.Module, blocks: str, extra: Mapping[str, Sequence[str]] | None = None) -> dict[str, str]:
    """Every parameter name -> freeze group, by the rules above; `extra` (group -> regexes) is asked first."""
    extra = dict(extra or {})
    unknown = [g for g in extra if g not in GROUPS]
    if unknown:
        raise FPTError(f"trunk.groups names unknown group(s) {unknown}; known groups: {', '.join(GROUPS)}")
    modules = dict(model.named_modules())
    emb_path = _input_embedding_path(model)
    out = {}
    for name, _ in model.named_parameters():
        group = next((g for g, pats in extra.items() if any(re.fullmatch(p, name) for p in pats)), None)
        out[name] = group or _group(name, modules, blocks, emb_path)
        if out[name] is None:
            raise FPTError(f"parameter '{name}' of this {type(model).__name__} trunk is outside its blocks ({blocks}) "
                           f"and no rule claims it (norm, position, token table); {MAP_HINT}")
    return out


def _group(name: str, modules: dict[str, nn.Module], blocks: str, emb_path: str | None) -> str | None:
    parts = name.split(".")
    owner = modules[".".join(parts[:-1])]
    if is_norm(owner):
        return "ln"
    if {*parts} & (ABSOLUTE_POS | RELATIVE_POS | TOKEN_TYPE):
        return "pos"
    if (emb_path and (name.startswith(emb_path + ".") or name == emb_path)) or parts[-1] in TOKEN_ROWS or {*parts} & PATCHES:
        return "emb"
    if name.startswith(blocks + "."):
        inside = parts[len(blocks.split(".")) + 1 : -1]  # the attribute path from the block (excluded) to the owner
        path = f"{blocks}.{parts[len(blocks.split('.'))]}"
        chain = [modules[f"{path}.{'.'.join(inside[: i + 1])}"] for i in range(len(inside))]
        if any(ATTN_ATTR.search(a) for a in inside) or any(ATTN_CLASS.search(type(m).__name__) for m in chain) \
                or {*inside, parts[-1]} & ATTN_SCALE:
            return "attn"
        return "ffn"
    if {*parts} & PROJECTIONS:
        return "ffn"
    return None


def map_groups(names, group_map: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Every parameter name -> group by a hand map (regexes, re.fullmatch); an unclaimed name is an error."""
    from fpt.config.groups import assign_groups

    return assign_groups(names, group_map)


# --- positions ----------------------------------------------------------------------------------------
def positions(model: nn.Module, groups: Mapping[str, str], blocks: str) -> tuple[str, int | None, int | None]:
    """(kind, hard limit or None, pretrained context or None) of the trunk's position signal."""
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    limits = []
    for name, g in groups.items():
        parts = name.split(".")
        if g != "pos" or name.startswith(blocks + ".") or not {*parts} & ABSOLUTE_POS:
            continue
        owner = modules[".".join(parts[:-1])]
        if isinstance(owner, nn.Embedding):
            # RoBERTa-style tables start at padding_idx + 1; OPT's carries its own offset
            offset = getattr(owner, "offset", None)
            if not isinstance(offset, int):
                offset = owner.padding_idx + 1 if owner.padding_idx is not None else 0
            limits.append(owner.num_embeddings - offset)
        elif params[name].dim() == 3:  # (1, rows, h): ViT's table, row 0 for CLS
            limits.append(params[name].shape[1] - (1 if "cls_token" in {n.split(".")[-1] for n in params} else 0))
    trained = getattr(model.config, "max_position_embeddings", None)
    if limits:
        return "learned", min(limits), None
    if "pos" in groups.values():
        return "relative", None, None
    if any("Rotary" in type(m).__name__ for m in modules.values()):
        return "rotary", None, trained if isinstance(trained, int) else None
    if getattr(model.config, "alibi", False) or getattr(model.config, "position_embedding_type", None) == "alibi" \
            or model.config.model_type in ("bloom", "mpt"):
        return "alibi", None, None
    return "none", None, None


# --- the probe forward --------------------------------------------------------------------------------
def probe(model: nn.Module, forward, width: int, blocks: str, t: int = 4) -> dict:
    """Two short forwards in eval mode: whether position 0 moves when later tokens change (causal if not),
    what a block returns, the output width, and which parameters the forward never reaches (weights of leaf
    modules that never ran and get no gradient, e.g. Longformer's global-attention projections)."""
    block0 = block_list(model, blocks)[0]
    seen, returned, hooks = set(), [], []
    leaves = {n: m for n, m in model.named_modules() if not list(m.children()) and list(m.parameters(recurse=False))}
    for n, m in leaves.items():
        hooks.append(m.register_forward_hook(lambda mod, a, o, n=n: seen.add(n)))
    hooks.append(block0.register_forward_hook(lambda mod, a, o: returned.append(isinstance(o, torch.Tensor))))
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, t, width, generator=g).to(dtype)
    later = x.clone()
    later[:, 1:] = torch.randn(1, t - 1, width, generator=g).to(dtype)  # every token but the first changes
    mask = torch.ones(1, t, dtype=torch.bool)
    was = model.training
    model.eval()
    try:
        with torch.enable_grad():  # a graph over 4 tokens: tells a weight read directly (DeBERTa's rel_embeddings) from an unused one
            a = forward(model, x, mask)
        with torch.no_grad():
            b = forward(model, later, mask)
        canonical = {id(w): n for n, w in model.named_parameters()}  # tied weights (T5's embed_tokens) under one name
        suspects = list({id(w): (canonical[id(w)], w) for n, m in leaves.items() if n not in seen
                         for w in m.parameters(recurse=False) if w.requires_grad and id(w) in canonical}.values())
        grads = torch.autograd.grad(a.float().sum(), [w for _, w in suspects], allow_unused=True) if suspects and a.requires_grad else [None] * len(suspects)
    except Exception as e:  # a model that cannot run on embeddings: say so in one line
        raise FPTError(f"this {type(model).__name__} trunk could not run on task embeddings: "
                       f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    a, b = a.detach().float(), b.float()
    causal = bool(torch.allclose(a[:, 0], b[:, 0], rtol=1e-4, atol=1e-5 * (1 + float(a.abs().max()))))
    unused = tuple(n for (n, _), gr in zip(suspects, grads) if gr is None)
    return {"causal": causal, "block_output": "tensor" if all(returned) else "tuple", "hidden": int(a.shape[-1]), "unused": unused}


def input_width(model: nn.Module, hidden: int) -> int:
    """Width of the input embeddings: the token table's (ELECTRA, ALBERT, OPT-350m embed narrower), else hidden."""
    try:
        emb = model.get_input_embeddings()
    except (NotImplementedError, AttributeError):
        return hidden
    return int(emb.embedding_dim) if isinstance(emb, nn.Embedding) else hidden


def describe(model: nn.Module, arch, blocks: str, groups: Mapping[str, str], kept: Sequence[int], total: int,
             forward: str, width: int | None = None) -> TrunkSpec:
    """The TrunkSpec of a loaded trunk whose blocks are already selected."""
    from fpt.trunks.forward import FORWARDS

    hidden_guess = int(getattr(model.config, "hidden_size", 0) or 0)
    width = width or input_width(model, hidden_guess)
    seen = probe(model, FORWARDS[forward], width, blocks, t=4)
    kind, limit, trained = positions(model, groups, blocks)
    if forward == "longformer" and limit is not None:  # padded to a multiple of the window inside: stay within the table
        from fpt.trunks.forward import longformer_window

        limit -= limit % longformer_window(model.config)
    if forward == "vit":  # task tokens stand on the pretrained grid's patches (BEiT's relative bias has no table)
        from fpt.trunks.vision import image_limit

        limit = image_limit(model)
    never = tuple(n for n in seen["unused"] if groups.get(n) != "emb")  # the token table is never trained anyway
    return TrunkSpec(
        arch=arch.name, family=str(model.config.model_type), model_class=type(model).__name__,
        groups_from="hand map" if arch.groups is not None else "structure", blocks=blocks,
        n_blocks=len(block_list(model, blocks)), kept=tuple(kept), total_blocks=total, hidden=seen["hidden"],
        input_width=width, positions=kind, max_len=limit, trained_len=trained, causal=seen["causal"],
        block_output=seen["block_output"], forward=forward, unused=never,
    )
