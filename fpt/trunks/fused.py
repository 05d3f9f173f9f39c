"""Activation modules swapped for fused kernels that compute the same function.

GPT-2's `gelu_new` (transformers' NewGELUActivation, also GPT-J, CodeGen, ...) and FastGELU are the tanh
approximation of GELU written as six elementwise torch ops, each a full pass over the (b, t, 4d) FFN activation,
forward and backward. `torch.nn.functional.gelu(approximate="tanh")` is the same formula in one kernel
(transformers ships it as GELUTanh, "equivalent to NewGELU and FastGELU but much faster"); results differ only
by float rounding (<= 2 ulp). On this 2-core CPU it was ~15-20% of a GPT-2-small FPT step in either precision.
`trunk.fused_gelu=false` keeps the trunk's own modules (bit-for-bit transformers' numbers).
"""

from __future__ import annotations

from torch import nn

UNFUSED = ("NewGELUActivation", "FastGELUActivation")


def fuse_gelu(model: nn.Module) -> int:
    """Replace every tanh-approximate GELU written in elementwise ops with the fused kernel; how many were replaced."""
    from transformers.activations import GELUTanh

    swaps = [(parent, name) for parent in model.modules() for name, child in parent.named_children()
             if type(child).__name__ in UNFUSED]
    for parent, name in swaps:
        setattr(parent, name, GELUTanh())
    return len(swaps)
