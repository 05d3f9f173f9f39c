"""Parameter-efficient baselines on a trunk: LoRA, IA3 and LayerNorm tuning through Hugging Face PEFT; BitFit.

`peft.method` chooses one. The modules it adapts come from the trunk's own freeze groups (its hand map or the
structure rules, so trunk=auto trunks work alike):
- lora: every attention projection, i.e. every Linear (or GPT-2's Conv1D) whose weight is in group `attn`:
  GPT-2's fused `c_attn` and `c_proj`, BERT's query/key/value/output.dense, Llama's q/k/v/o_proj;
- ia3: the key and value projections (by name; a fused projection: every attention projection) and the
  feed-forward's down projection (the `ffn` Linear that narrows), whose input IA3 rescales;
- ln_tuning: every module owning `ln` tensors (PEFT trains a copy of each norm, the original stays frozen);
- bitfit: no new tensors; every trunk bias joins the group `bias` (Ben Zaken et al. 2022).

PEFT injects its layers in place (`inject_adapter_in_model`: no PeftModel wrapper). Its new tensors form the
group `adapter`; a wrapped original (`...c_attn.base_layer.weight`) keeps its own group, so `freeze=` decides
the rest as usual. `merged_trunk` folds the adapters back in: a plain Hugging Face model (`fpt export`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from torch import nn

from fpt.config.methods import PeftMethod
from fpt.errors import FPTError

ADAPTER, BIAS = "adapter", "bias"
KEY_VALUE = {"key", "value", "k", "v", "k_proj", "v_proj", "k_lin", "v_lin", "key_proj", "value_proj", "wk", "wv"}


def _conv1d():
    from transformers.pytorch_utils import Conv1D

    return Conv1D


def in_out(module: nn.Module) -> tuple[int, int]:
    """(in features, out features) of a Linear or a GPT-2 Conv1D (weight stored (in, out))."""
    w = module.weight
    return (int(w.shape[0]), int(w.shape[1])) if isinstance(module, _conv1d()) else (int(w.shape[1]), int(w.shape[0]))


def projections(trunk: nn.Module, groups: Mapping[str, str], group: str, skip: Iterable[str] = ()) -> list[str]:
    """Names of the Linear / Conv1D modules whose weight is in `group` (and not in `skip`: tensors never used)."""
    skip = set(skip)
    kinds = (nn.Linear, _conv1d())
    return [n for n, m in trunk.named_modules()
            if isinstance(m, kinds) and groups.get(f"{n}.weight") == group and f"{n}.weight" not in skip]


def norm_modules(trunk: nn.Module, groups: Mapping[str, str]) -> list[str]:
    """Names of the modules that own `ln` tensors directly."""
    return [n for n, m in trunk.named_modules()
            if any(groups.get(f"{n}.{p}" if n else p) == "ln" for p, _ in m.named_parameters(recurse=False))]


def recorded(pcfg) -> dict:
    """results.json's record of the method: `peft` (none, lora, ...) and `peft_r` (the rank of a method sized by it)."""
    from fpt.config.methods import peft_method

    method = str((pcfg or {}).get("method") or "none")
    return {"peft": method, "peft_r": int(pcfg.get("r", 8)) if peft_method(method).uses_rank else None}


def lora_config(trunk: nn.Module, groups: Mapping[str, str], pcfg, skip: Iterable[str] = ()):
    """LoRA on every attention projection (a Linear or Conv1D whose weight is in group attn)."""
    import peft

    attn = projections(trunk, groups, "attn", skip)
    _need(attn, f"peft.method=lora: found no attention projection (a Linear or Conv1D in group attn) in this {type(trunk).__name__} trunk")
    return peft.LoraConfig(r=int(pcfg.get("r", 8)), lora_alpha=float(pcfg.get("alpha", 16)), lora_dropout=float(pcfg.get("dropout", 0.0)),
                           target_modules=attn, fan_in_fan_out=_fan_in_fan_out(trunk, attn))


def ia3_config(trunk: nn.Module, groups: Mapping[str, str], pcfg, skip: Iterable[str] = ()):
    """IA3 on the key and value projections and the feed-forward's down projection."""
    import peft

    attn = projections(trunk, groups, "attn", skip)
    kv = [n for n in attn if n.rsplit(".", 1)[-1] in KEY_VALUE] or attn
    down = [n for n in projections(trunk, groups, "ffn", skip) if in_out(trunk.get_submodule(n))[0] > in_out(trunk.get_submodule(n))[1]]
    _need(kv, f"peft.method=ia3: found no attention projection (a Linear or Conv1D in group attn) in this {type(trunk).__name__} trunk")
    return peft.IA3Config(target_modules=kv + down, feedforward_modules=down, fan_in_fan_out=_fan_in_fan_out(trunk, kv + down))


