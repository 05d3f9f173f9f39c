"""Loading a trunk: weights (pretrained, random, stats, standardized, or a toolkit run's), the blocks it keeps,
its freeze groups (hand map or structure) and its TrunkSpec."""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from fpt.errors import FPTError
from fpt.config.kinds import has_trunk
from fpt.config.schema import is_run_path
from fpt.trunks.base import Arch, dropout_overrides
from fpt.trunks.fused import fuse_gelu
from fpt.trunks.given import given
from fpt.trunks.discover import (RELATIVE_POS, block_list, check_blocks, describe, find_blocks, map_groups,
                                 select_blocks, structure_groups)
from fpt.trunks.registry import get_arch
from fpt.trunks.spec import TrunkSpec
from fpt.trunks.source import hub_hint, require_hub, resolve_source
from fpt.trunks.vision import IMAGE_ENCODERS, refuse_image_model

ENCODERS = {"t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel"}  # encoder-decoders: the encoder
# AutoModel trunks that need their own forward: ViT-style image encoders (fpt/trunks/vision.py), Longformer
FORWARD_BY_TYPE = {**dict.fromkeys(IMAGE_ENCODERS, "vit"), "longformer": "longformer"}


@dataclass
class Trunk:
    """A loaded trunk: the Hugging Face module, its TrunkSpec, and every parameter name's freeze group."""

    model: nn.Module
    spec: TrunkSpec
    groups: dict[str, str]


def build_trunk(tcfg, mcfg=None) -> Trunk:
    """The trunk `trunk.*` names, cut to `model.blocks` / `model.depth`, described."""
    arch = get_arch(str(tcfg.arch))
    extra = _extra_groups(tcfg, arch)
    keep_cfg = _keep_option(mcfg)  # checked before the weights load
    model = load_trunk(tcfg, arch)
    blocks = arch.blocks or find_blocks(model)
    total = len(block_list(model, blocks))
    if keep_cfg and keep_cfg[0] == "model.depth" and len(keep_cfg[1]) > total:
        raise FPTError(f"model.depth={len(keep_cfg[1])}: this trunk has {total} blocks; choose 1..{total}")
    keep = check_blocks(keep_cfg[1], total, keep_cfg[0]) if keep_cfg else list(range(total))
    if keep != list(range(total)):
        _note_lost_positions(model, blocks, keep)
        select_blocks(model, blocks, keep)
    names = [n for n, _ in model.named_parameters()]
    groups = map_groups(names, arch.groups) if arch.groups is not None else structure_groups(model, blocks, extra)
    forward = FORWARD_BY_TYPE.get(model.config.model_type, "embeds") if arch.model_class is None else arch.forward
    return Trunk(model, describe(model, arch, blocks, groups, keep, total, forward), groups)


def _keep_option(mcfg) -> tuple[str, list] | None:
    """('model.blocks', [..]) or ('model.depth', range) from the model config, types checked; None: every block."""
    if mcfg is None:
        return None
    blocks, depth = mcfg.get("blocks"), mcfg.get("depth")
    if blocks is not None and depth is not None:
        raise FPTError(f"model.blocks={list(blocks)} and model.depth={depth}: set one (model.depth=N is model.blocks=[0..N-1])")
    if blocks is not None:
        items = list(blocks) if OmegaConf.is_list(blocks) or isinstance(blocks, (list, tuple)) else [blocks]
        check_blocks(items, 10**9)  # types and repeats now, the range once the trunk is loaded
        return "model.blocks", items
    if depth is not None:  # a positive integer: fpt.models.build.FPTModelOptions
        return "model.depth", list(range(depth))
    return None


def _note_lost_positions(model: nn.Module, blocks: str, keep: list[int]) -> None:
    """T5 computes its relative position bias in block 0 only: a selection without it has no positions."""
    holders = [i for i, b in enumerate(block_list(model, blocks))
               if any({*n.split(".")} & RELATIVE_POS for n, _ in b.named_parameters())]
    if holders and not set(holders) & set(keep):
        print(f"note: the kept blocks {keep} leave out block(s) {holders}, the only ones holding this trunk's learned "
              f"relative positions: no kept block adds positions", file=sys.stderr)


