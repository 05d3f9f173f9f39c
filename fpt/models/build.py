"""Building the models: `model.kind` -> its registered entry's builder (fpt/config/kinds.py, fpt/models/registry.py);
the FPT model kind itself (its options, builder and entry): a Hugging Face trunk.

The wrapper itself (FPTModel: input layer -> body -> readout -> output layer) lives in fpt/models/wrapper.py, which the
baselines import too; it is re-exported here.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Annotated, Union

import torch
from pydantic import Field

from fpt.errors import FPTError
from fpt.config.groups import parse_freeze
from fpt.models.freeze import apply_freeze, unfreeze_blocks
from fpt.config.kinds import ModelKind, freeze_of, has_trunk, kind
from fpt.config.schema import CountOrNull, Flag, choice
from fpt.config.sections import ModelCommon
from fpt.models.wrapper import INPUT_DROPOUT, INPUT_GAIN, BodyForward, FPTModel, input_options
from fpt.tasks.spec import TaskSpec

__all__ = ["BodyForward", "FPTModel", "INPUT_DROPOUT", "INPUT_GAIN", "build_fpt", "build_model", "input_options"]


class FPTModelOptions(ModelCommon):
    blocks: Annotated[Union[list[int], int, None], Field(description="a list of block indices ([0,1,2]) or null")] = None
    depth: CountOrNull = None  # only the first N blocks
    grad_checkpointing: Flag = False
    last_block_reads_only: Flag = True
    input_init: choice("default", "trunk_tokens") = "default"  # trunk_tokens: a vocabulary's Embedding from the trunk's token rows


def build_model(cfg, spec: TaskSpec) -> FPTModel:
    """The model `cfg.model.kind` names, built for `spec`, with its freeze groups applied (fpt.config.kinds.freeze_of)."""
    name = str(cfg.model.kind)
    model = kind(name).builder(cfg, spec)
    groups = model.param_groups()
    # a group this trunk lacks (pos on a rotary trunk) is a note; on a baseline it stays an error
    apply_freeze(model, groups, freeze_of(cfg), absent="note" if has_trunk(name) else "error", never=model.never_trained)
    unfreeze = cfg.get("unfreeze") or {}
    if unfreeze.get("groups"):
        if not has_trunk(name):
            raise FPTError(f"unfreeze.* selects transformer blocks of a pretrained trunk; it does not apply to model.kind={name}")
        unfreeze_blocks(model, groups, parse_freeze(unfreeze["groups"]), unfreeze.get("last"), model.blocks, never=model.never_trained)
    model.fixed_features = model.trained_groups() == {"output"}
    model.train(model.training)
    if cfg.model.get("compile"):  # torch.compile in place: parameter names, freeze groups and checkpoints stay the same
        model.trunk.compile()
    return model


def build_fpt(cfg, spec: TaskSpec) -> FPTModel:
    """A Hugging Face trunk (trunk.*), cut to model.blocks / model.depth, between the task's input and output layers."""
    from fpt.config.methods import peft_method
    from fpt.models.adapters import add_adapters, renamed
    from fpt.models.input_init import apply_input_init
    from fpt.trunks import build_trunk
    from fpt.trunks.forward import FORWARDS
    from fpt.trunks.readout import install

    built = build_trunk(cfg.trunk, cfg.model)
    trunk, ts = built.model, built.spec
    if cfg.model.get("grad_checkpointing"):  # recompute block activations in backward: memory for compute
        _grad_checkpointing(trunk)
    spec = _fit_positions(cfg, spec, trunk, ts)
    pcfg = cfg.get("peft") or {}
    groups = add_adapters(trunk, built.groups, pcfg, skip=ts.unused)  # peft.method: LoRA, IA3, LN tuning, BitFit
    model = FPTModel(spec, trunk, ts.hidden, groups, FORWARDS[ts.forward], cfg.model.get("readout"),
                     input_width=ts.input_width, **input_options(cfg.model))
    apply_input_init(model, cfg)  # model.input_init=trunk_tokens: the Embedding from the trunk's own token rows
    model.blocks = f"trunk.{ts.blocks}"
    model.trunk_spec = ts
    model.never_trained = frozenset(f"trunk.{n}" for n in renamed(ts.unused, groups))
    injected = peft_method(str(pcfg.get("method") or "none")).injects  # the read-positions forward calls weights, not PEFT's layers
    if model.readout in ("last", "last_k") and cfg.model.get("last_block_reads_only", True) and not injected:
        last = model.get_submodule(model.blocks)[-1]
        if install(last):  # a plain attribute, not a second registration of the block's parameters
            object.__setattr__(model, "read_block", last)
    return model


def _fit_positions(cfg, spec: TaskSpec, trunk, ts) -> TaskSpec:
    """The task's spec cut to the trunk's positions (when it may be cut; else refused), with a note on slow attention."""
    from fpt.trunks import get_arch
    from fpt.trunks.base import attn_dropout

    p_attn = attn_dropout(trunk, get_arch(ts.arch))
    if spec.seq_len >= 512 and not torch.cuda.is_available() and p_attn > 0:
        print(f"note: attention dropout {p_attn:g} keeps torch's fused attention off on CPU, so every "
              f"layer stores its heads x {spec.seq_len}^2 attention map; trunk.attn_dropout=0 turns the fused kernel on",
              file=sys.stderr)
    limit = ts.max_len
    if limit is not None and spec.seq_len > limit and spec.truncatable:
        print(f"note: sequences cut from {spec.seq_len} to the trunk's {limit} positions", file=sys.stderr)
        spec = replace(spec, seq_len=limit)
    elif limit is not None and spec.seq_len > limit:
        name = cfg.trunk.get("name") or cfg.trunk.get("path")
        raise FPTError(
            f"the task has {spec.seq_len} tokens but trunk '{name}' has {limit} positions; "
            f"shorten the task's sequences or choose a trunk with more positions"
        )
    return spec


def _grad_checkpointing(trunk) -> None:
    try:
        if hasattr(trunk, "activation_checkpointing_enable"):  # transformers >= 5.x; the old name is deprecated there
            trunk.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            trunk.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    except ValueError as e:
        raise FPTError(f"model.grad_checkpointing: {type(trunk).__name__} does not support it ({str(e).splitlines()[0]})") from None


# the trunk's own groups (attn, ffn, ln, pos, emb) and PEFT's (adapter, bias)
FPT = ModelKind("fpt", FPTModelOptions, build_fpt, trunk=True, groups=("attn", "ffn", "ln", "pos", "emb", "adapter", "bias"),
                freeze=("attn", "ffn"))