def ln_tuning_config(trunk: nn.Module, groups: Mapping[str, str], pcfg, skip: Iterable[str] = ()):
    """LayerNorm tuning: a trained copy of every module owning `ln` tensors."""
    import peft

    norms = norm_modules(trunk, groups)
    _need(norms, f"peft.method=ln_tuning: this {type(trunk).__name__} trunk has no normalisation layers (group ln)")
    return peft.LNTuningConfig(target_modules=norms)


def _need(names: list, message: str) -> None:
    if not names:
        raise FPTError(message)


def _fan_in_fan_out(trunk: nn.Module, names: list[str]) -> bool:
    conv = {isinstance(trunk.get_submodule(n), _conv1d()) for n in names}
    if len(conv) > 1:
        raise FPTError(f"peft: the target modules of this {type(trunk).__name__} trunk mix Linear and Conv1D layers; "
                       f"give it a hand map in fpt/trunks/")
    return conv == {True}


def add_adapters(trunk: nn.Module, groups: Mapping[str, str], pcfg, skip: Iterable[str] = ()) -> dict[str, str]:
    """Apply `peft.method` to `trunk` in place (its registered entry); returns the trunk's new name -> group map."""
    from fpt.config.methods import peft_method

    return peft_method(str((pcfg or {}).get("method") or "none")).adapt(trunk, groups, pcfg or {}, skip)


def injected(config: Callable) -> Callable:
    """An entry's `adapt` for a PEFT config builder: inject its layers in place, regroup the trunk's tensors."""
    def adapt(trunk: nn.Module, groups: Mapping[str, str], pcfg, skip: Iterable[str] = ()) -> dict[str, str]:
        import warnings

        import peft

        with warnings.catch_warnings():  # LN tuning wraps any norm class, and says so per layer
            warnings.filterwarnings("ignore", message="Unsupported layer type")
            peft.inject_adapter_in_model(config(trunk, groups, pcfg, skip), trunk)
        return regroup(trunk, groups)
    return adapt


def bitfit(trunk: nn.Module, groups: Mapping[str, str], pcfg, skip: Iterable[str] = ()) -> dict[str, str]:
    """BitFit: no new tensors; every trunk bias (the token table's aside) joins the group `bias`."""
    out = {n: BIAS if n.rsplit(".", 1)[-1] == "bias" and g != "emb" else g for n, g in groups.items()}
    _need([g for g in out.values() if g == BIAS], f"peft.method=bitfit: this {type(trunk).__name__} trunk has no biases")
    return out


def unchanged(trunk: nn.Module, groups: Mapping[str, str], pcfg, skip: Iterable[str] = ()) -> dict[str, str]:
    """peft.method=none: the trunk as it is."""
    return dict(groups)


# One entry per method; fpt/models/registry.py registers them (fpt/config/methods.py).
NONE = PeftMethod("none", unchanged, injects=False)
LORA = PeftMethod("lora", injected(lora_config), injects=True, uses_rank=True)
IA3 = PeftMethod("ia3", injected(ia3_config), injects=True)
LN_TUNING = PeftMethod("ln_tuning", injected(ln_tuning_config), injects=True)
BITFIT = PeftMethod("bitfit", bitfit, injects=False)


def regroup(trunk: nn.Module, old: Mapping[str, str]) -> dict[str, str]:
    """Names after injection -> groups: a wrapped original keeps its group, PEFT's new tensors are `adapter`."""
    out = {}
    for n, _ in trunk.named_parameters():
        base = n.replace(".base_layer.", ".")
        out[n] = old.get(n) or (old.get(base) if base != n else None) or ADAPTER
    return out


def renamed(names: Iterable[str], groups: Mapping[str, str]) -> frozenset[str]:
    """`names` (pre-injection) under their post-injection names (a wrapped module's `base_layer`)."""
    out = set()
    for n in names:
        head, _, leaf = n.rpartition(".")
        out.add(n if n in groups else f"{head}.base_layer.{leaf}")
    return frozenset(out)


def merged_trunk(trunk: nn.Module) -> nn.Module:
    """Fold every PEFT layer into its base layer and put the base layer back in its place: a plain model."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in list(trunk.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent, _, attr = name.rpartition(".")
            setattr(trunk.get_submodule(parent) if parent else trunk, attr, module.get_base_layer())
    for p in trunk.parameters():
        p.requires_grad_(True)
    return trunk