def _extra_groups(tcfg, arch: Arch) -> dict:
    extra = tcfg.get("groups") or {}
    if extra and arch.groups is not None:
        raise FPTError(f"trunk.groups adds patterns to trunks whose groups are found from the structure (trunk=auto, vit, "
                       f"longformer); trunk.arch={arch.name} has a hand map in fpt/trunks/{arch.name}.py")
    out = OmegaConf.to_container(extra) if OmegaConf.is_config(extra) else dict(extra)
    return {g: [pats] if isinstance(pats, str) else list(pats) for g, pats in out.items()}


def load_trunk(cfg, arch: Arch | None = None) -> nn.Module:
    """Build the trunk that `cfg` names: pretrained weights, or the same architecture freshly initialised (or, inside
    fpt.trunks.given.given_trunk(model), that loaded model); in train mode (from_pretrained returns eval mode; dropout,
    trunk.dropout, applies in training), its GELU fused unless trunk.fused_gelu=false."""
    model = given(cfg)
    if model is None:
        model = _build(cfg, arch or get_arch(str(cfg.arch)))
    if cfg.get("fused_gelu", True):
        fuse_gelu(model)
    return model.train()


def _build(cfg, arch: Arch) -> nn.Module:
    """The trunk's modules and weights: from a toolkit run, pretrained, or freshly initialised."""
    init = str(cfg.get("init", "pretrained"))
    if is_run_path(init):  # trunk.init's values are checked by fpt.config.sections.Trunk
        return from_run(init, arch.name)
    _quiet_transformers()
    src, local = resolve_source(cfg)
    config = _config(src, local, arch, cfg, offline_ok=init == "random")
    cls = model_class(arch, config)
    kwargs = {**_pooling_kwargs(cls), **arch.load_kwargs}
    if init == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(cfg.get("init_seed", 0)))
            model = cls(config, **kwargs)
        if cfg.get("keep"):  # pretrained pieces (e.g. positions) in the fresh trunk
            _keep(model, cls, src, local, config, kwargs, arch, cfg)
    else:
        model = _from_pretrained(cls, src, local, config, kwargs)
        if init == "stats":
            from fpt.trunks.init import stats_only

            stats_only(model, int(cfg.get("init_seed", 0)))
        elif init == "standardized":
            from fpt.trunks.init import standardize

            blocks = arch.blocks or find_blocks(model)
            names = [n for n, _ in model.named_parameters()]
            groups = map_groups(names, arch.groups) if arch.groups is not None else structure_groups(model, blocks, _extra_groups(cfg, arch))
            standardize(model, groups, [g for g in cfg.get("standardize") or ["pos"] if g != "input"])  # input: fpt/models/input_init.py
    if hasattr(model.config, "use_cache"):  # no key/value cache: FPT never generates, and kept blocks renumber
        model.config.use_cache = False
    return model


def _from_pretrained(cls, src: str, local: bool, config, kwargs: dict) -> nn.Module:
    """The pretrained weights from a local folder or the hub; one-line errors with the way out."""
    if not local:
        require_hub(src)
    try:
        return cls.from_pretrained(src, config=config, **kwargs)
    except (OSError, ValueError) as e:
        raise FPTError(hub_hint(src, local, e)) from None


def _keep(model, cls, src: str, local: bool, config, kwargs: dict, arch: Arch, cfg) -> None:
    """trunk.keep: copy these groups' pretrained tensors into the fresh `model`; trunk.standardize rescales them."""
    from fpt.trunks.init import keep_pretrained, standardize

    pretrained = _from_pretrained(cls, src, local, config, kwargs)
    blocks = arch.blocks or find_blocks(model)
    names = [n for n, _ in model.named_parameters()]
    groups = map_groups(names, arch.groups) if arch.groups is not None else structure_groups(model, blocks, _extra_groups(cfg, arch))
    keep_pretrained(model, pretrained, groups, list(cfg.keep))
    if cfg.get("standardize_kept"):
        standardize(model, groups, [g for g in cfg.get("standardize") or ["pos"] if g in cfg.keep])


