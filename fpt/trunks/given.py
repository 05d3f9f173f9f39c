"""A trunk the caller loaded already (`fpt.build(model, ...)` with a transformers model): used in place of the one
`trunk.*` names, by the same builder.

`given_trunk(model)` is a context: inside it `load_trunk` returns that model (its base model: an LM head or a pooler
left out, as the loader leaves them out) instead of loading weights, so every step after loading (blocks kept, freeze
groups, the TrunkSpec, the wrapper) is the one a preset or a folder goes through. The model is used, not copied:
building freezes its tensors and may drop blocks or the pooler. Options that act while weights load (trunk.init,
trunk.dropout, trunk.attn_dropout, trunk.keep) do not apply to it and are refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from torch import nn

from fpt.errors import FPTError

_GIVEN: ContextVar[nn.Module | None] = ContextVar("fpt_given_trunk", default=None)
HAND_MAPPED = ("gpt2", "bert", "t5", "vit", "longformer")  # archs with their own class; any other model: auto
ENCODER_CLASSES = ("T5EncoderModel", "MT5EncoderModel", "UMT5EncoderModel")
LOAD_ONLY = {"init": "pretrained", "dropout": None, "attn_dropout": None, "keep": []}  # key -> the value that loads nothing


@contextmanager
def given_trunk(model: nn.Module) -> Iterator[None]:
    """Within this block, load_trunk returns `model` (see the module's docstring)."""
    token = _GIVEN.set(model)
    try:
        yield
    finally:
        _GIVEN.reset(token)


def base_of(model: nn.Module) -> nn.Module:
    """The transformer body of a transformers model (GPT2LMHeadModel -> GPT2Model); a base model is itself."""
    if not hasattr(model, "config") or not isinstance(model, nn.Module):
        raise FPTError(f"a given trunk must be a transformers PreTrainedModel, got {type(model).__name__}")
    base = getattr(model, "base_model", model)
    if getattr(base.config, "is_encoder_decoder", False) and type(base).__name__ not in ENCODER_CLASSES:
        raise FPTError(f"{type(model).__name__} is an encoder-decoder; FPT uses an encoder only: pass its encoder model "
                       f"(e.g. T5EncoderModel.from_pretrained(...))")
    return base


def arch_of(model: nn.Module) -> str:
    """The trunk.arch a given model is built as: the hand map of its class (GPT2Model: gpt2, BertModel: bert, ...), else auto."""
    from fpt.trunks.registry import get_arch

    name = type(base_of(model)).__name__
    return next((a for a in HAND_MAPPED if get_arch(a).model_class == name), "auto")


def given(cfg) -> nn.Module | None:
    """The given trunk's base model, without its pooler, ready to build (None: no model was given)."""
    model = _GIVEN.get()
    if model is None:
        return None
    for key, default in LOAD_ONLY.items():
        value = cfg.get(key, default)
        if (list(value) if key == "keep" else value) != default:
            raise FPTError(f"trunk.{key}={value} acts while the toolkit loads a trunk's weights; a trunk passed as a "
                           f"loaded model is used as it is (set it up before passing it)")
    base = base_of(model)
    if str(cfg.get("arch")) == "auto":
        from fpt.trunks.vision import refuse_image_model

        refuse_image_model(base.config, type(base))  # Swin, ConvNeXt, ...: no task-token path
    if isinstance(getattr(base, "pooler", None), nn.Module):  # unused by the readout, and DDP rejects unused tensors
        base.pooler = None
    if hasattr(base.config, "use_cache"):
        base.config.use_cache = False
    return base
