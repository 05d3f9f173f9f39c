"""Which precision a run computes in, and which dtype its frozen trunk is stored in.

`trainer.precision=auto` (the default) picks `bf16-mixed` where the device computes bf16 natively (CPUs
with AVX512-BF16 or AMX, NVIDIA GPUs from Ampere on) and `32-true` elsewhere; an explicit value always
wins. Under bf16-mixed, trainable tensors, optimizer state and the loss stay fp32 (Lightning's autocast).
`trunk.dtype=auto` then stores the frozen trunk tensors in bf16 once at load: half the trunk's memory and
no cast of the frozen weights at every step; trainable tensors stay fp32.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from fpt.errors import FPTError

DTYPES = ("auto", "bf16", "fp32")


@lru_cache(maxsize=None)
def cpu_has_bf16() -> bool:
    """AVX512-BF16 or AMX-BF16 in the CPU's flags (Linux /proc/cpuinfo; elsewhere: no)."""
    try:
        flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def uses_gpu(trainer_cfg) -> bool:
    """Whether Lightning will train on a CUDA GPU with these trainer options."""
    import torch

    acc = str(trainer_cfg.get("accelerator", "auto"))
    return acc in ("gpu", "cuda") or (acc == "auto" and torch.cuda.is_available())


def native_bf16(trainer_cfg) -> tuple[bool, str]:
    """(whether the training device computes bf16 natively, its name)."""
    import torch

    if uses_gpu(trainer_cfg):
        if not torch.cuda.is_available():
            return False, "no GPU"
        name = torch.cuda.get_device_name(0)
        return torch.cuda.get_device_capability(0) >= (8, 0), name
    return cpu_has_bf16(), "this CPU" + (" (AVX512-BF16/AMX)" if cpu_has_bf16() else " (no AVX512-BF16 or AMX)")


def resolve_precision(trainer_cfg, say: bool = False) -> str:
    """The Lightning precision a run uses: `auto` resolved (one line printed when `say`), else as given."""
    asked = str(trainer_cfg.get("precision", "auto"))
    native, device = native_bf16(trainer_cfg)
    if asked == "auto":
        chosen = "bf16-mixed" if native else "32-true"
        if say:
            print(f"note: precision {chosen} (trainer.precision=auto on {device}; trainer.precision=32-true for fp32)", file=sys.stderr)
        return chosen
    if say and asked.startswith("bf16") and not native:
        print(f"warning: trainer.precision={asked} on {device}, which has no native bf16: it runs emulated, "
              f"slower than fp32; trainer.precision=32-true is faster here", file=sys.stderr)
    return asked


def trunk_dtype(cfg) -> str:
    """'bf16' or 'fp32': the storage of the frozen trunk tensors (trunk.dtype, auto: bf16 iff bf16 compute)."""
    asked = str((cfg.get("trunk") or {}).get("dtype", "auto"))
    if asked not in DTYPES:
        raise FPTError(f"unknown trunk.dtype '{asked}'; choose one of: {', '.join(DTYPES)}")
    bf16 = resolve_precision(cfg.trainer).startswith("bf16")
    if asked == "bf16" and not bf16:
        raise FPTError("trunk.dtype=bf16 stores the frozen weights in bf16, which needs bf16 compute: "
                       "set trainer.precision=bf16-mixed (or auto on bf16 hardware), or trunk.dtype=fp32")
    return "bf16" if asked == "bf16" or (asked == "auto" and bf16) else "fp32"


def store_frozen(model, dtype: str) -> int:
    """Store every frozen floating tensor of the trunk in `dtype` (bf16: once, at load); returns how many. A module
    with a trained tensor keeps all of its own in fp32 (BitFit's LayerNorm: one op cannot mix bf16 and fp32)."""
    import torch

    if dtype != "bf16":
        return 0
    n = 0
    for m in model.trunk.modules():
        own = list(m.parameters(recurse=False))
        if any(p.requires_grad for p in own):
            continue
        for p in own:
            if p.is_floating_point():
                p.data = p.data.to(torch.bfloat16)
                n += 1
    model.compute_dtype = torch.bfloat16
    return n