def model_class(arch: Arch, config):
    """The transformers class to build: the arch's own, the encoder of a T5-family model, or AutoModel's base model."""
    import transformers

    if arch.model_class is not None:
        return getattr(transformers, arch.model_class)
    if config.model_type in ENCODERS:
        return getattr(transformers, ENCODERS[config.model_type])
    if getattr(config, "is_encoder_decoder", False):
        raise FPTError(f"trunk=auto: '{config.model_type}' is an encoder-decoder; FPT uses the encoder of the T5 family "
                       f"({', '.join(ENCODERS)}) only")
    from transformers import MODEL_MAPPING

    try:
        cls = MODEL_MAPPING[type(config)]
    except KeyError:
        raise FPTError(f"trunk=auto: transformers has no base model for model_type '{config.model_type}'") from None
    refuse_image_model(config, cls)  # Swin, ConvNeXt, ...: before any weights load
    return cls


def _pooling_kwargs(cls) -> dict:
    """Poolers are not part of the trunk (and, trainable but unused, DDP rejects them): leave them out where the class lets."""
    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return {}
    return {"add_pooling_layer": False} if "add_pooling_layer" in params else {}


def _quiet_transformers() -> None:
    """The load report lists e.g. BERT's pooler, which FPT leaves out on purpose; errors still show."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _config(src: str, local: bool, arch: Arch, cfg=None, offline_ok: bool = True):
    """The trunk's config with trunk.dropout / trunk.attn_dropout applied: a known hub id's without a download."""
    import transformers

    if not local and offline_ok and src in arch.known_configs:  # the architecture is known: no download needed
        config = getattr(transformers, arch.model_class).config_class(**arch.known_configs[src])
    else:
        if not local:
            require_hub(src)
        try:
            config = transformers.AutoConfig.from_pretrained(src)
        except (OSError, ValueError, KeyError) as e:
            raise FPTError(hub_hint(src, local, e)) from None
    if arch.model_class is not None:
        want = getattr(transformers, arch.model_class).config_class.model_type
        if want and config.model_type != want and not (arch.name == "t5" and config.model_type in ENCODERS):
            raise FPTError(f"trunk.arch={arch.name} expects a '{want}' model, but {src} holds a '{config.model_type}' one; "
                           f"trunk=auto loads any architecture")
    for key, value in (dropout_overrides(cfg, arch, config) if cfg is not None else {}).items():
        setattr(config, key, value)
    return config


def from_run(path: str, arch_name: str) -> nn.Module:
    """The trunk a toolkit run trained: its own trunk config rebuilt (with the blocks it kept), its trained tensors loaded."""
    from fpt.checkpoint import load_checkpoint
    from fpt.config.trust import check_trusted

    p = Path(path).expanduser()
    ckpt = load_checkpoint(p / "checkpoints" / "best.ckpt" if p.is_dir() else p)
    src = ckpt["fpt"]["config"]
    check_trusted(src, p)
    if not has_trunk(src["model"]["kind"]) or src["trunk"]["arch"] != arch_name:
        raise FPTError(f"trunk.init={path}: that run trained a {src['model']['kind']}/{src['trunk'].get('arch')} model, not a {arch_name} trunk")
    model = load_trunk(OmegaConf.create(src["trunk"]))
    trained = {k.removeprefix("model.trunk."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.trunk.")}
    trained = _renumber(trained, model, src)
    missing = set(trained) - set(model.state_dict())
    if missing:
        raise FPTError(f"trunk.init={path}: tensors {sorted(missing)[:3]} do not fit the rebuilt trunk")
    model.load_state_dict(trained, strict=False)
    return model


def _renumber(trained: dict, model: nn.Module, src: dict) -> dict:
    """Names of a run that kept some blocks (model.blocks) back to the pretrained block numbers."""
    keep = (src.get("model") or {}).get("blocks")
    if not keep:
        return trained  # all blocks, or model.depth (the first N: the numbers already agree)
    blocks = get_arch(src["trunk"]["arch"]).blocks or find_blocks(model)
    head = blocks + "."
    out = {}
    for k, v in trained.items():
        if k.startswith(head):
            i, _, rest = k[len(head):].partition(".")
            k = f"{head}{keep[int(i)]}.{rest}"
        out[k] = v
    return out
